/**
 * One engine's world for the fuzzer: two VMs (A: number mode, no reserved
 * node; B: bigint mode near the top of u64 with a kernel-reserved node),
 * four BOs (b4 private to the first A), two page tables (number mode,
 * 4 levels; bigint mode, 3 levels), and the objects commands pick from
 * (held VmBo references, op lists, retired mappings and VmBos).
 *
 * The library is passed in (never imported here at run time) so the same
 * code runs on src/ in vitest and on dist/ inside worker threads.
 */
import type * as Gpuvm from '../../src/index.js';
import { snapshotWorld } from './state.js';

export type Lib = Pick<typeof Gpuvm, 'GpuVm' | 'Bo' | 'GpuVa' | 'VmBo' | 'OpList' | 'PageTable' | 'GpuVmError'>;
type AnyVm = Gpuvm.GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type AnyVa = Gpuvm.GpuVa<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type AnyVmBo = Gpuvm.VmBo<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type AnyList = Gpuvm.OpList<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
type AnyPt = Gpuvm.PageTable<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const PG = 0x1000n;
export const PAGES = 64;
export const TWO64 = 1n << 64n;

export interface VmShape {
  name: string;
  bigint: boolean;
  start: bigint;
  reserve?: { start: bigint; range: bigint };
}

export const SHAPES: readonly VmShape[] = [
  { name: 'A', bigint: false, start: 0x100000n },
  { name: 'B', bigint: true, start: TWO64 - 72n * PG, reserve: { start: TWO64 - 42n * PG, range: 2n * PG } },
];
export const NBOS = 4;
export const PT_SHAPES = [
  { bigint: false, shifts: [12, 21, 30, 39] },
  { bigint: true, shifts: [12, 21, 30] },
] as const;

/** Thrown by the fuzzer's own getters and callbacks: must come back to the caller unchanged. */
export class FuzzUserError extends Error {
  constructor(where: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`fuzz: user code threw in ${where}`);
    Error.stackTraceLimit = limit;
  }
}

export class FuzzWorld {
  readonly vms: AnyVm[] = [];
  /** how often each VM slot was re-created */
  readonly vmGen: number[] = [0, 0];
  readonly bos: Gpuvm.Bo[] = [];
  readonly pts: AnyPt[] = [];
  readonly held: AnyVmBo[] = [];
  readonly lists: AnyList[] = [];
  readonly oldVas: AnyVa[] = [];
  readonly oldVmBos: AnyVmBo[] = [];

  constructor(
    readonly lib: Lib,
    readonly backend: 'native' | 'wasm',
  ) {
    for (let i = 0; i < SHAPES.length; i++) this.vms.push(this.makeVm(i));
    for (let i = 1; i <= NBOS; i++) {
      this.bos.push(new lib.Bo({ name: `b${i}`, privateTo: i === NBOS ? this.vms[0] : undefined }));
    }
    for (const s of PT_SHAPES) this.pts.push(new lib.PageTable({ bigint: s.bigint, shifts: [...s.shifts], backend }));
  }

  makeVm(i: number): AnyVm {
    const s = SHAPES[i];
    const n = (v: bigint) => (s.bigint ? v : Number(v));
    return new this.lib.GpuVm({
      name: s.name,
      start: n(s.start),
      range: n(BigInt(PAGES) * PG),
      reserve: s.reserve && { start: n(s.reserve.start), range: n(s.reserve.range) },
      bigint: s.bigint,
      backend: this.backend,
    });
  }

  /** Keeps a retired object for later hostile use (bounded, the same in every world). */
  retireVa(va: AnyVa): void {
    this.oldVas.push(va);
    if (this.oldVas.length > 12) this.oldVas.shift();
  }

  retireVmBo(vb: AnyVmBo): void {
    this.oldVmBos.push(vb);
    if (this.oldVmBos.length > 8) this.oldVmBos.shift();
  }

  addList(l: AnyList): void {
    this.lists.push(l);
    if (this.lists.length > 8) this.lists.shift();
  }

  /** Everything observable, as a string: VMs (snapshotWorld), page tables, lists, held references. */
  snapshot(): string {
    const parts: unknown[] = [snapshotWorld(this.vms, this.bos)];
    for (const pt of this.pts) {
      parts.push(pt.destroyed ? 'destroyed' : [pt.stats, pt.dump().map((e) => `${e.kind} ${e.va} ${e.size} ${e.pa} ${e.level} ${e.hint64k} ${e.compact}`)]);
    }
    parts.push(this.lists.map((l) => l.state));
    parts.push(this.held.map((vb) => vb.live));
    return JSON.stringify(parts, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));
  }
}
