/**
 * Native vs WASM: one seeded stream of requests (smMapOps, smUnmapOps,
 * prefetchOps, madviseOps, vmBo.unmapOps, bind, unbind, callback mode,
 * partly applied lists, bindArray with injected errors, lookups, VmBo get/put,
 * flags; invalid ones included) runs on a VM of each engine in lockstep. Every
 * request's transcript (op lists, counts, error codes, failing indexes,
 * lookup results) must be identical, and so must the full state, compared
 * periodically and at the end (the engines must be bit-identical).
 *
 * 1e5 requests in CI (the full stream), plus a quarter of that without
 * bindArray (the core stream); GPUVM_LONG=1 runs 1e6. GPUVM_SEED=<n> replays
 * other streams.
 */
import { describe, expect, it } from 'vitest';
import { availableBackends, Bo, GpuVm, GpuVmError, type BindEntry, type Op, type OpList, type VmBo } from '../src/index.js';
import { listKeys, opKey, vaKey } from './support/keys.js';
import { TWO64 } from './support/model.js';
import { Prng } from './support/prng.js';
import { genAddr, genOffset, genRange, genRequest, num, vmEnd, type Known, type Req, type Universe } from './support/requests.js';
import { checkInvariants, snapshot } from './support/state.js';

const LONG = process.env.GPUVM_LONG === '1';
const REQUESTS = LONG ? 1_000_000 : 100_000;
const SEED = process.env.GPUVM_SEED ? Number(process.env.GPUVM_SEED) : 0xd1ff_0001;
const P = 0x1000n;
const SNAP_EVERY = 500;

const UNIVERSES: (Universe & { share: number; seed: number })[] = [
  { name: 'high-bigint', bigint: true, page: P, start: TWO64 - 68n * P, pages: 64, reserve: { page: 30, pages: 2 }, bos: 4, share: 0.6, seed: SEED },
  { name: 'low-number', bigint: false, page: P, start: 0x100000n, pages: 64, reserve: { page: 0, pages: 1 }, bos: 4, share: 0.4, seed: (SEED ^ 0x77) >>> 0 },
];

type DReq =
  | Req
  | { t: 'bindArray'; entries: { op: BindEntry['op']; addr: bigint; range: bigint; bo: number; offset: bigint; inject: boolean }[] }
  | { t: 'lookup'; fn: 'findFirst' | 'find' | 'findPrev' | 'findNext' | 'isEmpty' | 'iterate'; addr: bigint; range: bigint };

function genDReq(rng: Prng, u: Universe, known: readonly Known[], withBindArray: boolean): DReq {
  const k = rng.int(100);
  if (k < 8 && withBindArray) {
    const n = rng.between(1, 8);
    const entries = [];
    for (let i = 0; i < n; i++) {
      const op = (['map', 'unmap', 'prefetch', 'unmapAll'] as const)[rng.weighted([45, 30, 10, 15])];
      const addr = genAddr(rng, u, known);
      const range = genRange(rng, u, addr, known);
      const bo = op === 'unmapAll' ? rng.between(1, u.bos) : rng.int(u.bos + 1);
      entries.push({ op, addr, range, bo, offset: genOffset(rng, u, addr, bo, known), inject: rng.chance(0.03) });
    }
    return { t: 'bindArray', entries };
  }
  if (k < 14) {
    const addr = genAddr(rng, u, known);
    const fn = (['findFirst', 'find', 'findPrev', 'findNext', 'isEmpty', 'iterate'] as const)[rng.int(6)];
    return { t: 'lookup', fn, addr, range: genRange(rng, u, addr, known) };
  }
  return genRequest(rng, u, known, { madvise: true });
}

function fmt(r: DReq): string {
  return JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v));
}

/** One engine's VM and what the stream holds on it. */
class Side {
  readonly vm: GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly held: VmBo[] = [];
  out: string[] = [];

  constructor(
    readonly backend: 'native' | 'wasm',
    readonly u: Universe,
    readonly bos: Bo[],
  ) {
    const reserve = u.reserve && { start: u.start + BigInt(u.reserve.page) * P, range: BigInt(u.reserve.pages) * P };
    this.vm = new GpuVm({
      name: u.name,
      start: num(u, u.start),
      range: num(u, vmEnd(u) - u.start),
      reserve: reserve && { start: num(u, reserve.start), range: num(u, reserve.range) },
      bigint: u.bigint,
      backend,
    });
  }

