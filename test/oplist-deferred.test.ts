/**
 * smMapOps / smUnmapOps leave a list that nothing reads unmade until it is
 * applied; then one engine call makes and applies it and hands back its
 * records. Nothing a user can do may tell the difference: twin worlds run
 * the same requests, one applying its lists unread (deferred), the other
 * reading each list's length first (made when asked for), and every list's
 * ops and every state must agree, whatever runs between making and applying
 * a list. (The native engine writes a deferred list's records where the
 * list keeps them, the WASM engine hands them back to be copied: both
 * engines run every test.)
 */
import { describe, expect, it } from 'vitest';
import { Bo, engineMemory, GpuVm, GpuVmError, PageTable, setEngineMemoryLimit, type OpList } from '../src/index.js';
import { backends } from './support/engines.js';
import { engineCallsDuring } from './support/raw-engine.js';
import { Prng } from './support/prng.js';
import { snapshot, thrown } from './support/state.js';
import { DEFER_BACKOFF } from '../src/vm-context.js';
import { loadEngine } from '../src/backend/loader.js';

const PAGE = 0x1000;
const PAGES = 256;

interface World {
  vm: GpuVm<number>;
  /** another VM of the same engine */
  other: GpuVm<number>;
}

interface Request {
  map: boolean;
  addr: number;
  range: number;
  bo: number; // index into bos, -1 for none
  offset: number;
}

function request(r: Prng): Request {
  const pages = 1 + r.int(12);
  const addr = PAGE * (1 + r.int(PAGES - pages));
  const map = r.int(4) !== 0;
  return { map, addr, range: pages * PAGE, bo: r.int(4) - 1, offset: PAGE * r.int(64) };
}

