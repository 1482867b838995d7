/**
 * vm.submit (batched bind/unbind requests, one engine crossing per 8192): on
 * every engine a batch ends exactly where the same sequence of fused
 * bind/unbind calls ends (mappings, VmBo lists, refcounts, each BO's VmBo
 * list), with the same per-request op counts and errors (EINVAL for zero
 * ranges, overflow, the kernel node or outside the VM; EBUSY while a list is
 * partly applied), and both engines agree. Bad input throws before anything
 * runs; ENOMEM stops the batch with the requests before it applied.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  BindRequests,
  Bo,
  engineMemory,
  GpuVm,
  GpuVmError,
  PageTable,
  setEngineMemoryLimit,
  type PtSegment,
  type U64,
} from '../src/index.js';
import { backends } from './support/engines.js';
import { Prng } from './support/prng.js';
import { checkInvariants, snapshotWorld, thrown } from './support/state.js';

const PG = 0x1000;
const START = 0x100000;
const PAGES = 512; // the VM: [START, START + 512 pages)
const KERNEL = { start: START + 400 * PG, range: 16 * PG };
const TWO64 = 1n << 64n;
const NOT_RUN = 0x5eed; // a result the engine never writes for these streams

type AnyVm = GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function makeVm(backend: 'native' | 'wasm', big: boolean, name: string): AnyVm {
  return big
    ? new GpuVm({ name, start: BigInt(START), range: BigInt(PAGES * PG), reserve: { start: BigInt(KERNEL.start), range: BigInt(KERNEL.range) }, bigint: true, backend })
    : new GpuVm({ name, start: START, range: PAGES * PG, reserve: KERNEL, backend });
}

function makeBos(): (Bo | null)[] {
  return [null, ...Array.from({ length: 5 }, (_, i) => new Bo({ name: `b${i}`, size: 2 ** 32 }))];
}

/** A random stream over the VM, with some requests that must fail. */
function stream(seed: number, n: number, big: boolean, nbos: number): BindRequests<U64> {
  const rnd = new Prng(seed);
  const reqs = new BindRequests(n, { bigint: big });
  const v = (x: number | bigint): U64 => (big ? BigInt(x) : Number(x));
  for (let i = 0; i < n; i++) {
    const pages = 1 + rnd.int(24);
    const at = rnd.int(PAGES - pages + 1);
    let addr: number | bigint = START + at * PG;
    let range: number | bigint = pages * PG;
    const bad = rnd.int(40);
    if (bad === 0) range = 0; // zero range
    else if (bad === 1) addr = KERNEL.start - PG; // over the kernel node
    else if (bad === 2) addr = START - PG; // starts before the VM
    else if (bad === 3) addr = START + (PAGES - 1) * PG; // ends past the VM
    else if (bad === 4 && big) {
      addr = TWO64 - BigInt(PG); // addr + range overflows u64
      range = 2n * BigInt(PG);
    }
    if (rnd.chance(0.35)) {
      reqs.unbind(v(addr), v(range));
    } else {
      const offset = rnd.chance(0.5) ? at * PG : rnd.int(1 << 16) * PG;
      reqs.bind(v(addr), v(range), rnd.int(nbos + 1) - 1, v(offset)); // -1: no BO; index 0 is null too
    }
  }
  return reqs;
}

/** The same requests as fused calls: op count or -errno each, stopping after ENOMEM. */
/** One batch of all of reqs equals the same fused calls on a twin VM: results, state, extobj order. */
function expectLikeFusedCalls(backend: 'native' | 'wasm', reqs: BindRequests<number>, bos: readonly (Bo | null)[]): void {
  const n = reqs.length;
  const vm = makeVm(backend, false, 'vm');
  const ref = makeVm(backend, false, 'vm');
  expect(vm.submit(reqs, bos)).toBe(n);
  expect([...reqs.results.subarray(0, n)]).toEqual(runFused(ref, reqs, bos));
  const named = bos.filter((b): b is Bo => b !== null);
  expect(snapshotWorld([vm], named)).toEqual(snapshotWorld([ref], named));
  expect(vm.extobjs.map((x) => x.bo.name)).toEqual(ref.extobjs.map((x) => x.bo.name));
  checkInvariants(vm, named);
  vm.destroy();
  ref.destroy();
}