  private n(v: bigint): number | bigint {
    return this.u.bigint ? v : Number(v);
  }

  private bo(i: number): Bo | null {
    return i === 0 ? null : this.bos[i - 1];
  }

  private log(s: string): void {
    this.out.push(s);
  }

  /** Runs f; logs its error code (or rethrows anything that is not a library error). */
  private attempt(f: () => void): void {
    try {
      f();
    } catch (e) {
      if (e instanceof GpuVmError || e instanceof RangeError || e instanceof TypeError) {
        const at = /bindArray\[(\d+)\]/.exec(e.message);
        this.log(`ERR ${e instanceof GpuVmError ? e.code : e.name}${at ? ` @${at[1]}` : ''}`);
        return;
      }
      if ((e as Error).message === 'boom') {
        this.log('boom');
        return;
      }
      throw e;
    }
  }

  private keys(list: OpList<any>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    this.log(listKeys(list).join(' | '));
  }

  private applyOne(op: Op<any>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    if (op.kind === 'map') {
      const va = this.vm.vaMap(op);
      this.log(`mapped ${vaKey(va.addr, va.range, va.bo?.id ?? 0, va.offset)}`);
    } else if (op.kind === 'remap') {
      const { prev, next } = this.vm.vaRemap(op);
      this.log(`remapped ${prev ? vaKey(prev.addr, prev.range, prev.bo?.id ?? 0, prev.offset) : '-'} ${next ? vaKey(next.addr, next.range, next.bo?.id ?? 0, next.offset) : '-'}`);
    } else if (op.kind === 'unmap') {
      this.vm.vaUnmap(op);
    }
  }

  /** The i-th (mod count) non-kernel mapping with a BO when `withBo`, else any. */
  private pickVa(pick: number, bo?: Bo) {
    const vas = [...this.vm.mappings()].filter((v) => !v.isKernelNode && (bo === undefined || v.bo === bo));
    return vas.length === 0 ? null : vas[pick % vas.length];
  }

