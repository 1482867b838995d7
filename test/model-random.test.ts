/**
 * A seeded random stream of map / unmap / prefetch / unmapbo requests (plus
 * VmBo get/put and flag changes), run on every engine and on the reference
 * model of test/support/model.ts: every generated op (kind, keep, geometry,
 * BO, pieces) must equal the model's, every error code too; the full state
 * (mappings with flags and links, per-VmBo mapping lists in link order,
 * refcounts, extobjs) is compared periodically and at the end.
 *
 * 1e5 core requests per engine in CI; GPUVM_LONG=1 runs 1e6.
 * GPUVM_SEED=<n> replays another stream.
 *
 * The model is checked first, against the replay vectors and the derived
 * split/merge and sm_unmap cases, so a disagreement later points
 * at the engine, not the oracle.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { availableBackends, Bo, GpuVm, GpuVmError, type Op, type OpList, type VmBo } from '../src/index.js';
import { listKeys, mopKeys, opKey, vaKey } from './support/keys.js';
import { ModelError, replayModel, TWO64, U64_MAX, VmModel, type MOp, type MVa } from './support/model.js';
import { Prng } from './support/prng.js';
import { genRequest, num, vmEnd, type Known, type Req, type Universe } from './support/requests.js';
import { checkInvariants, thrown } from './support/state.js';

const here = dirname(fileURLToPath(import.meta.url));
const LONG = process.env.GPUVM_LONG === '1';
const CORE_REQUESTS = LONG ? 1_000_000 : 100_000;
const SEED = process.env.GPUVM_SEED ? Number(process.env.GPUVM_SEED) : 0x5eed_2024;
const FULL_EVERY = 256;

const P = 0x1000n;

// ---------------------------------------------------------------------------------------------
// The oracle itself
// ---------------------------------------------------------------------------------------------

describe('reference model', () => {
  it.each(['split-merge-doc', 'unmap-and-errors'])('reproduces test/vectors/%s', (name) => {
    const text = readFileSync(join(here, 'vectors', `${name}.replay`), 'utf8');
    const expected = readFileSync(join(here, 'vectors', `${name}.expected`), 'utf8').trimEnd().split('\n');
    expect(replayModel(text)).toEqual(expected);
  });

  // the derived split/merge cases and the sm_unmap cases, in units of one page
  const u = (n: number) => BigInt(n) * P;
  const fresh = () => new VmModel({ start: 0n, range: u(64) });
  const keysOf = (ops: MOp[]) => mopKeys(ops);
  const k = (a: number, r: number, bo: number, off: bigint) => vaKey(u(a), u(r), bo, off);

  it('D2: three mappings under one request are three UNMAPs then MAP', () => {
    const m = fresh();
    m.bind(u(0), u(1), 1, 0n);
    m.bind(u(1), u(1), 2, 0n);
    m.bind(u(2), u(1), 3, 0n);
    expect(keysOf(m.smMap(u(0), u(3), 4, u(7)))).toEqual([
      `unmap ${k(0, 1, 1, 0n)} keep=0`,
      `unmap ${k(1, 1, 2, 0n)} keep=0`,
      `unmap ${k(2, 1, 3, 0n)} keep=0`,
      `map ${k(0, 3, 4, u(7))}`,
    ]);
  });

  it('D4: keep on the first, not on the second; next offset = o + (e - s)', () => {
    const m = fresh();
    m.bind(u(0), u(2), 1, u(10));
    m.bind(u(3), u(2), 2, u(20));
    expect(keysOf(m.smMap(u(1), u(3), 1, u(11)))).toEqual([
      `remap ${k(0, 2, 1, u(10))} keep=1 prev=${k(0, 1, 1, u(10))} next=-`,
      `remap ${k(3, 2, 2, u(20))} keep=0 prev=- next=${k(4, 1, 2, u(21))}`,
      `map ${k(1, 3, 1, u(11))}`,
    ]);
  });

  it('D5/D6/D8: no-BO never keeps, touching neighbours untouched, separately made contiguous pieces both keep', () => {
    const m = fresh();
    m.bind(u(0), u(2), 0, 0n);
    expect(keysOf(m.smMap(u(0), u(2), 0, 0n))[0]).toBe(`unmap ${k(0, 2, 0, 0n)} keep=0`);
    m.applyPending();
    m.bind(u(4), u(1), 1, 0n);
    m.bind(u(6), u(1), 1, 0n);
    expect(keysOf(m.smMap(u(5), u(1), 2, 0n))).toEqual([`map ${k(5, 1, 2, 0n)}`]);
    m.dropPending();
    m.bind(u(10), u(1), 1, u(3));
    m.bind(u(11), u(1), 1, u(4));
    expect(keysOf(m.smMap(u(10), u(2), 1, u(3)))).toEqual([
      `unmap ${k(10, 1, 1, u(3))} keep=1`,
      `unmap ${k(11, 1, 1, u(4))} keep=1`,
      `map ${k(10, 2, 1, u(3))}`,
    ]);
  });

  it('keep and piece offsets wrap modulo 2^64', () => {
    const m = fresh();
    const off = TWO64 - P; // the BO offset of page 0; page 1 is at offset 0 (mod 2^64)
    m.bind(u(0), u(3), 1, off);
    expect(keysOf(m.smMap(u(1), u(1), 1, 0n))).toEqual([
      `remap ${k(0, 3, 1, off)} keep=1 prev=${k(0, 1, 1, off)} next=${k(2, 1, 1, P)}`,
      `map ${k(1, 1, 1, 0n)}`,
    ]);
  });

  it('U2/U4/U6: sm_unmap never keeps and splits at both edges', () => {
    const m = fresh();
    m.bind(u(0), u(3), 1, u(5));
    m.bind(u(3), u(2), 2, u(9));
    expect(keysOf(m.smUnmap(u(1), u(3)))).toEqual([
      `remap ${k(0, 3, 1, u(5))} keep=0 prev=${k(0, 1, 1, u(5))} next=-`,
      `remap ${k(3, 2, 2, u(9))} keep=0 prev=- next=${k(4, 1, 2, u(10))}`,
    ]);
    m.applyPending();
    expect(m.mappings().map((v) => [v.addr / P, v.range / P])).toEqual([
      [0n, 1n],
      [4n, 1n],
    ]);
  });

  it('validation: zero, overflow (end of exactly 2^64 included), outside, kernel node; prefetch skips the kernel node', () => {
    const top = new VmModel({ start: TWO64 - u(8), range: u(7), reserve: { start: TWO64 - u(4), range: u(1) } });
    const code = (f: () => unknown) => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return (e as ModelError).code;
      }
    };
    expect(code(() => top.smMap(TWO64 - u(8), 0n, 1, 0n))).toBe('EINVAL');
    expect(code(() => top.smMap(TWO64 - u(2), u(2), 1, 0n))).toBe('EINVAL'); // end = 2^64
    expect(code(() => top.smMap(TWO64 - u(2), U64_MAX, 1, 0n))).toBe('EINVAL'); // wraps
    expect(code(() => top.smMap(TWO64 - u(9), u(2), 1, 0n))).toBe('EINVAL'); // partly before the VM
    expect(code(() => top.smMap(TWO64 - u(2), u(1) + 1n, 1, 0n))).toBe('EINVAL'); // one past the VM end (2^64 - 1 page)
    expect(code(() => top.smMap(TWO64 - u(5), u(2), 1, 0n))).toBe('EINVAL'); // over the kernel node
    expect(code(() => top.smUnmap(TWO64 - u(5), u(2)))).toBe('EINVAL');
    expect(code(() => top.smUnmap(TWO64 - u(9), u(2)))).toBe('EINVAL'); // sm_unmap: containment too
    expect(code(() => top.smMap(TWO64 - u(8), u(3), 1, 0n))).toBe('ok');
    top.applyPending();
    expect(code(() => top.prefetch(TWO64 - u(8), u(7)))).toBe('ok'); // over the kernel node: skipped
    expect(top.prefetch(TWO64 - u(8), u(7)).length).toBe(1);
    expect(top.prefetch(TWO64 - u(8), 0n)).toEqual([]); // zero: nothing, no error
    expect(code(() => top.prefetch(TWO64 - u(8), u(8)))).toBe('EINVAL'); // end = 2^64 overflows
    expect(top.prefetch(TWO64 - u(12), u(6)).length).toBe(1); // reaches below the VM: lists what it overlaps
  });

  it('VmBo bookkeeping: REMAP pieces go to the tail before the old one leaves; refcount; destroy at 0', () => {
    const m = fresh();
    m.bind(u(0), u(4), 1, 0n); // a
    m.bind(u(8), u(1), 1, u(8)); // b
    m.smUnmap(u(1), u(1));
    m.applyPending();
    expect(m.vmBoList(1).map((v) => [v.addr / P, v.range / P])).toEqual([
      [8n, 1n],
      [0n, 1n],
      [2n, 2n],
    ]);
    expect(m.refcount(1)).toBe(3);
    m.obtain(1);
    m.vmBoUnmap(1);
    m.applyPending();
    expect(m.hasVmBo(1)).toBe(true);
    expect(m.put(1)).toBe(true);
    expect(m.hasVmBo(1)).toBe(false);
    // a map list holds its VmBo: replacing the only mapping of a BO keeps the VmBo (and its place)
    m.bind(u(0), u(1), 2, 0n);
    m.bind(u(1), u(1), 3, 0n);
    m.bind(u(0), u(1), 2, u(1));
    expect(m.vmBoOrder()).toEqual([2, 3]);
  });

  it('a partly applied list makes the next generation EBUSY', () => {
    const m = fresh();
    m.bind(u(0), u(2), 1, 0n);
    m.bind(u(2), u(2), 1, u(2));
    m.smUnmap(u(0), u(4));
    m.applyPending(1);
    expect(() => m.smMap(u(8), u(1), 0, 0n)).toThrow(/EBUSY/);
    m.applyPending();
    expect(m.count).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// The random stream
// ---------------------------------------------------------------------------------------------

const UNIVERSES: (Universe & { share: number; seed: number })[] = [
  {
    // near the top of u64, bigint mode: overflow, ends of exactly 2^64, wrapping offsets
    name: 'high-bigint',
    bigint: true,
    page: P,
    start: TWO64 - 68n * P,
    pages: 64,
    reserve: { page: 30, pages: 2 },
    bos: 4,
    share: 0.6,
    seed: SEED,
  },
  {
    // low addresses, number mode, reserved node at the very start
    name: 'low-number',
    bigint: false,
    page: P,
    start: 0x100000n,
    pages: 64,
    reserve: { page: 0, pages: 1 },
    bos: 4,
    share: 0.4,
    seed: (SEED ^ 0x9e37) >>> 0,
  },
];

function fmtReq(r: Req): string {
  return JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v));
}

/** Cheap equality (expect() is slow in a hot loop); on a mismatch, expect's message. */
function eq(got: unknown, want: unknown, what?: string): void {
  if (got !== want) expect(got, what).toBe(want);
}

