/**
 * The replay language (SPEC §8): one command per line, output byte for byte
 * as the spec says. VMs are created in bigint mode so every u64 is exact.
 * Page-table commands (§8.1) are handed to replay-page-table.ts.
 */
import { engineFor, type BackendName } from './backend/loader.js';
import { GpuVmError } from './errors.js';
import { GpuVm } from './gpuvm.js';
import type { Op, OpList, OpMapping } from './ops.js';
import { createPageTableReplay } from './replay-page-table.js';
import { U64_MAX } from './u64.js';
import { Bo } from './vm-bo.js';

export interface ReplayOptions {
  /** engine to run on (default: GPUVM_BACKEND / auto) */
  backend?: BackendName;
}

/** A malformed command: reported as `err EINVAL`, like a refused one. */
class Malformed extends Error {}

/** Parses a decimal or 0x-hex u64. */
export function parseU64(s: string | undefined): bigint {
  if (s === undefined || !/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(s)) throw new Malformed(`not a number: ${s}`);
  const v = BigInt(s);
  if (v > U64_MAX) throw new Malformed(`above u64: ${s}`);
  return v;
}

const h = (v: bigint | number): string => '0x' + v.toString(16);

class ReplaySession {
  private vm: GpuVm<bigint> | null = null;
  private readonly bos = new Map<bigint, Bo>();
  private readonly ids = new Map<Bo, bigint>();
  private readonly pt;

  constructor(private readonly backend: BackendName | undefined) {
    this.pt = createPageTableReplay(engineFor(backend));
  }

  private bo(id: bigint): Bo | null {
    if (id === 0n) return null;
    let bo = this.bos.get(id);
    if (bo === undefined) {
      bo = new Bo({ name: `bo${id}` });
      this.bos.set(id, bo);
      this.ids.set(bo, id);
    }
    return bo;
  }

  private id(bo: Bo | null): string {
    return bo === null ? '0' : String(this.ids.get(bo) ?? '?');
  }

  private needVm(): GpuVm<bigint> {
    if (this.vm === null) throw new GpuVmError('EINVAL', 'no VM: init first');
    return this.vm;
  }

  private opLine(op: Op<bigint>): string {
    switch (op.kind) {
      case 'map':
        return `map ${h(op.addr)} ${h(op.range)} bo=${this.id(op.bo)} off=${h(op.offset)}`;
      case 'unmap': {
        const v = op.va;
        return `unmap ${h(v.addr)} ${h(v.range)} bo=${this.id(v.bo)} off=${h(v.offset)} keep=${op.keep ? 1 : 0}`;
      }
      case 'remap': {
        const v = op.unmap.va;
        const piece = (p: OpMapping<bigint> | null) => (p ? `${h(p.addr)},${h(p.range)},${h(p.offset)}` : '-');
        return (
          `remap unmap=${h(v.addr)},${h(v.range)},bo=${this.id(v.bo)},off=${h(v.offset)},keep=${op.unmap.keep ? 1 : 0}` +
          ` prev=${piece(op.prev)} next=${piece(op.next)}`
        );
      }
      case 'prefetch': {
        const v = op.va;
        return `prefetch ${h(v.addr)} ${h(v.range)} bo=${this.id(v.bo)}`;
      }
    }
  }

  run(cmd: string, args: string[], out: string[]): void {
    const arity = (min: number, max = min) => {
      if (args.length < min || args.length > max) throw new Malformed(`${cmd} takes ${min}..${max} arguments`);
    };
    switch (cmd) {
      case 'init': {
        arity(2, 4);
        if (args.length === 3) throw new Malformed('init takes 2 or 4 arguments');
        const [start, range, rs, rr] = args.map(parseU64);
        const vm = new GpuVm<bigint>({
          start,
          range,
          reserve: rs === undefined ? undefined : { start: rs, range: rr! },
          bigint: true,
          backend: this.backend,
        });
        this.vm?.destroy();
        this.vm = vm;
        return;
      }
      case 'map': {
        arity(4);
        const [addr, range, bo, offset] = args.map(parseU64);
        const ops = this.needVm().smMapOps({ addr, range, bo: this.bo(bo), offset });
        for (const op of ops) out.push(this.opLine(op));
        ops.apply();
        out.push('ok');
        return;
      }
      case 'unmap': {
        arity(2);
        const [addr, range] = args.map(parseU64);
        const ops = this.needVm().smUnmapOps(addr, range);
        for (const op of ops) out.push(this.opLine(op));
        ops.apply();
        out.push('ok');
        return;
      }
      case 'prefetch': {
        arity(2);
        const [addr, range] = args.map(parseU64);
        const ops = this.needVm().prefetchOps(addr, range);
        for (const op of ops) out.push(this.opLine(op));
        ops.drop();
        out.push('ok');
        return;
      }
      case 'unmapbo': {
        arity(1);
        const id = parseU64(args[0]);
        const vm = this.needVm();
        const bo = this.bo(id);
        const vb = bo === null ? null : vm.findBo(bo);
        if (vb !== null) {
          try {
            const ops = vb.unmapOps();
            // the kernel lists them in link order; the replay format wants address order
            const sorted = ops.toArray().sort((x, y) => {
              const a = (x as { va: { addr: bigint } }).va.addr;
              const b = (y as { va: { addr: bigint } }).va.addr;
              return a < b ? -1 : a > b ? 1 : 0;
            });
            for (const op of sorted) out.push(this.opLine(op));
            ops.apply();
          } finally {
            if (vb.live) vb.put();
          }
        }
        out.push('ok');
        return;
      }
      case 'dump': {
        arity(0);
        for (const va of this.needVm().mappings()) {
          if (va.isKernelNode) continue;
          out.push(`va ${h(va.addr)} ${h(va.range)} bo=${this.id(va.bo)} off=${h(va.offset)}`);
        }
        return;
      }
      default:
        throw new Malformed(`unknown command ${cmd}`);
    }
  }

  line(raw: string, out: string[]): void {
    const hash = raw.indexOf('#');
    const text = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (text === '') return;
    const [cmd, ...args] = text.split(/\s+/);
    try {
      if (this.pt.handle(cmd, args, out)) return;
      this.run(cmd, args, out);
    } catch (err) {
      if (err instanceof GpuVmError) out.push(`err ${err.code}`);
      else if (err instanceof Malformed || err instanceof RangeError || err instanceof TypeError) out.push('err EINVAL');
      else throw err;
    }
  }

  close(): void {
    this.vm?.destroy();
    this.vm = null;
    this.pt.close();
  }
}

/** Runs a whole replay text; returns its output (each line ending in a newline). */
export function replay(text: string, options: ReplayOptions = {}): string {
  const session = new ReplaySession(options.backend);
  const out: string[] = [];
  try {
    for (const raw of text.split(/\r?\n/)) session.line(raw, out);
  } finally {
    session.close();
  }
  return out.length === 0 ? '' : out.join('\n') + '\n';
}