  exec(req: DReq, rngPick: number, withBindArray: boolean): string[] {
    this.out = [];
    const vm = this.vm;
    const n = (v: bigint) => this.n(v);
    switch (req.t) {
      case 'map':
      case 'unmap': {
        const isMap = req.t === 'map';
        const mapReq = isMap ? { addr: n(req.addr), range: n(req.range), bo: this.bo(req.bo), offset: n(req.offset) } : null;
        const gen = () => (isMap ? vm.smMapOps(mapReq!) : vm.smUnmapOps(n(req.addr), n(req.range)));
        switch (req.mode) {
          case 'list':
          case 'drop':
            this.attempt(() => {
              const list = gen();
              this.keys(list);
              if (req.mode === 'drop') list.drop();
              else if (list.length > 0) list.apply();
              this.log(list.state);
            });
            return this.out;
          case 'fused':
            this.attempt(() => this.log(`n=${isMap ? vm.bind(mapReq!.addr, mapReq!.range, mapReq!.bo, mapReq!.offset) : vm.unbind(n(req.addr), n(req.range))}`));
            return this.out;
          case 'partial':
            this.attempt(() => {
              const list = gen();
              this.keys(list);
              if (list.length === 0) return;
              this.applyOne(list.get(0));
              this.log(list.state);
              const s = num(this.u, this.u.start + BigInt(this.u.pages - 1) * P);
              this.attempt(() => vm.unbind(s, 0x1000));
              this.attempt(() => vm.prefetchOps(s, 0x1000));
              if (withBindArray) this.attempt(() => vm.bindArray([{ op: 'unmap', addr: s, range: 0x1000 }]));
              if (list.state === 'pending') list.apply();
              this.log(list.state);
            });
            return this.out;
          case 'callback': {
            let k = 0;
            const step = (op: Op<any>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
              this.log(opKey(op));
              if (k++ === req.failAt) throw new Error('boom');
              this.applyOne(op);
            };
            const steps = { map: step, remap: step, unmap: step };
            this.attempt(() => (isMap ? vm.smMap(mapReq!, steps) : vm.smUnmap(n(req.addr), n(req.range), steps)));
            return this.out;
          }
        }
        return this.out;
      }
      case 'prefetch':
        this.attempt(() => {
          const list = vm.prefetchOps(n(req.addr), n(req.range));
          this.keys(list);
          if (list.length > 0 && rngPick % 2 === 0) list.apply();
          else list.drop();
        });
        return this.out;
      case 'madvise':
        this.attempt(() => {
          const list = vm.madviseOps(n(req.addr), n(req.range));
          this.keys(list);
          if (req.apply && list.length > 0) list.apply();
          else list.drop();
          this.log(list.state);
        });
        return this.out;
      case 'unmapbo': {
        const bo = this.bo(req.bo)!;
        this.attempt(() => {
          let vb: VmBo | null;
          if (req.viaMapping) {
            const va = this.pickVa(rngPick, bo);
            vb = va === null ? null : va.vmBo;
          } else {
            vb = vm.findBo(bo);
          }
          this.log(`vb=${vb !== null}`);
          if (vb === null) return;
          const list = vb.unmapOps();
          this.keys(list);
          if (list.length > 0) list.apply();
          this.log(`live=${vb.live}`);
          if (!req.viaMapping) this.log(`put=${vb.put()}`);
        });
        return this.out;
      }
      case 'obtain':
        if (this.held.length >= 8) return this.out;
        this.attempt(() => {
          const vb = vm.obtainBo(this.bo(req.bo)!);
          this.held.push(vb);
          this.log(`ref=${vb.refcount}`);
        });
        return this.out;
      case 'put':
        if (this.held.length === 0) return this.out;
        this.attempt(() => {
          const [vb] = this.held.splice(req.pick % this.held.length, 1);
          this.log(`put=${vb.put()}`);
        });
        return this.out;
      case 'flags':
        this.attempt(() => {
          const va = this.pickVa(req.pick);
          if (va === null) return;
          va.flags = req.flags;
          this.log(`flags=${va.flags}`);
        });
        return this.out;
      case 'bindArray': {
        const entries: BindEntry[] = req.entries.map((e) => {
          const inject = e.inject ? { injectError: true } : {};
          switch (e.op) {
            case 'map':
              return { op: 'map', addr: n(e.addr), range: n(e.range), bo: this.bo(e.bo), offset: n(e.offset), ...inject };
            case 'unmapAll':
              return { op: 'unmapAll', bo: this.bo(e.bo)!, ...inject };
            default:
              return { op: e.op, addr: n(e.addr), range: n(e.range), ...inject };
          }
        });
        this.attempt(() => {
          const list = vm.bindArray(entries);
          this.keys(list);
          this.log(list.state);
        });
        return this.out;
      }
      case 'lookup': {
        const a = n(req.addr);
        const r = n(req.range);
        const key = (va: { addr: unknown; range: unknown; bo: Bo | null; offset: unknown; isKernelNode: boolean } | null) =>
          va === null ? 'null' : `${vaKey(va.addr as bigint, va.range as bigint, va.bo?.id ?? 0, va.offset as bigint)}${va.isKernelNode ? ' K' : ''}`;
        this.attempt(() => {
          switch (req.fn) {
            case 'findFirst':
              return this.log(key(vm.findFirst(a, r)));
            case 'find':
              return this.log(key(vm.find(a, r)));
            case 'findPrev':
              return this.log(key(vm.findPrev(a)));
            case 'findNext':
              return this.log(key(vm.findNext(a)));
            case 'isEmpty':
              return this.log(String(vm.isEmpty(a, r)));
            case 'iterate':
              return this.log([...vm.mappings(a, r)].map(key).join(' | '));
          }
        });
        return this.out;
      }
    }
  }
}