function runFused(vm: AnyVm, reqs: BindRequests<U64>, bos: readonly (Bo | null)[], from = 0, to = reqs.length): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) {
    const b = reqs.bo[i];
    try {
      out.push(
        reqs.kind[i] === BindRequests.BIND
          ? vm.bind(reqs.addr[i], reqs.range[i], b >= 0 ? bos[b] : null, reqs.offset[i])
          : vm.unbind(reqs.addr[i], reqs.range[i]),
      );
    } catch (e) {
      if (!(e instanceof GpuVmError)) throw e;
      out.push(-e.errno);
      if (e.code === 'ENOMEM') break;
    }
  }
  return out;
}

/** Requests [from, to) of `all` as a batch of their own. */
function slice(all: BindRequests<U64>, from: number, to: number): BindRequests<U64> {
  const r = new BindRequests(to - from, { bigint: all.bigint });
  r.kind.set(all.kind.subarray(from, to));
  (r.addr as Float64Array).set((all.addr as Float64Array).subarray(from, to));
  (r.range as Float64Array).set((all.range as Float64Array).subarray(from, to));
  (r.offset as Float64Array).set((all.offset as Float64Array).subarray(from, to));
  r.bo.set(all.bo.subarray(from, to));
  r.length = to - from;
  return r;
}

/** A list of `vm` with its first op applied: the VM is busy until it is dropped. */
function makeBusy(vm: AnyVm): { drop(): void } {
  const span = KERNEL.start - START; // everything below the kernel node
  const list = vm.smMapOps({ addr: vm.start, range: vm.bigint ? BigInt(span) : span, bo: null });
  expect(list.length).toBeGreaterThan(1);
  const op = list.get(0);
  if (op.kind === 'remap') vm.vaRemap(op);
  else if (op.kind === 'unmap') vm.vaUnmap(op);
  else throw new Error(`expected a remap or an unmap first, got ${op.kind}`);
  expect(list.state).toBe('pending');
  return list;
}

const physical = (bo: Bo, offset: number): number => bo.id * 2 ** 32 + offset;
function resolve(bo: unknown, offset: number | bigint, length: number | bigint): PtSegment[] {
  return [{ pa: physical(bo as Bo, Number(offset)), len: Number(length) }];
}

/** Per engine, what each stream produced: native and WASM must agree. */
const produced = new Map<string, Map<string, unknown>>();
function record(backend: string, key: string, value: unknown): void {
  let m = produced.get(key);
  if (!m) produced.set(key, (m = new Map()));
  m.set(backend, value);
}