/** Fast list equality; on a mismatch, a readable diff. */
function same(got: string[], want: string[], what: string): void {
  let eq = got.length === want.length;
  for (let i = 0; eq && i < got.length; i++) eq = got[i] === want[i];
  if (!eq) expect(got, what).toEqual(want);
}

class Stream {
  readonly vm: GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly model: VmModel;
  readonly bos: Bo[];
  private readonly boIndex = new Map<number, number>();
  private readonly held: VmBo[] = [];
  readonly rng: Prng;
  core = 0;
  invalid = 0;
  count = 0;
  readonly kinds: Record<string, number> = {};
  /** what the generated lists contained (so the stream provably covers the §2.2 cases) */
  readonly cover: Record<string, number> = {};

  constructor(
    backend: 'native' | 'wasm',
    readonly u: Universe & { seed: number },
  ) {
    const start = u.start;
    const range = vmEnd(u) - start;
    const reserve = u.reserve ? { start: start + BigInt(u.reserve.page) * u.page, range: BigInt(u.reserve.pages) * u.page } : undefined;
    this.vm = new GpuVm({
      name: u.name,
      start: num(u, start),
      range: num(u, range),
      reserve: reserve && { start: num(u, reserve.start), range: num(u, reserve.range) },
      bigint: u.bigint,
      backend,
    });
    this.model = new VmModel({ start, range, reserve });
    this.bos = [];
    for (let i = 1; i <= u.bos; i++) {
      // the last BO is private to the VM: never on extobjs
      const bo = new Bo({ name: `b${i}`, privateTo: i === u.bos ? this.vm : undefined });
      this.bos.push(bo);
      this.boIndex.set(bo.id, i);
    }
    this.rng = new Prng(u.seed);
  }