describe.each(backends)('deferred op lists on %s', (backend) => {
  const bos = [1, 2, 3].map((i) => new Bo({ name: `bo${i}`, size: 2 ** 32 }));

  function world(): World {
    // one name for both twins: op JSON and snapshots name their VM
    return {
      vm: new GpuVm({ name: 'w', start: PAGE, range: PAGES * PAGE, backend }),
      other: new GpuVm({ name: 'o', start: PAGE, range: PAGES * PAGE, backend }),
    };
  }

  function ask(w: World, q: Request): OpList<number> {
    return q.map
      ? w.vm.smMapOps({ addr: q.addr, range: q.range, bo: q.bo < 0 ? null : bos[q.bo], offset: q.offset })
      : w.vm.smUnmapOps(q.addr, q.range);
  }

  /**
   * A VM whose deferred list had to be made early makes its next lists when
   * asked for (they would likely be read too): ask for that many empty ones,
   * so that the next list is deferred again.
   */
  function rearm(w: World): void {
    for (let i = 0; i < DEFER_BACKOFF; i++) w.vm.smUnmapOps(PAGE * PAGES, PAGE).apply();
  }

  function destroy(...ws: World[]): void {
    for (const w of ws) {
      w.vm.destroy();
      w.other.destroy();
    }
  }

  it('a list applied unread takes one engine call, on every engine', () => {
    const w = world();
    for (let i = 0; i < 20; i++) w.vm.bind(PAGE * (1 + 8 * i), 4 * PAGE, bos[i % 3], 0);
    const calls = engineCallsDuring(loadEngine(backend), () => {
      w.vm.smMapOps({ addr: PAGE * 3, range: 20 * PAGE, bo: bos[1], offset: 0 }).apply();
      w.vm.smUnmapOps(PAGE * 40, 30 * PAGE).apply();
    });
    expect(calls).toEqual(['smMapApply', 'smUnmapApply']);
    // and each did what the list says
    expect(w.vm.find(PAGE * 3, 20 * PAGE)?.bo).toBe(bos[1]);
    expect(w.vm.findFirst(PAGE * 40, 30 * PAGE)).toBeNull();
    destroy(w);
  });

  it('a list applied unread is the list made when asked for, records included', () => {
    const r = new Prng(0x5eed);
    const a = world();
    const b = world();
    for (let i = 0; i < 600; i++) {
      const q = request(r);
      // (one list per environment waits to be made: the twin asks after)
      const la = ask(a, q);
      la.apply();
      const lb = ask(b, q);
      expect(lb.length).toBeGreaterThanOrEqual(0); // made now
      lb.apply();
      expect(la.state).toBe('applied');
      expect(la.toJSON(), `request ${i}`).toEqual(lb.toJSON());
    }
    expect(snapshot(a.vm, bos)).toEqual(snapshot(b.vm, bos));
    expect(a.vm.stats()).toEqual(b.vm.stats());
    destroy(a, b);
  });

  // What may run between asking for a list and applying it, each a call the
  // list must be made before (it could observe or change what the list was
  // made from, or reuse the engine's transfer area).
  const between: [string, (w: World, r: Prng) => unknown][] = [
    ['a lookup', (w) => w.vm.findFirst(PAGE, PAGES * PAGE)],
    ['reading the mappings', (w) => [...w.vm.mappings()].length],
    ['the VM stats', (w) => w.vm.stats()],
    ['the engine memory', () => engineMemory(backend).used],
    ['a bind in another VM', (w, r) => w.other.bind(PAGE * (1 + r.int(200)), PAGE, bos[0], 0)],
    ['another VM\'s list, applied', (w, r) => w.other.smUnmapOps(PAGE * (1 + r.int(200)), 4 * PAGE).apply()],
    ['another VM\'s list, left unapplied', (w, r) => w.other.smMapOps({ addr: PAGE * (1 + r.int(200)), range: PAGE, bo: null })],
    ['a page table call', (w, r) => {
      const pt = new PageTable({ backend });
      pt.bind(0x200000 * (1 + r.int(8)), 0x10000, [{ pa: 0x100000, len: 0x10000 }]);
      pt.destroy();
    }],
    ['a VmBo of the VM', (w) => w.vm.findBo(bos[0])?.refcount],
    ['the BO\'s VmBos', () => bos[1].vmBos.length],
    ['a new VM', () => new GpuVm({ start: 0, range: 2 ** 30, backend }).destroy()],
  ];

  it.each(between)('%s before applying sees the list as made when asked for', (_name, act) => {
    const r = new Prng(0xd1ff);
    const a = world();
    const b = world();
    const ra = new Prng(7);
    const rb = new Prng(7);
    for (let i = 0; i < 150; i++) {
      const q = request(r);
      rearm(a);
      const la = ask(a, q);
      act(a, ra);
      la.apply();
      const lb = ask(b, q);
      void lb.length;
      act(b, rb);
      lb.apply();
      expect(la.toJSON(), `request ${i}`).toEqual(lb.toJSON());
    }
    expect(snapshot(a.vm, bos)).toEqual(snapshot(b.vm, bos));
    expect(snapshot(a.other, bos)).toEqual(snapshot(b.other, bos));
    destroy(a, b);
  });

  it('a list replaced before it is applied stays readable, and cannot be applied', () => {
    const r = new Prng(31);
    const a = world();
    const b = world();
    for (let i = 0; i < 40; i++) a.vm.bind(PAGE * (1 + 5 * i), 3 * PAGE, bos[i % 3], PAGE * i);
    for (let i = 0; i < 40; i++) b.vm.bind(PAGE * (1 + 5 * i), 3 * PAGE, bos[i % 3], PAGE * i);
    for (let i = 0; i < 100; i++) {
      const q = request(r);
      // replaced by a fused call, or by another list of the VM
      const replace = (w: World): void => {
        if (i % 2 === 0) w.vm.unbind(PAGE * 200, PAGE);
        else ask(w, { ...q, map: false }).drop();
      };
      rearm(a);
      const la = ask(a, q);
      replace(a);
      const lb = ask(b, q);
      void lb.length;
      replace(b);
      // (a list of no ops is applied when made, so nothing replaces it)
      expect(lb.state).toBe(lb.length === 0 ? 'applied' : 'stale');
      expect(la.state).toBe(lb.state);
      expect(la.toJSON()).toEqual(lb.toJSON());
      if (lb.length !== 0) {
        const e = thrown(() => la.apply());
        expect(e).toBeInstanceOf(GpuVmError);
        expect((e as GpuVmError).code).toBe('EINVAL');
      }
    }
    expect(snapshot(a.vm, bos)).toEqual(snapshot(b.vm, bos));
    destroy(a, b);
  });

  it('a deferred list dropped changes nothing, and the next list is made as usual', () => {
    const w = world();
    for (let i = 0; i < 20; i++) w.vm.bind(PAGE * (1 + 8 * i), 4 * PAGE, bos[0], 0);
    const before = snapshot(w.vm, bos);
    const l = w.vm.smMapOps({ addr: PAGE * 3, range: 20 * PAGE, bo: bos[1], offset: 0 });
    l.drop();
    expect(l.state).toBe('dropped');
    expect(l.toJSON().ops.map((o) => o.kind)).toEqual(['remap', 'unmap', 'unmap', 'map']);
    expect(snapshot(w.vm, bos)).toEqual(before);
    const next = w.vm.smUnmapOps(PAGE, 16 * PAGE);
    next.apply();
    expect(next.toJSON().ops.map((o) => o.kind)).toEqual(['unmap', 'unmap']);
    destroy(w);
  });

  it('a list of more ops than one transfer holds, applied unread', () => {
    const a = world();
    const b = world();
    const n = 5000;
    for (const w of [a, b]) {
      w.vm.destroy();
      w.vm = new GpuVm({ name: 'w', start: PAGE, range: 4 * n * PAGE, backend });
      for (let i = 0; i < n; i++) w.vm.bind(PAGE * (1 + 2 * i), PAGE, bos[i % 3], PAGE * i);
    }
    const la = a.vm.smMapOps({ addr: 2 * PAGE, range: (2 * n - 2) * PAGE, bo: bos[0], offset: 0 });
    la.apply();
    const lb = b.vm.smMapOps({ addr: 2 * PAGE, range: (2 * n - 2) * PAGE, bo: bos[0], offset: 0 });
    expect(lb.length).toBe(n);
    lb.apply();
    expect(la.length).toBe(n);
    expect(la.toJSON()).toEqual(lb.toJSON());
    expect(snapshot(a.vm, bos)).toEqual(snapshot(b.vm, bos));
    destroy(a, b);
  });

  it('lists applied unread stay readable, however many were made since', () => {
    const r = new Prng(99);
    const a = world();
    const b = world();
    const kept: [OpList<number>, unknown][] = [];
    // more records than one record slab holds (4096), so slabs are replaced
    for (let i = 0; i < 6000; i++) {
      const q = request(r);
      const la = ask(a, q);
      la.apply();
      const lb = ask(b, q);
      void lb.length;
      lb.apply();
      if (i % 7 === 0) kept.push([la, lb.toJSON()]);
    }
    for (const [la, want] of kept) expect(la.toJSON()).toEqual(want);
    destroy(a, b);
  });

  it('under a memory limit, a list is made when asked for (making it may fail there)', () => {
    const w = world();
    for (let i = 0; i < 20; i++) w.vm.bind(PAGE * (1 + 8 * i), 4 * PAGE, bos[0], 0);
    const l = w.vm.smMapOps({ addr: PAGE * 3, range: 20 * PAGE, bo: bos[1], offset: 0 });
    // raising a limit makes the list first: its memory is taken before the limit applies
    setEngineMemoryLimit(engineMemory(backend).used, backend);
    try {
      const before = snapshot(w.vm, bos);
      // a list that needs more memory than is left is refused when asked for
      const filler = new GpuVm({ name: 'filler', start: 0, range: 2 ** 40, backend });
      let refused: unknown = null;
      for (let i = 0; i < 1_000_000 && refused === null; i++) {
        try {
          filler.smMapOps({ addr: 2 * i * PAGE, range: PAGE, bo: null }).apply();
        } catch (err) {
          refused = err;
        }
      }
      filler.destroy();
      expect((refused as GpuVmError).code).toBe('ENOMEM');
      // the first list holds what applying it needs
      l.apply();
      expect(w.vm.find(PAGE * 3, 20 * PAGE)?.bo).toBe(bos[1]);
      expect(snapshot(w.vm, bos)).not.toEqual(before);
    } finally {
      setEngineMemoryLimit(null, backend);
    }
    destroy(w);
  });

  it('a page table attached after the list was asked for is written when it is applied', () => {
    const w = world();
    w.vm.bind(PAGE * 16, 16 * PAGE, bos[0], 0);
    const l = w.vm.smMapOps({ addr: PAGE * 20, range: 4 * PAGE, bo: bos[1], offset: 0x10000 });
    const pt = new PageTable({ backend });
    const resolve = (bo: unknown, offset: number | bigint, length: number | bigint) => [
      { pa: (bo as Bo).id * 2 ** 32 + Number(offset), len: Number(length) },
    ];
    w.vm.attachPageTable(pt, resolve);
    l.apply();
    expect(pt.translate(PAGE * 21)?.pa).toBe(bos[1].id * 2 ** 32 + 0x11000);
    expect(pt.translate(PAGE * 16)?.pa).toBe(bos[0].id * 2 ** 32);
    w.vm.detachPageTable();
    pt.destroy();
    destroy(w);
  });
});