for (const backend of backends) {
  describe(`vm.submit on ${backend}`, () => {
    afterEach(() => setEngineMemoryLimit(null, backend));

    for (const big of [false, true]) {
      it.each([1, 2, 3])(`a batch equals the same fused calls (${big ? 'bigint' : 'number'} mode, seed %i)`, (seed) => {
        const bos = makeBos();
        const n = seed === 1 ? 20000 : 3000; // seed 1 crosses chunk boundaries (8192 a crossing)
        const reqs = stream(seed * 101 + (big ? 7 : 0), n, big, bos.length);
        const a = makeVm(backend, big, 'vm');
        const f = makeVm(backend, big, 'vm');
        reqs.results.fill(NOT_RUN);
        // three parts: the second runs while a list is partly applied (all EBUSY)
        const cut1 = Math.floor(n / 2);
        const cut2 = cut1 + 50;
        const results: number[] = [];
        const parts: [number, number, boolean][] = [
          [0, cut1, false],
          [cut1, cut2, true],
          [cut2, n, false],
        ];
        for (const [from, to, busy] of parts) {
          const ba = busy ? makeBusy(a) : null;
          const bf = busy ? makeBusy(f) : null;
          const part = slice(reqs, from, to);
          expect(a.submit(part, bos)).toBe(to - from);
          results.push(...part.results.subarray(0, to - from));
          const want = runFused(f, reqs, bos, from, to);
          expect([...part.results.subarray(0, to - from)]).toEqual(want);
          if (busy) expect(want.every((r) => r === -16 || r === -22)).toBe(true); // arguments are checked first
          ba?.drop();
          bf?.drop();
          expect(snapshotWorld([a], bos.filter((b): b is Bo => b !== null))).toEqual(
            snapshotWorld([f], bos.filter((b): b is Bo => b !== null)),
          );
        }
        checkInvariants(a, bos.filter((b): b is Bo => b !== null));
        // the stream has every kind of outcome
        expect(results.some((r) => r === -22)).toBe(true);
        expect(results.some((r) => r > 1)).toBe(true);
        expect(results.some((r) => r === 0)).toBe(true);
        // one batch of everything gives the same too
        const whole = makeVm(backend, big, 'vm');
        expect(whole.submit(reqs, bos)).toBe(n);
        const fusedWhole = makeVm(backend, big, 'vm');
        expect([...reqs.results.subarray(0, n)]).toEqual(runFused(fusedWhole, reqs, bos));
        expect(reqs.error(reqs.results.indexOf(-22))).toBe('EINVAL');
        const snap = snapshotWorld([whole], bos.filter((b): b is Bo => b !== null));
        expect(snap).toEqual(snapshotWorld([fusedWhole], bos.filter((b): b is Bo => b !== null)));
        record(backend, `stream ${big} ${seed}`, { results, whole: [...reqs.results.subarray(0, n)], snap });
        for (const vm of [a, f, whole, fusedWhole]) vm.destroy();
      });
    }

    it('thousands of BOs new to the VM in one batch: each VmBo made at its first bind, as fused calls make them', () => {
      // the first bind of each BO makes its VmBo inside the batch (no stop per
      // BO); later binds of the same BO in the chunk use it, unless it went
      const rnd = new Prng(4242);
      const nb = 3000;
      const bos: (Bo | null)[] = [null, ...Array.from({ length: nb }, (_, i) => new Bo({ name: `f${i}` }))];
      const n = 9000; // crosses a chunk boundary (8192 a crossing)
      const reqs = new BindRequests(n);
      for (let i = 0; i < n; i++) {
        const at = START + rnd.int(PAGES - 8) * PG;
        if (rnd.int(4) === 0) reqs.unbind(at, (1 + rnd.int(4)) * PG);
        else reqs.bind(at, (1 + rnd.int(4)) * PG, rnd.int(nb + 1), rnd.int(64) * PG);
      }
      expectLikeFusedCalls(backend, reqs, bos);
    });

    it('a BO that stands in the BO table more than once gets one VmBo', () => {
      const [, b0, b1] = makeBos() as Bo[];
      const bos = [null, b0, b1, b0, b0];
      const reqs = new BindRequests(7);
      reqs.bind(START, PG, 1, 0);
      reqs.bind(START + 4 * PG, PG, 3, 0);
      reqs.bind(START + 8 * PG, PG, 2, 0);
      reqs.bind(START + 12 * PG, PG, 4, 0);
      reqs.unbind(START + 8 * PG, PG); // b1's VmBo goes
      reqs.bind(START + 20 * PG, PG, 2, 0); // and comes back
      reqs.bind(START + 24 * PG, PG, 3, 0);
      expectLikeFusedCalls(backend, reqs, bos);
    });

    it('a BO whose VmBo goes and comes back again and again in one batch: as the fused calls', () => {
      // every other request ends the BO's VmBo and the next one needs it
      // again, which stops the batch each time; the stops come thick, then
      // thin (the chunks after a stop shrink, then grow back)
      const bos = makeBos();
      const n = 12000;
      const reqs = new BindRequests(n);
      for (let i = 0; i < n; i++) {
        const at = START + (i % 40) * 4 * PG;
        if (i < 4000 || i >= 9000) {
          if (i % 2 === 0) reqs.bind(at, PG, 1 + ((i >> 1) % 3), 0);
          else reqs.unbind(at, PG);
        } else {
          reqs.bind(at, 2 * PG, 4, i * PG); // BO 4 keeps mappings: no stops in here
        }
      }
      expectLikeFusedCalls(backend, reqs, bos);
    });

    it('VmBos: created once for new BOs, held through the batch, released or reaped as fused calls leave them', () => {
      const bos = makeBos();
      const [, b0, b1, b2] = bos as Bo[];
      const vm = makeVm(backend, false, 'vm');
      const ref = makeVm(backend, false, 'vm');
      for (const v of [vm, ref]) v.bind(START + 100 * PG, PG, b2, 0); // b2 has a VmBo before the batch
      const reqs = new BindRequests(8);
      reqs.bind(START, 4 * PG, 1, 0); // b0: new VmBo
      reqs.unbind(START, 4 * PG); // b0's last mapping goes: fused calls would reap its VmBo here
      reqs.bind(START + 8 * PG, PG, 1, 0); // b0 again
      reqs.bind(START + 20 * PG, PG, 2, 0); // b1: new, and gone by the end
      reqs.unbind(START + 20 * PG, PG);
      reqs.unbind(START + 100 * PG, PG); // b2's only mapping
      reqs.bind(START + 30 * PG, PG, 4, 0); // index 4 is b3, a fresh BO, kept
      reqs.bind(START + 31 * PG, PG, 0, 0); // index 0 is null: no BO
      expect(vm.submit(reqs, bos)).toBe(8);
      expect([...reqs.results.subarray(0, 8)]).toEqual(runFused(ref, reqs, bos));
      const named = bos.filter((b): b is Bo => b !== null);
      expect(snapshotWorld([vm], named)).toEqual(snapshotWorld([ref], named));
      const inVm = (b: Bo): unknown[] => b.vmBos.filter((x) => x.vm === vm);
      expect(inVm(b1)).toEqual([]);
      expect(inVm(b2)).toEqual([]);
      expect(inVm(b0).length).toBe(1);
      expect(b0.vmBos.find((x) => x.vm === vm)?.refcount).toBe(1);
      // b0's VmBo was reaped mid-batch and made again at its next bind, as the fused calls do
      expect(vm.extobjs.map((x) => x.bo.name)).toEqual(ref.extobjs.map((x) => x.bo.name));
      checkInvariants(vm, named);
      // an unused BO in the table gets nothing
      const r2 = new BindRequests(1);
      r2.unbind(START, PG);
      vm.submit(r2, bos);
      expect(inVm(bos[5] as Bo)).toEqual([]);
      vm.destroy();
      ref.destroy();
    });

    it('bad input throws before anything runs: nothing changes, no result is written', () => {
      const bos = makeBos();
      const named = bos.filter((b): b is Bo => b !== null);
      const vm = makeVm(backend, false, 'vm');
      vm.bind(START, 8 * PG, bos[1], 0);
      const before = snapshotWorld([vm], named);
      const good = (): BindRequests<number> => {
        const r = new BindRequests(4);
        r.bind(START + 20 * PG, PG, 2, 0); // a valid first request, never run
        r.unbind(START, PG);
        r.results.fill(NOT_RUN);
        return r;
      };
      const cases: [string, RegExp, (r: BindRequests<number>) => unknown][] = [
        ['TypeError', /requests must be a BindRequests/, () => vm.submit({} as BindRequests<number>, bos)],
        ['TypeError', /requests must be a BindRequests/, () => vm.submit(null as unknown as BindRequests<number>, bos)],
        ['TypeError', /bos must be an array/, (r) => vm.submit(r, 'x' as unknown as Bo[])],
        ['TypeError', /bos\[2\] must be a Bo or null/, (r) => vm.submit(r, [null, bos[1], { id: (bos[2] as Bo).id } as Bo])],
        ['TypeError', /bigint mode/, () => vm.submit(new BindRequests(1, { bigint: true }) as unknown as BindRequests<number>, bos)],
        ['RangeError', /kind\[1\]/, (r) => ((r.kind[1] = 3), vm.submit(r, bos))],
        ['RangeError', /kind\[2\]/, (r) => ((r.length = 3), vm.submit(r, bos))], // kind 0: never filled
        ['RangeError', /bo\[0\] = 9/, (r) => ((r.bo[0] = 9), vm.submit(r, bos))],
        ['RangeError', /bo\[0\] = -2/, (r) => ((r.bo[0] = -2), vm.submit(r, bos))],
        ['RangeError', /bo\[0\] = 2 is neither/, (r) => vm.submit(r, [null])],
        ['RangeError', /addr\[1\]/, (r) => ((r.addr[1] = NaN), vm.submit(r, bos))],
        ['RangeError', /range\[1\]/, (r) => ((r.range[1] = -PG), vm.submit(r, bos))],
        ['RangeError', /offset\[0\]/, (r) => ((r.offset[0] = 0.5), vm.submit(r, bos))],
        ['RangeError', /addr\[0\]/, (r) => ((r.addr[0] = 2 ** 53), vm.submit(r, bos))],
        ['RangeError', /addr\[0\]/, (r) => ((r.addr[0] = Infinity), vm.submit(r, bos))],
        ['RangeError', /offset \+ range is above 2\^53/, (r) => ((r.offset[0] = 2 ** 53 - PG / 2), vm.submit(r, bos))],
        ['RangeError', /length must be/, (r) => ((r.length = 5), vm.submit(r, bos))],
        ['RangeError', /length must be/, (r) => ((r.length = 1.5), vm.submit(r, bos))],
      ];
      for (const [type, msg, call] of cases) {
        const r = good();
        const e = thrown(() => call(r));
        expect(e.constructor.name, String(msg)).toBe(type);
        expect(e.message).toMatch(msg);
        expect([...r.results]).toEqual([NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN]);
        expect(snapshotWorld([vm], named)).toEqual(before);
        expect((bos[2] as Bo).vmBos.filter((x) => x.vm === vm)).toEqual([]);
      }
      // an unbind ignores its bo and offset columns
      const r = good();
      r.bo[1] = 99;
      r.offset[1] = NaN;
      expect(vm.submit(r, bos)).toBe(2);
      // the appenders check their arguments
      const small = new BindRequests(1);
      expect(() => small.bind(1n as unknown as number, PG)).toThrow(TypeError);
      expect(() => small.bind(START, PG, -5)).toThrow(RangeError);
      small.unbind(START, PG);
      expect(() => small.unbind(START, PG)).toThrow(/full/);
      expect(() => new BindRequests(1, { bigint: true }).bind(-1n, 1n)).toThrow(RangeError);
      expect(() => new BindRequests(-1)).toThrow(RangeError);
      // a destroyed VM
      vm.destroy();
      const e = thrown(() => vm.submit(good(), bos));
      expect(e).toBeInstanceOf(GpuVmError);
      expect((e as GpuVmError).code).toBe('EINVAL');
    });

    it('ENOMEM stops the batch: earlier requests stay applied, the failing one changes nothing, later ones do not run', () => {
      const bos = makeBos();
      const named = bos.filter((b): b is Bo => b !== null);
      const vm = new GpuVm({ name: 'm', start: 0, range: 2 ** 40, backend });
      vm.bind(0, PG, bos[1], 0); // bos[1] has its VmBo
      setEngineMemoryLimit(engineMemory(backend).used, backend);
      // take what is left, then give a little back (records are reused, not returned)
      let filled = 0;
      for (;; filled++) {
        try {
          vm.bind(PG * (16 + 2 * filled), PG, null);
        } catch (e) {
          expect((e as GpuVmError).code).toBe('ENOMEM');
          break;
        }
      }
      // no room for another VmBo either
      const extra: Bo[] = [];
      for (;;) {
        const b = new Bo();
        try {
          vm.obtainBo(b);
        } catch (e) {
          expect((e as GpuVmError).code).toBe('ENOMEM');
          break;
        }
        extra.push(b);
      }
      // give the last 200 mappings back (their records and tree nodes are reused, not returned)
      // (remove, not unbind: an unbind keeps room for a split and there is none)
      for (let i = filled - 1; i >= Math.max(0, filled - 200); i--) {
        const va = vm.findFirst(PG * (16 + 2 * i), PG * (16 + 2 * i));
        if (va === null) throw new Error('filler mapping missing');
        vm.remove(va);
      }
      // a fresh BO needs a VmBo: its first bind fails with ENOMEM (as bind would) and the batch stops there
      const fresh = new BindRequests(3);
      fresh.unbind(PG * 8, PG);
      fresh.bind(PG * 8, PG, 2, 0);
      fresh.unbind(PG * 8, PG);
      fresh.results.fill(NOT_RUN);
      const snap0 = snapshotWorld([vm], named);
      expect(vm.submit(fresh, bos)).toBe(2);
      expect([...fresh.results]).toEqual([0, -12, NOT_RUN]);
      expect(snapshotWorld([vm], named)).toEqual(snap0);
      expect((bos[2] as Bo).vmBos).toEqual([]);
      // binds of bos[1] into new space until memory runs out
      const n = 4000;
      const reqs = new BindRequests(n);
      const base = 2 ** 30;
      for (let i = 0; i < n; i++) reqs.bind(base + 2 * i * PG, PG, 1, 0);
      reqs.results.fill(NOT_RUN);
      const count = vm.count;
      const ran = vm.submit(reqs, bos);
      expect(ran).toBeGreaterThan(1);
      expect(ran).toBeLessThan(n);
      const k = ran - 1;
      expect(reqs.results[k]).toBe(-12);
      expect(reqs.error(k)).toBe('ENOMEM');
      expect([...reqs.results.subarray(0, k)].every((r) => r === 1)).toBe(true);
      expect([...reqs.results.subarray(ran)].every((r) => r === NOT_RUN)).toBe(true);
      expect(vm.count).toBe(count + k);
      expect(vm.findFirst(base + 2 * (k - 1) * PG, base + 2 * (k - 1) * PG)).not.toBe(null);
      expect(vm.findFirst(base + 2 * k * PG, base + 2 * k * PG)).toBe(null);
      checkInvariants(vm, named);
      // with the limit lifted the rest runs
      setEngineMemoryLimit(null, backend);
      const rest = slice(reqs as unknown as BindRequests<U64>, ran, n);
      expect(vm.submit(rest as unknown as BindRequests<number>, bos)).toBe(n - ran);
      expect(vm.count).toBe(count + n - 1);
      checkInvariants(vm, named);
      vm.destroy();
    });

    it('with a page table attached, requests go one by one through bind/unbind and the table stays in step', () => {
      const bos = makeBos();
      const named = bos.filter((b): b is Bo => b !== null);
      const reqs = stream(77, 400, false, bos.length);
      const vm = makeVm(backend, false, 'vm');
      const ref = makeVm(backend, false, 'vm');
      const pt = new PageTable({ backend });
      vm.attachPageTable(pt, resolve);
      expect(vm.submit(reqs as BindRequests<number>, bos)).toBe(400);
      expect([...reqs.results.subarray(0, 400)]).toEqual(runFused(ref, reqs, bos));
      expect(snapshotWorld([vm], named)).toEqual(snapshotWorld([ref], named));
      for (const va of vm.mappings()) {
        if (va.isKernelNode) continue;
        const t = pt.translate(va.addr + va.range - 1);
        expect(t?.pa ?? null).toBe(va.bo === null ? null : physical(va.bo, va.offset + va.range - 1));
      }
      vm.destroy();
      ref.destroy();
      pt.destroy();
    });
  });
}

describe('vm.submit: the engines agree', () => {
  it('native and WASM give the same results and states', () => {
    if (backends.length < 2) return;
    expect(produced.size).toBeGreaterThan(0);
    for (const [key, m] of produced) {
      expect(m.size, key).toBe(backends.length);
      const [first, ...others] = [...m.values()];
      for (const o of others) expect(o, key).toEqual(first);
    }
  });
});