  private n(v: bigint): number | bigint {
    return this.u.bigint ? v : Number(v);
  }

  /** BO object (null for none) and model id (0 for none) of a BO index. */
  private bo(i: number): { bo: Bo | null; id: number } {
    if (i === 0) return { bo: null, id: 0 };
    const bo = this.bos[i - 1];
    return { bo, id: bo.id };
  }

  private knownCache: { version: number; known: Known[] } = { version: -1, known: [] };

  private known(): Known[] {
    const v = this.model.version;
    if (this.knownCache.version !== v) {
      const known = this.model.mappings().map((m) => ({ addr: m.addr, range: m.range, bo: m.bo === 0 ? 0 : this.boIndex.get(m.bo)!, offset: m.offset }));
      this.knownCache = { version: v, known };
    }
    return this.knownCache.known;
  }

  /** Runs until `target` map/unmap/prefetch/unmapbo requests were made. */
  run(target: number): void {
    while (this.core < target) {
      const req = genRequest(this.rng, this.u, this.known());
      const i = this.count++;
      this.kinds[req.t] = (this.kinds[req.t] ?? 0) + 1;
      try {
        this.step(req);
        if (i % FULL_EVERY === FULL_EVERY - 1) this.compareFull();
      } catch (e) {
        const err = e as Error;
        err.message = `[${this.vm.backend} ${this.u.name} seed=${this.u.seed} request #${i}] ${fmtReq(req)}\n${err.message}`;
        throw err;
      }
    }
    this.compareFull();
    // leave nothing held
    while (this.held.length > 0) {
      const vb = this.held.pop()!;
      eq(vb.put(), this.model.put(vb.bo.id));
    }
    this.compareFull();
  }