function sameTranscript(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const have = availableBackends();
const both = have.includes('native') && have.includes('wasm');
const title = both
  ? 'native vs WASM'
  : `native vs WASM (skipped: needs both engines, only ${have.length ? have.join(' and ') : 'none'} loads here)`;

const STREAMS = UNIVERSES.flatMap((u) => [
  // the full stream: everything, bindArray included
  { ...u, stream: 'full', withBindArray: true, requests: Math.round(REQUESTS * u.share) },
  // a shorter stream without bindArray, so the engines are compared even where bindArray misbehaves
  { ...u, stream: 'core', withBindArray: false, requests: Math.round((REQUESTS * u.share) / 4), seed: (u.seed ^ 0xc0de) >>> 0 },
]);

(both ? describe : describe.skip)(title, () => {
  it('madvise: same ops on both engines; the MAPs carry no BO and offset 0 (upstream map_req)', () => {
    const out: string[][] = [];
    for (const backend of ['native', 'wasm'] as const) {
      const vm = new GpuVm({ start: 0x100000, range: 0x100000, backend });
      const bo = new Bo();
      vm.bind(0x100000, 0x4000, null, 0x7000); // BO-less [0, 4) pages, offset 0x7000
      vm.bind(0x104000, 0x2000, bo, 0x1000); // with a BO: madvise skips it
      vm.bind(0x106000, 0x4000, null, 0x9000); // BO-less [6, 10)
      const keys = [
        ...listKeys(vm.madviseOps(0x101000, 0x2000)), // inside one mapping: remap(prev, next) + map
        ...listKeys(vm.madviseOps(0x102000, 0x6000)), // from inside the first to inside the third
      ];
      out.push(keys);
      for (const k of keys.filter((x) => x.startsWith('map '))) expect(k, `${backend}: ${k}`).toMatch(/ bo0 @0x0$/);
    }
    expect(out[1]).toEqual(out[0]);
  });

  it.each(STREAMS)('$name, $stream stream: same ops, errors and state', (u) => {
    const bos: Bo[] = [];
    for (let i = 1; i <= u.bos; i++) bos.push(new Bo({ name: `d${i}` }));
    const nat = new Side('native', u, bos);
    const wasm = new Side('wasm', u, bos);
    const rng = new Prng(u.seed);
    const total = u.requests;
    let known: Known[] = [];
    const boIndex = new Map(bos.map((b, i) => [b.id, i + 1]));
    const refresh = () => {
      known = [...nat.vm.mappings()]
        .filter((v) => !v.isKernelNode)
        .map((v) => ({ addr: BigInt(v.addr), range: BigInt(v.range), bo: v.bo ? boIndex.get(v.bo.id)! : 0, offset: BigInt(v.offset) }));
    };
    const seen: Record<string, number> = {};
    for (let i = 0; i < total; i++) {
      if (i % 8 === 0) refresh();
      const req = genDReq(rng, u, known, u.withBindArray);
      const pick = rng.int(1 << 16);
      const a = nat.exec(req, pick, u.withBindArray);
      const b = wasm.exec(req, pick, u.withBindArray);
      for (const line of a) {
        const tag = line.startsWith('ERR') ? line.split(' @')[0] : req.t;
        seen[tag] = (seen[tag] ?? 0) + 1;
      }
      if (!sameTranscript(a, b)) {
        expect(b, `request #${i} (seed ${u.seed}) ${fmt(req)}: wasm (received) vs native (expected)`).toEqual(a);
      }
      if (i % SNAP_EVERY === SNAP_EVERY - 1) {
        expect(snapshot(wasm.vm, bos), `state after request #${i} (seed ${u.seed})`).toEqual(snapshot(nat.vm, bos));
      }
    }
    for (const side of [nat, wasm]) while (side.held.length > 0) side.held.pop()!.put();
    expect(snapshot(wasm.vm, bos)).toEqual(snapshot(nat.vm, bos));
    checkInvariants(nat.vm, bos);
    checkInvariants(wasm.vm, bos);
    // the stream exercised what it is meant to, errors included
    const kinds = ['map', 'unmap', 'prefetch', 'madvise', 'unmapbo', 'lookup', 'ERR EINVAL', 'ERR EBUSY'];
    if (u.withBindArray) kinds.push('bindArray', 'ERR ENOMEM');
    for (const t of kinds) {
      expect(seen[t] ?? 0, `stream coverage of ${t}`).toBeGreaterThan(total / 1000);
    }
    nat.vm.destroy();
    wasm.vm.destroy();
  });
});
