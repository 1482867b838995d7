/**
 * One-line keys for ops and mappings, the same for the engines' ops (public
 * Op objects, number or bigint mode) and the model's ops, so whole op lists
 * compare as string arrays (fast, and a mismatch prints readably).
 * BOs are printed by id (0 = none).
 */
import type { Bo, Op, OpList } from '../../src/index.js';
import type { MOp, MPiece, MVa } from './model.js';

type Num = number | bigint;

const h = (v: Num): string => '0x' + v.toString(16);

export function vaKey(addr: Num, range: Num, bo: number | string, offset: Num): string {
  return `[${h(addr)} +${h(range)}] bo${bo} @${h(offset)}`;
}

function pieceKey(p: { addr: Num; range: Num; offset: Num } | null, bo: number | string): string {
  return p === null ? '-' : vaKey(p.addr, p.range, bo, p.offset);
}

/** How a key names a BO: by id (default; 0 = none) or, across separately built worlds, by name. */
export type BoLabel = (bo: Bo | null) => number | string;
export const byId: BoLabel = (bo) => bo?.id ?? 0;
export const byName: BoLabel = (bo) => bo?.name ?? '-';

/** Key of a public Op. */
export function opKey(op: Op<any>, label: BoLabel = byId): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  switch (op.kind) {
    case 'map':
      return `map ${vaKey(op.addr, op.range, label(op.bo), op.offset)}`;
    case 'unmap':
      return `unmap ${vaKey(op.va.addr, op.va.range, label(op.va.bo), op.va.offset)} keep=${op.keep ? 1 : 0}`;
    case 'prefetch':
      return `prefetch ${vaKey(op.va.addr, op.va.range, label(op.va.bo), op.va.offset)}`;
    case 'remap': {
      const va = op.unmap.va;
      return (
        `remap ${vaKey(va.addr, va.range, label(va.bo), va.offset)} keep=${op.unmap.keep ? 1 : 0}` +
        ` prev=${pieceKey(op.prev, label(op.prev?.bo ?? null))} next=${pieceKey(op.next, label(op.next?.bo ?? null))}`
      );
    }
  }
}

export function listKeys(list: OpList<any> | Iterable<Op<any>>, label: BoLabel = byId): string[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  const out: string[] = [];
  for (const op of list) out.push(opKey(op, label));
  return out;
}

const mvaKey = (va: MVa): string => vaKey(va.addr, va.range, va.bo, va.offset);

/** Key of a model op (same format as opKey). */
export function mopKey(op: MOp): string {
  switch (op.kind) {
    case 'map':
      return `map ${vaKey(op.addr, op.range, op.bo, op.offset)}`;
    case 'unmap':
      return `unmap ${mvaKey(op.va)} keep=${op.keep ? 1 : 0}`;
    case 'prefetch':
      return `prefetch ${mvaKey(op.va)}`;
    case 'remap': {
      const p = (x: MPiece | null) => pieceKey(x, x?.bo ?? 0);
      return `remap ${mvaKey(op.unmap.va)} keep=${op.unmap.keep ? 1 : 0} prev=${p(op.prev)} next=${p(op.next)}`;
    }
  }
}

export function mopKeys(ops: readonly MOp[]): string[] {
  return ops.map(mopKey);
}