  private expectError(merr: ModelError, f: () => unknown): void {
    this.cover[merr.code] = (this.cover[merr.code] ?? 0) + 1;
    const err = thrown(f);
    if (!(err instanceof GpuVmError)) throw err;
    eq(err.code, merr.code, err.message);
    this.invalid++;
    if (this.invalid % 16 === 0) this.compareFull();
    else eq(this.vm.count, this.model.count, 'count');
  }

  private step(req: Req): void {
    const vm = this.vm;
    const model = this.model;
    switch (req.t) {
      case 'map':
      case 'unmap':
        this.core++;
        return this.splitMerge(req);
      case 'prefetch': {
        this.core++;
        let mops: MOp[];
        try {
          mops = model.prefetch(req.addr, req.range);
        } catch (e) {
          if (!(e instanceof ModelError)) throw e;
          return this.expectError(e, () => vm.prefetchOps(this.n(req.addr), this.n(req.range)));
        }
        const list = vm.prefetchOps(this.n(req.addr), this.n(req.range));
        same(listKeys(list), mopKeys(mops), 'prefetch ops');
        if (list.length > 0 && this.rng.chance(0.5)) list.apply();
        else list.drop();
        model.dropPending();
        return;
      }
      case 'unmapbo': {
        this.core++;
        const { bo, id } = this.bo(req.bo);
        if (req.viaMapping) {
          // through a mapping's VmBo, holding no reference: the last UNMAP destroys it
          const ms = model.mappings().filter((m) => m.bo === id);
          if (ms.length === 0) {
            eq(bo!.vmBos.filter((x) => x.vm === vm).length, model.hasVmBo(id) ? 1 : 0);
            return;
          }
          const m = ms[this.rng.int(ms.length)];
          const va = vm.find(this.n(m.addr), this.n(m.range));
          if (va === null) expect.fail(`the model mapping [${m.addr}, +${m.range}) is not in the VM`);
          const vb = va!.vmBo!;
          eq(vb.bo, bo);
          const list = vb.unmapOps();
          same(listKeys(list), mopKeys(model.vmBoUnmap(id)), 'VmBo unmap ops (link order)');
          list.apply();
          model.applyPending();
          eq(vb.live, model.hasVmBo(id));
          return;
        }
        const vb = vm.findBo(bo!);
        eq(vb !== null, model.hasVmBo(id), 'findBo finds a VmBo iff the model has one');
        if (vb === null) return;
        model.obtain(id);
        const list = vb.unmapOps();
        same(listKeys(list), mopKeys(model.vmBoUnmap(id)), 'VmBo unmap ops (link order)');
        if (list.length > 0) list.apply();
        model.applyPending();
        eq(vb.refcount, model.refcount(id));
        eq(vb.put(), model.put(id));
        return;
      }
      case 'obtain': {
        if (this.held.length >= 8) return;
        const { bo, id } = this.bo(req.bo);
        const vb = vm.obtainBo(bo!);
        model.obtain(id);
        this.held.push(vb);
        eq(vb.refcount, model.refcount(id));
        return;
      }
      case 'put': {
        if (this.held.length === 0) return;
        const [vb] = this.held.splice(req.pick % this.held.length, 1);
        eq(vb.put(), model.put(vb.bo.id));
        return;
      }
      case 'flags': {
        if (model.count === 0) return;
        const m = model.mappings()[req.pick % model.count];
        const va = vm.find(this.n(m.addr), this.n(m.range));
        if (va === null) expect.fail(`the model mapping [${m.addr}, +${m.range}) is not in the VM`);
        va!.flags = req.flags;
        model.setFlags(m, req.flags);
        eq(va!.flags, req.flags);
        return;
      }
      case 'madvise':
        return;
    }
  }

