/**
 * "A call that fails changes nothing" for every kind of failing
 * public call: wrong types (TypeError), out-of-range numbers (RangeError),
 * EINVAL geometry, the kernel node, EEXIST inserts, EBUSY while a list is
 * partly applied, stale / applied / dropped / foreign op lists, use after put,
 * a destroyed VM, flag width, link with a BO mismatch. Each case runs on a
 * busy world (support/world.ts); the full snapshot of both VMs and of every
 * BO's VmBo list, and the identity of every live object, must be the same
 * after the failure. Messages must name the argument and the value.
 */
import { describe, expect, it } from 'vitest';
import { availableBackends, GpuVa, GpuVm, GpuVmError, VmBo, type OpList } from '../src/index.js';
import { listKeys } from './support/keys.js';
import { expectSameObjects, snapshotWorld, thrown } from './support/state.js';
import { buildWorld, KERNEL, pa, pb, PG, SPAN, A0, type World } from './support/world.js';

const P = BigInt(PG);
const TWO64 = 1n << 64n;
const K = BigInt(KERNEL.start);

type Kind = 'TypeError' | 'RangeError' | 'EINVAL' | 'EEXIST' | 'EBUSY' | 'EPERM';

interface Case {
  name: string;
  kind: Kind;
  /** each must match the message */
  msg?: RegExp[];
  call: (w: World, ctx: any) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
}