  private splitMerge(req: Extract<Req, { t: 'map' | 'unmap' }>): void {
    const vm = this.vm;
    const model = this.model;
    const isMap = req.t === 'map';
    const { bo, id } = isMap ? this.bo(req.bo) : { bo: null, id: 0 };
    const a = this.n(req.addr);
    const r = this.n(req.range);
    const off = isMap ? this.n(req.offset) : 0;
    const mapReq = { addr: a, range: r, bo, offset: off };
    const gen = (): OpList<any> => (isMap ? vm.smMapOps(mapReq) : vm.smUnmapOps(a, r)); // eslint-disable-line @typescript-eslint/no-explicit-any

    let mops: MOp[];
    try {
      mops = isMap ? model.smMap(req.addr, req.range, id, req.offset) : model.smUnmap(req.addr, req.range);
    } catch (e) {
      if (!(e instanceof ModelError)) throw e;
      const fail = {
        map: () => expect.fail('a step ran for an invalid request'),
        remap: () => expect.fail('a step ran for an invalid request'),
        unmap: () => expect.fail('a step ran for an invalid request'),
      };
      switch (req.mode) {
        case 'fused':
          return this.expectError(e, () => (isMap ? vm.bind(a, r, bo, off) : vm.unbind(a, r)));
        case 'callback':
          return this.expectError(e, () => (isMap ? vm.smMap(mapReq, fail) : vm.smUnmap(a, r, fail)));
        default:
          return this.expectError(e, gen);
      }
    }
    const want = mopKeys(mops);
    for (const op of mops) {
      let c: string = op.kind;
      if (op.kind === 'remap') c = `remap${op.prev ? '+prev' : ''}${op.next ? '+next' : ''}${op.unmap.keep ? '+keep' : ''}`;
      else if (op.kind === 'unmap' && op.keep) c = 'unmap+keep';
      this.cover[c] = (this.cover[c] ?? 0) + 1;
      if (op.kind === 'remap' && op.next && op.next.offset < op.unmap.va.offset) this.cover.wrapped = (this.cover.wrapped ?? 0) + 1;
    }

    switch (req.mode) {
      case 'list': {
        const list = gen();
        same(listKeys(list), want, 'op list');
        if (list.length > 0) list.apply();
        model.applyPending();
        eq(list.state, 'applied');
        return;
      }
      case 'drop': {
        const list = gen();
        same(listKeys(list), want, 'op list');
        list.drop();
        model.dropPending();
        return;
      }
      case 'fused': {
        const n = isMap ? vm.bind(a, r, bo, off) : vm.unbind(a, r);
        eq(n, mops.length);
        model.applyPending();
        return;
      }
      case 'partial': {
        const list = gen();
        same(listKeys(list), want, 'op list');
        if (list.length === 0) return;
        this.applyOne(list.get(0));
        model.applyPending(1);
        if (list.length > 1) {
          eq(list.state, 'pending');
          // a list is partly applied: any other generation or fused call is EBUSY
          const s = num(this.u, this.u.start + BigInt(this.u.pages - 1) * P);
          for (const f of [() => vm.unbind(s, 0x1000), () => vm.smMapOps({ addr: s, range: 0x1000 }), () => vm.prefetchOps(s, 0x1000)]) {
            const err = thrown(f);
            expect(err).toBeInstanceOf(GpuVmError);
            eq((err as GpuVmError).code, 'EBUSY');
          }
          expect(() => model.smUnmap(this.u.start + BigInt(this.u.pages - 1) * P, P)).toThrow(/EBUSY/);
          list.apply();
          model.applyPending();
        }
        eq(list.state, 'applied');
        return;
      }
      case 'callback': {
        const got: string[] = [];
        const boom = new Error('driver step failed');
        let k = 0;
        const step = (op: Op<any>): boolean => { // eslint-disable-line @typescript-eslint/no-explicit-any
          got.push(opKey(op));
          if (k++ === req.failAt) throw boom;
          return true;
        };
        const steps = {
          map: (op: Extract<Op<any>, { kind: 'map' }>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
            step(op);
            const va = vm.vaMap(op);
            eq(vaKey(va.addr, va.range, va.bo?.id ?? 0, va.offset), vaKey(op.addr, op.range, op.bo?.id ?? 0, op.offset));
            eq(va.vmBo?.bo ?? null, op.bo);
          },
          remap: (op: Extract<Op<any>, { kind: 'remap' }>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
            step(op);
            const { prev, next } = vm.vaRemap(op);
            eq(prev === null, op.prev === null);
            eq(next === null, op.next === null);
            if (prev) eq(vaKey(prev.addr, prev.range, prev.bo?.id ?? 0, prev.offset), vaKey(op.prev!.addr, op.prev!.range, op.prev!.bo?.id ?? 0, op.prev!.offset));
            if (next) eq(vaKey(next.addr, next.range, next.bo?.id ?? 0, next.offset), vaKey(op.next!.addr, op.next!.range, op.next!.bo?.id ?? 0, op.next!.offset));
            if (prev) eq(prev.vmBo?.bo ?? null, op.unmap.va.bo, 'the prev piece is linked to the old VmBo');
            eq(op.unmap.va.live, false);
          },
          unmap: (op: Extract<Op<any>, { kind: 'unmap' }>) => { // eslint-disable-line @typescript-eslint/no-explicit-any
            step(op);
            vm.vaUnmap(op);
            eq(op.va.live, false);
          },
        };
        const run = () => (isMap ? vm.smMap(mapReq, steps) : vm.smUnmap(a, r, steps));
        if (req.failAt >= 0 && req.failAt < mops.length) {
          expect(thrown(run)).toBe(boom);
          same(got, want.slice(0, req.failAt + 1), 'callback ops up to the failing step');
          // what the steps before the failing one did stays done; the rest is dropped
          model.applyPending(req.failAt);
          model.dropPending();
        } else {
          run();
          same(got, want, 'callback ops');
          model.applyPending();
        }
        return;
      }
    }
  }

  /** Applies one op of a pending list through the callback helpers. */
  private applyOne(op: Op<any>): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    if (op.kind === 'map') this.vm.vaMap(op);
    else if (op.kind === 'remap') this.vm.vaRemap(op);
    else if (op.kind === 'unmap') this.vm.vaUnmap(op);
  }

  compareFull(): void {
    const vm = this.vm;
    const model = this.model;
    const got: string[] = [];
    let kernel = 0;
    for (const va of vm.mappings()) {
      if (va.isKernelNode) {
        kernel++;
        continue;
      }
      got.push(`${vaKey(va.addr, va.range, va.bo?.id ?? 0, va.offset)} f=${va.flags} vb=${va.vmBo?.bo.id ?? 0}`);
    }
    const want = model.mappings().map((m: MVa) => `${vaKey(m.addr, m.range, m.bo, m.offset)} f=${m.flags} vb=${m.linked}`);
    same(got, want, 'mappings (address order, flags, VmBo link)');
    eq(kernel, model.kernel ? 1 : 0);
    eq(vm.count, model.count);
    for (const bo of this.bos) {
      const id = bo.id;
      const vbs = bo.vmBos.filter((x) => x.vm === vm);
      eq(vbs.length, model.hasVmBo(id) ? 1 : 0, `VmBo of ${bo.name} exists`);
      if (vbs.length === 0) continue;
      const vb = vbs[0];
      eq(vb.refcount, model.refcount(id), `refcount of ${bo.name}`);
      same(
        vb.mappings().map((m) => vaKey(m.addr, m.range, m.bo?.id ?? 0, m.offset)),
        model.vmBoList(id).map((m) => vaKey(m.addr, m.range, m.bo, m.offset)),
        `mappings of the VmBo of ${bo.name}, link order`,
      );
    }
    const external = new Set(this.bos.filter((b) => b.external(vm)).map((b) => b.id));
    expect(vm.extobjs.map((vb) => vb.bo.id), 'extobjs, in order').toEqual(model.vmBoOrder().filter((id) => external.has(id)));
    model.checkInvariants();
  }
}

describe.each(availableBackends())('random stream vs model on %s', (backend) => {
  it.each(UNIVERSES)('$name', (u) => {
    const s = new Stream(backend, u);
    const target = Math.round(CORE_REQUESTS * u.share);
    s.run(target);
    checkInvariants(s.vm, s.bos);
    // the stream really covered what it is meant to
    expect(s.core).toBeGreaterThanOrEqual(target);
    expect(s.invalid).toBeGreaterThan(target / 100);
    for (const k of ['map', 'unmap', 'prefetch', 'unmapbo', 'obtain', 'put', 'flags']) expect(s.kinds[k]).toBeGreaterThan(target / 200);
    const cases = ['map', 'unmap', 'unmap+keep', 'remap+prev', 'remap+next', 'remap+prev+next', 'remap+prev+keep', 'remap+next+keep', 'remap+prev+next+keep', 'EINVAL'];
    if (u.bigint) cases.push('wrapped');
    for (const c of cases) expect(s.cover[c] ?? 0, `stream coverage of ${c}`).toBeGreaterThan(target / 2000);
    s.vm.destroy();
  });
});