interface Group {
  group: string;
  /** brings the world into the state the cases need; returns their context */
  prep?: (w: World) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** checked after each case, with the context */
  after?: (w: World, ctx: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
  cases: Case[];
}

const no = () => expect.fail('a step ran for a failing call');
const steps = { map: no, remap: no, unmap: no };
const vaAt = (w: World, page: number) => w.vmA.findFirst(pa(page), 1n)!;

const GROUPS: Group[] = [
  {
    group: 'wrong types (TypeError)',
    cases: [
      { name: 'bind with a string address', kind: 'TypeError', msg: [/addr/, /0x100000/], call: (w) => w.vmA.bind('0x100000' as never, P, null) },
      { name: 'bind with a non-Bo', kind: 'TypeError', msg: [/bo/, /object/], call: (w) => w.vmA.bind(pa(50), P, {} as never) },
      { name: 'bind with a boolean range', kind: 'TypeError', msg: [/range/, /true/], call: (w) => w.vmB.bind(pb(50), true as never, null) },
      { name: 'bind with a fresh BO and a string offset', kind: 'TypeError', msg: [/offset/, /"8"/], call: (w) => w.vmA.bind(pa(50), P, w.b.fresh, '8' as never) },
      { name: 'unbind without arguments', kind: 'TypeError', msg: [/addr/, /undefined/], call: (w) => (w.vmA.unbind as (...a: unknown[]) => number)() },
      { name: 'smMapOps(null)', kind: 'TypeError', msg: [/smMapOps/, /null/], call: (w) => w.vmA.smMapOps(null as never) },
      { name: 'smMapOps with a string range', kind: 'TypeError', msg: [/range/, /"x"/], call: (w) => w.vmA.smMapOps({ addr: pa(50), range: 'x' as never, bo: w.b.fresh }) },
      { name: 'smUnmapOps with an object', kind: 'TypeError', msg: [/addr/], call: (w) => w.vmA.smUnmapOps({} as never, P) },
      { name: 'prefetchOps with null range', kind: 'TypeError', msg: [/range/, /null/], call: (w) => w.vmA.prefetchOps(pa(0), null as never) },
      { name: 'madviseOps with a string', kind: 'TypeError', msg: [/addr/, /"0"/], call: (w) => w.vmA.madviseOps('0' as never, P) },
      { name: 'bindArray of a string', kind: 'TypeError', msg: [/bindArray/, /"x"/], call: (w) => w.vmA.bindArray('x' as never) },
      { name: 'bindArray with an unknown op', kind: 'TypeError', msg: [/bindArray\[1\]\.op/, /"bogus"/], call: (w) => w.vmA.bindArray([{ op: 'unmap', addr: pa(0), range: P }, { op: 'bogus' } as never]) },
      { name: 'bindArray with a non-Bo bo', kind: 'TypeError', msg: [/bindArray\[1\]\.bo/, /5/], call: (w) => w.vmA.bindArray([{ op: 'map', addr: pa(50), range: P, bo: w.b.fresh }, { op: 'map', addr: pa(52), range: P, bo: 5 as never }]) },
      {
        // the fresh BO's temporary VmBo is made before entry 1 is staged: it must go again
        name: 'bindArray with a fresh BO, then a string offset',
        kind: 'TypeError',
        msg: [/bindArray\[1\]\.offset/, /"1"/],
        call: (w) => w.vmA.bindArray([{ op: 'map', addr: pa(50), range: P, bo: w.b.fresh }, { op: 'map', addr: pa(52), range: P, bo: null, offset: '1' as never }]),
      },
      { name: 'bindArray entry null', kind: 'TypeError', msg: [/bindArray\[0\]/, /null/], call: (w) => w.vmA.bindArray([null as never]) },
      { name: 'bindArray with a string injectError', kind: 'TypeError', msg: [/bindArray\[0\]\.injectError/], call: (w) => w.vmA.bindArray([{ op: 'unmap', addr: pa(0), range: P, injectError: 'yes' as never }]) },
      { name: 'insert with an object address', kind: 'TypeError', msg: [/addr/], call: (w) => w.vmA.insert({ addr: {} as never, range: P }) },
      { name: 'insert with a non-integer flags', kind: 'TypeError', msg: [/flags/, /1\.5/], call: (w) => w.vmA.insert({ addr: pa(50), range: P, flags: 1.5 }) },
      { name: 'obtainBo of a non-Bo', kind: 'TypeError', msg: [/bo/], call: (w) => w.vmA.obtainBo({} as never) },
      { name: 'findBo of null', kind: 'TypeError', msg: [/bo/, /null/], call: (w) => w.vmA.findBo(null as never) },
      { name: 'evict with a string', kind: 'TypeError', msg: [/evict/, /"yes"/], call: (w) => w.refs.held.evict('yes' as never) },
      { name: 'flags set to a string', kind: 'TypeError', msg: [/flags/, /"x"/], call: (w) => { vaAt(w, 0).flags = 'x' as never; } },
      { name: 'validate with a number', kind: 'TypeError', msg: [/validate/, /123/], call: (w) => w.vmA.validate(123 as never) },
      { name: 'mappings with addr but no range', kind: 'TypeError', msg: [/mappings/], call: (w) => [...w.vmA.mappings(pa(0))] },
      { name: 'link to a non-VmBo', kind: 'TypeError', msg: [/link/], call: (w) => vaAt(w, 0).link({} as never) },
      { name: 'vaMap of a non-op', kind: 'TypeError', msg: [/vaMap/], call: (w) => w.vmA.vaMap({ kind: 'map' } as never) },
      { name: 'remove of a non-GpuVa', kind: 'TypeError', msg: [/remove/], call: (w) => w.vmA.remove({} as never) },
      { name: 'touchedBos with an unknown op', kind: 'TypeError', msg: [/touchedBos/, /"x"/], call: (w) => w.vmA.touchedBos({ op: 'x' } as never) },
    ],
  },
  {
    group: 'out-of-range numbers (RangeError)',
    cases: [
      { name: 'negative address', kind: 'RangeError', msg: [/addr/, /-4096/], call: (w) => w.vmB.bind(-PG, PG, null) },
      { name: 'fractional range', kind: 'RangeError', msg: [/range/, /1\.5/], call: (w) => w.vmB.bind(pb(50), 1.5, null) },
      { name: 'NaN range', kind: 'RangeError', msg: [/range/, /NaN/], call: (w) => w.vmB.unbind(pb(0), NaN) },
      { name: 'Infinity address', kind: 'RangeError', msg: [/addr/, /Infinity/], call: (w) => w.vmB.prefetchOps(Infinity, PG) },
      { name: 'number offset above 2^53 - 1', kind: 'RangeError', msg: [/offset/, /9007199254740992/], call: (w) => w.vmB.bind(pb(50), PG, w.b.s1, 2 ** 53) },
      { name: 'bigint offset above 2^53 in number mode', kind: 'RangeError', msg: [/offset/, /MAX_SAFE_INTEGER/], call: (w) => w.vmB.bind(pb(50), PG, w.b.fresh, 2n ** 60n) },
      { name: 'negative bigint', kind: 'RangeError', msg: [/addr/, /-1/], call: (w) => w.vmA.bind(-1n, P, null) },
      { name: 'bigint range of 2^64', kind: 'RangeError', msg: [/range/, /18446744073709551616/], call: (w) => w.vmA.unbind(pa(0), TWO64) },
      { name: 'smMapOps offset of 2^64 with a fresh BO', kind: 'RangeError', msg: [/offset/], call: (w) => w.vmA.smMapOps({ addr: pa(50), range: P, bo: w.b.fresh, offset: TWO64 }) },
      { name: 'bindArray entry with a negative range', kind: 'RangeError', msg: [/bindArray\[1\]\.range/, /-1/], call: (w) => w.vmA.bindArray([{ op: 'map', addr: pa(50), range: P, bo: w.b.fresh }, { op: 'unmap', addr: pa(0), range: -1n }]) },
      { name: 'insert with flags of 2^32', kind: 'RangeError', msg: [/flags/, /0x100000000|4294967296/], call: (w) => w.vmA.insert({ addr: pa(50), range: P, flags: 2 ** 32 }) },
      { name: 'insert with negative flags', kind: 'RangeError', msg: [/flags/, /-/], call: (w) => w.vmA.insert({ addr: pa(50), range: P, flags: -1 }) },
      { name: 'flags set to 2^32', kind: 'RangeError', msg: [/flags/], call: (w) => { vaAt(w, 0).flags = 2 ** 32; } },
      { name: 'flags set to -1', kind: 'RangeError', msg: [/flags/], call: (w) => { vaAt(w, 20).flags = -1; } },
      { name: 'findFirstMany with a negative address', kind: 'RangeError', msg: [/addrs\[1\]/, /-1/], call: (w) => w.vmB.findFirstMany([pb(0), -1]) },
    ],
  },
  {
    group: 'EINVAL geometry',
    cases: [
      { name: 'bind with zero range', kind: 'EINVAL', msg: [/zero/, /0x102000/], call: (w) => w.vmA.bind(pa(2), 0n, w.b.s1, 0n) },
      { name: 'bind of a fresh BO with zero range', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.bind(pa(50), 0n, w.b.fresh, 0n) },
      { name: 'bind whose end is exactly 2^64', kind: 'EINVAL', msg: [/overflow/, /0xfffffffffffff000/], call: (w) => w.vmA.bind(TWO64 - P, P, null) },
      { name: 'bind that wraps u64', kind: 'EINVAL', msg: [/overflow/], call: (w) => w.vmA.bind(pa(2), TWO64 - P, w.b.fresh) },
      { name: 'bind before the VM', kind: 'EINVAL', msg: [/not inside/, /0xff000/], call: (w) => w.vmA.bind(pa(-1), P, w.b.s1) },
      { name: 'bind partly past the end', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmB.bind(A0 + SPAN - PG, 2 * PG, w.b.fresh) },
      { name: 'bind entirely past the end', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmB.bind(A0 + SPAN, PG, null) },
      { name: 'unbind partly before the VM', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmA.unbind(pa(-1), 4n * P) },
      { name: 'unbind with zero range', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.unbind(pa(0), 0n) },
      { name: 'unbind outside the VM', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmB.unbind(A0 + 2 * SPAN, PG) },
      { name: 'smMapOps of a fresh BO outside', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmA.smMapOps({ addr: pa(300), range: P, bo: w.b.fresh }) },
      { name: 'smUnmapOps overflowing', kind: 'EINVAL', msg: [/overflow/], call: (w) => w.vmA.smUnmapOps(TWO64 - P, 2n * P) },
      // prefetch checks only for overflow (a zero range or one reaching outside the VM lists what it overlaps)
      { name: 'prefetchOps overflowing u64', kind: 'EINVAL', msg: [/overflows/], call: (w) => w.vmA.prefetchOps(2n ** 64n - 0x1000n, 0x2000n) },
      { name: 'madviseOps with zero range', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.madviseOps(pa(16), 0n) },
      { name: 'madviseOps outside', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmA.madviseOps(pa(-4), 2n * P) },
      { name: 'insert with zero range', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.insert({ addr: pa(50), range: 0n }) },
      { name: 'insert outside', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmB.insert({ addr: A0 + SPAN, range: PG, bo: w.b.fresh }) },
      { name: 'touchedBos of an invalid map', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.touchedBos({ op: 'map', addr: pa(50), range: 0n, bo: w.b.fresh }) },
      { name: 'smMap callback mode outside', kind: 'EINVAL', msg: [/not inside/], call: (w) => w.vmA.smMap({ addr: pa(-2), range: P, bo: w.b.fresh }, steps) },
      { name: 'smUnmap callback mode with zero range', kind: 'EINVAL', msg: [/zero/], call: (w) => w.vmA.smUnmap(pa(0), 0n, steps) },
      { name: 'smMap without steps', kind: 'EINVAL', msg: [/steps/], call: (w) => w.vmA.smMap({ addr: pa(50), range: P, bo: w.b.fresh }, null as never) },
      { name: 'smUnmap with steps lacking remap', kind: 'EINVAL', msg: [/remap/], call: (w) => w.vmA.smUnmap(pa(0), P, { unmap: no } as never) },
    ],
  },
  {
    group: 'the kernel-reserved node',
    cases: [
      { name: 'bind over it', kind: 'EINVAL', msg: [/kernel/, /0x1f0000/], call: (w) => w.vmA.bind(K - P, 2n * P, w.b.s1, 0n) },
      { name: 'bind of a fresh BO inside it', kind: 'EINVAL', msg: [/kernel/], call: (w) => w.vmA.bind(K, P, w.b.fresh, 0n) },
      { name: 'unbind over it', kind: 'EINVAL', msg: [/kernel/], call: (w) => w.vmA.unbind(K - 4n * P, 8n * P) },
      { name: 'smUnmapOps of the whole VM', kind: 'EINVAL', msg: [/kernel/], call: (w) => w.vmA.smUnmapOps(pa(0), BigInt(SPAN)) },
      { name: 'insert inside it', kind: 'EINVAL', msg: [/kernel/], call: (w) => w.vmA.insert({ addr: K + P, range: P }) },
      { name: 'remove it', kind: 'EPERM', msg: [/kernel/], call: (w) => w.vmA.remove(w.vmA.kernelNode!) },
      { name: 'set its flags', kind: 'EPERM', msg: [/kernel/], call: (w) => { w.vmA.kernelNode!.flags = GpuVa.USERBITS; } },
      { name: 'bindArray entry over it', kind: 'EINVAL', msg: [/bindArray\[1\]/, /kernel/], call: (w) => w.vmA.bindArray([{ op: 'map', addr: pa(50), range: P, bo: w.b.fresh }, { op: 'unmap', addr: K, range: P }]) },
    ],
  },
  {
    group: 'EEXIST insert',
    cases: [
      { name: 'insert over a mapping', kind: 'EEXIST', msg: [/insert/, /0x102000/], call: (w) => w.vmA.insert({ addr: pa(2), range: P, bo: w.b.s1 }) },
      { name: 'insert straddling two mappings', kind: 'EEXIST', msg: [/insert/], call: (w) => w.vmB.insert({ addr: pb(3), range: 6 * PG, bo: w.b.fresh }) },
    ],
  },
  {
    group: 'EBUSY while a list is partly applied',
    prep: (w) => {
      // unmapping [2, 14) splits p and s1 and unmaps a whole s1 mapping: 3 ops
      const list = w.vmA.smUnmapOps(pa(2), 12n * P);
      expect(list.length).toBe(3);
      const op = list.get(0);
      if (op.kind !== 'remap') throw new Error('expected a remap first');
      w.vmA.vaRemap(op);
      expect(list.state).toBe('pending');
      return { list };
    },
    after: (w, { list }: { list: OpList<bigint> }) => {
      // still pending, and applying the rest gives what the whole list gives on a fresh world
      expect(list.state).toBe('pending');
      list.apply();
      const fresh = buildWorld(w.vmA.backend);
      fresh.vmA.smUnmapOps(pa(2), 12n * P).apply();
      expect(w.snap()).toEqual(fresh.snap());
    },
    cases: [
      { name: 'bind', kind: 'EBUSY', msg: [/bind/], call: (w) => w.vmA.bind(pa(50), P, w.b.s1, 0n) },
      { name: 'bind of a fresh BO', kind: 'EBUSY', msg: [/bind/], call: (w) => w.vmA.bind(pa(50), P, w.b.fresh, 0n) },
      { name: 'unbind', kind: 'EBUSY', msg: [/unbind/], call: (w) => w.vmA.unbind(pa(20), P) },
      { name: 'smMapOps', kind: 'EBUSY', call: (w) => w.vmA.smMapOps({ addr: pa(50), range: P, bo: w.b.fresh }) },
      { name: 'smUnmapOps', kind: 'EBUSY', call: (w) => w.vmA.smUnmapOps(pa(20), P) },
      { name: 'prefetchOps', kind: 'EBUSY', call: (w) => w.vmA.prefetchOps(pa(0), P) },
      { name: 'madviseOps', kind: 'EBUSY', call: (w) => w.vmA.madviseOps(pa(16), P) },
      { name: 'VmBo.unmapOps', kind: 'EBUSY', call: (w) => w.refs.s1.unmapOps() },
      { name: 'bindArray', kind: 'EBUSY', call: (w) => w.vmA.bindArray([{ op: 'map', addr: pa(50), range: P, bo: w.b.fresh }, { op: 'unmap', addr: pa(20), range: P }]) },
      { name: 'smMap callback mode', kind: 'EBUSY', call: (w) => w.vmA.smMap({ addr: pa(50), range: P, bo: null }, steps) },
    ],
  },
  {
    group: 'stale, applied, dropped and foreign op lists',
    prep: (w) => {
      const stale = w.vmA.smUnmapOps(pa(20), 2n * P); // replaced by the next list
      const current = w.vmA.prefetchOps(pa(0), 8n * P);
      const staleByBind = w.vmB.smUnmapOps(pb(0), PG);
      w.vmB.bind(pb(40), PG, null); // a fused call makes vmB's list stale
      current.drop();
      const applied = w.vmA.smMapOps({ addr: pa(50), range: P, bo: null });
      applied.apply();
      const dropped = w.vmA.smUnmapOps(pa(0), P);
      dropped.drop();
      const foreign = w.vmB.smUnmapOps(pb(8), PG); // pending on vmB
      return { stale, staleByBind, applied, dropped, foreign, current };
    },
    after: (_w, { foreign }: { foreign: OpList<number> }) => expect(foreign.state).toBe('pending'),
    cases: [
      { name: 'apply a replaced list', kind: 'EINVAL', msg: [/stale/], call: (_w, c) => c.stale.apply() },
      { name: 'vaRemap from a replaced list', kind: 'EINVAL', msg: [/stale/], call: (w, c) => w.vmA.vaRemap(c.stale.get(0)) },
      { name: 'apply a list made stale by bind', kind: 'EINVAL', msg: [/stale/], call: (_w, c) => c.staleByBind.apply() },
      { name: 'apply an applied list again', kind: 'EINVAL', msg: [/applied/], call: (_w, c) => c.applied.apply() },
      { name: 'vaMap from an applied list', kind: 'EINVAL', msg: [/vaMap/], call: (w, c) => w.vmA.vaMap(c.applied.get(0)) },
      { name: 'apply a dropped list', kind: 'EINVAL', msg: [/dropped/], call: (_w, c) => c.dropped.apply() },
      { name: 'vaRemap with an op of another VM', kind: 'EINVAL', msg: [/another VM/], call: (w, c) => w.vmA.vaRemap(c.foreign.get(0)) },
      { name: 'vaUnmap with a remap op', kind: 'TypeError', msg: [/vaUnmap/, /unmap/], call: (w, c) => w.vmB.vaUnmap(c.foreign.get(0)) },
      { name: 'remapHole of a non-remap', kind: 'TypeError', msg: [/remapHole/], call: (w, c) => w.vmA.remapHole(c.applied.get(0)) },
      { name: 'op index out of range', kind: 'RangeError', msg: [/index/, /7/], call: (_w, c) => c.foreign.get(7) },
    ],
  },
  {
    group: 'use after put',
    prep: (w) => {
      const dead = w.vmA.obtainBo(w.b.never);
      expect(dead.put()).toBe(true);
      const inserted = w.vmA.insert({ addr: pa(50), range: P, bo: w.b.never });
      const pre = VmBo.create(w.vmA, w.b.fresh);
      expect(pre.put()).toBe(true);
      return { dead, inserted, pre };
    },
    after: (_w, c) => {
      expect(c.dead.live).toBe(false);
      expect(c.inserted.vmBo).toBe(null);
    },
    cases: [
      { name: 'get', kind: 'EINVAL', msg: [/put/, /never/], call: (_w, c) => c.dead.get() },
      { name: 'double put', kind: 'EINVAL', msg: [/put/], call: (_w, c) => c.dead.put() },
      { name: 'refcount', kind: 'EINVAL', call: (_w, c) => c.dead.refcount },
      { name: 'mappings', kind: 'EINVAL', call: (_w, c) => c.dead.mappings() },
      { name: 'unmapOps', kind: 'EINVAL', call: (_w, c) => c.dead.unmapOps() },
      { name: 'evict', kind: 'EINVAL', call: (_w, c) => c.dead.evict(true) },
      { name: 'link a mapping to it', kind: 'EINVAL', call: (_w, c) => c.inserted.link(c.dead) },
      { name: 'obtainPrealloc of a put pre-created VmBo', kind: 'EINVAL', call: (w, c) => w.vmA.obtainPrealloc(c.pre) },
      { name: 'flags of a removed mapping', kind: 'EINVAL', msg: [/no longer exists/], call: (w) => { const va = w.vmA.insert({ addr: pa(52), range: P }); w.vmA.remove(va); va.flags = 4; } },
    ],
  },
  {
    group: 'a destroyed VM',
    prep: (w) => {
      const vmC = new GpuVm({ name: 'C', start: A0, range: SPAN, backend: w.vmA.backend });
      vmC.bind(A0, PG, w.b.s1, 0);
      const va = vmC.findFirst(A0, PG)!;
      const vb = va.vmBo!;
      vmC.destroy();
      expect(w.b.s1.vmBos.map((x) => x.vm.name)).toEqual(['A', 'B']);
      expect(vb.live).toBe(false);
      return { vmC, va, vb };
    },
    after: (_w, c) => expect(c.vmC.destroyed).toBe(true),
    cases: [
      { name: 'bind', kind: 'EINVAL', msg: [/destroyed/, /"C"/], call: (w, c) => c.vmC.bind(A0, PG, w.b.s1) },
      { name: 'bind of a fresh BO', kind: 'EINVAL', msg: [/destroyed/], call: (w, c) => c.vmC.bind(A0, PG, w.b.fresh) },
      { name: 'unbind', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.unbind(A0, PG) },
      { name: 'smMapOps', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.smMapOps({ addr: A0, range: PG }) },
      { name: 'smUnmapOps', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.smUnmapOps(A0, PG) },
      { name: 'prefetchOps', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.prefetchOps(A0, PG) },
      { name: 'bindArray', kind: 'EINVAL', msg: [/destroyed/], call: (w, c) => c.vmC.bindArray([{ op: 'map', addr: A0, range: PG, bo: w.b.fresh }]) },
      { name: 'insert', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.insert({ addr: A0, range: PG }) },
      { name: 'count', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.count },
      { name: 'mappings', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => [...c.vmC.mappings()] },
      { name: 'findFirst', kind: 'EINVAL', msg: [/destroyed/], call: (_w, c) => c.vmC.findFirst(A0, PG) },
      { name: 'obtainBo', kind: 'EINVAL', msg: [/destroyed/], call: (w, c) => c.vmC.obtainBo(w.b.fresh) },
      { name: 'a mapping of it: flags', kind: 'EINVAL', call: (_w, c) => c.va.flags },
      { name: 'a VmBo of it: get', kind: 'EINVAL', call: (_w, c) => c.vb.get() },
    ],
  },
  {
    group: 'link with a BO mismatch',
    prep: (w) => {
      const loose = w.vmA.insert({ addr: pa(50), range: P, bo: w.b.s1 }); // unlinked
      const s2A = w.vmA.findFirst(pa(20), P)!.vmBo!;
      const s1B = w.vmB.findFirst(pb(0), PG)!.vmBo!;
      return { loose, s2A, s1B };
    },
    after: (_w, c) => expect(c.loose.vmBo).toBe(null),
    cases: [
      { name: 'to the VmBo of another BO', kind: 'EINVAL', msg: [/s1/, /s2/], call: (_w, c) => c.loose.link(c.s2A) },
      { name: 'to the VmBo of the same BO in another VM', kind: 'EINVAL', msg: [/another VM/], call: (_w, c) => c.loose.link(c.s1B as never) },
      { name: 'a mapping already linked', kind: 'EINVAL', msg: [/already linked/], call: (w) => vaAt(w, 8).link(w.refs.s1) },
    ],
  },
];

function expectFailure(err: Error, c: Case): void {
  if (c.kind === 'TypeError' || c.kind === 'RangeError') {
    expect(err.constructor.name, err.message).toBe(c.kind);
  } else {
    if (!(err instanceof GpuVmError)) throw err;
    expect(err.code, err.message).toBe(c.kind);
  }
  for (const re of c.msg ?? []) expect(err.message, 'the message names the argument and the value').toMatch(re);
}

describe.each(availableBackends())('failing calls change nothing on %s', (backend) => {
  for (const g of GROUPS) {
    describe(g.group, () => {
      it.each(g.cases)('$name', (c) => {
        const w = buildWorld(backend);
        const ctx = g.prep?.(w);
        const before = w.snap();
        const objects = w.objects();
        const err = thrown(() => c.call(w, ctx));
        expectFailure(err, c);
        expect(w.snap()).toEqual(before);
        const after = w.objects();
        expectSameObjects(objects[0], after[0]);
        expectSameObjects(objects[1], after[1]);
        g.after?.(w, ctx);
      });
    });
  }

  describe('not failures', () => {
    it('applying an empty op list (nothing to unmap) is success and changes nothing', () => {
      const w = buildWorld(backend);
      const before = w.snap();
      const list = w.vmA.smUnmapOps(pa(100), 8n * P);
      expect(list.length).toBe(0);
      list.apply();
      list.drop();
      const pf = w.vmA.prefetchOps(pa(100), 8n * P);
      pf.apply();
      expect(w.snap()).toEqual(before);
      expect(w.vmA.unbind(pa(100), 8n * P)).toBe(0);
      expect(w.snap()).toEqual(before);
    });

    it('a generated list that is abandoned (replaced, dropped) leaves the state as before it was made', () => {
      const w = buildWorld(backend);
      const before = w.snap();
      // a map list for a BO with no VmBo yet: the list holds a VmBo for it meanwhile
      w.vmA.smMapOps({ addr: pa(50), range: P, bo: w.b.fresh });
      w.vmA.smUnmapOps(pa(100), P); // replaces it
      expect(w.snap()).toEqual(before);
      const l = w.vmA.smMapOps({ addr: pa(50), range: P, bo: w.b.fresh });
      l.drop();
      expect(w.snap()).toEqual(before);
      w.vmB.smMapOps({ addr: pb(50), range: PG, bo: w.b.fresh });
      w.vmB.bind(pb(60), PG, null);
      w.vmB.unbind(pb(60), PG);
      expect(w.snap()).toEqual(before);
    });

    it('an applied list can be read after the apply (ops are made lazily)', () => {
      const w = buildWorld(backend);
      const l2 = w.vmA.smUnmapOps(pa(28), 2n * P); // p keeps its VmBo
      l2.apply();
      expect(listKeys(l2)).toEqual([`unmap [0x11c000 +0x2000] bo${w.b.p.id} @0x8000 keep=0`]);
      const l = w.vmA.smUnmapOps(pa(40), 2n * P); // solo's only mapping: its VmBo goes
      l.apply();
      expect(w.b.solo.vmBos).toEqual([]);
      expect(listKeys(l)).toEqual([`unmap [0x128000 +0x2000] bo${w.b.solo.id} @0x3000 keep=0`]);
    });

    it('a list generated before a failing bindArray (or bind) can still be applied', () => {
      for (const fail of [
        (w: World) => w.vmA.bindArray([{ op: 'unmap', addr: pa(0), range: 0n }]),
        (w: World) => w.vmA.bindArray([{ op: 'unmap', addr: pa(60), range: P, injectError: true }]),
        (w: World) => w.vmA.bind(pa(0), 0n, null),
        (w: World) => w.vmA.unbind(K, P),
      ]) {
        const w = buildWorld(backend);
        const l = w.vmA.smUnmapOps(pa(8), 4n * P);
        const before = w.snap();
        expect(() => fail(w)).toThrow(GpuVmError);
        expect(w.snap()).toEqual(before);
        expect(l.state).toBe('pending');
        l.apply();
        expect(w.vmA.findFirst(pa(8), 4n * P)).toBe(null);
      }
    });

    it('a partly applied list can be finished after other calls failed with EBUSY', () => {
      for (const busy of [
        (w: World) => w.vmA.bindArray([{ op: 'unmap', addr: pa(20), range: P }]),
        (w: World) => w.vmA.bind(pa(50), P, null),
        (w: World) => w.vmA.smUnmapOps(pa(20), P),
      ]) {
        const w = buildWorld(backend);
        const list = w.vmA.smUnmapOps(pa(2), 12n * P);
        w.vmA.vaRemap(list.get(0) as never);
        expect(() => busy(w)).toThrow(/EBUSY/);
        expect(list.state).toBe('pending');
        list.apply();
        expect(w.vmA.bind(pa(50), P, null)).toBe(1); // not wedged
      }
    });

    it('a world snapshot sees every change (the checks above can fail)', () => {
      const w = buildWorld(backend);
      const before = w.snap();
      const tweaks: ((w: World) => void)[] = [
        (x) => x.vmA.bind(pa(50), P, null),
        (x) => { vaAt(x, 0).flags = GpuVa.USERBITS; },
        (x) => x.refs.held.get(),
        (x) => x.refs.held.evict(true),
        (x) => x.vmB.obtainBo(x.b.never),
        (x) => { const l = x.vmA.smUnmapOps(pa(8), 8n * P); x.vmA.vaUnmap(l.get(0) as never); l.drop(); }, // the second s1 mapping, then drop
      ];
      for (const t of tweaks) {
        const x = buildWorld(backend);
        expect(x.snap()).toEqual(before);
        t(x);
        expect(x.snap()).not.toEqual(before);
      }
      expect(snapshotWorld([w.vmA], [])).not.toEqual(snapshotWorld([w.vmB], []));
    });
  });
});


