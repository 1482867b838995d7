/**
 * The engines apply a split/merge list three ways: a whole list made from the
 * VM as it still is runs as the fused step of its request; a list applied op
 * by op (or after the VM changed behind it) is checked first and applied op by
 * op; fused calls never make a list. All three must end in the same state,
 * tree shape included, and a list the VM changed behind must still be refused
 * exactly when it no longer fits.
 */
import { describe, expect, it } from 'vitest';
import { Bo, GpuVm, type BindEntry, type GpuVmError, type OpList } from '../src/index.js';
import { backends } from './support/engines.js';
import { Prng } from './support/prng.js';
import { snapshot } from './support/state.js';

const PAGE = 0x1000;
const PAGES = 96;

interface World {
  vm: GpuVm<number>;
  bos: Bo[];
}

function world(backend: 'native' | 'wasm'): World {
  // one name for all: snapshots name their VM
  const vm = new GpuVm({ name: 'w', start: PAGE, range: PAGES * PAGE, backend });
  const bos = [1, 2, 3].map((i) => new Bo({ name: `bo${i}`, size: 2 ** 32 }));
  return { vm, bos };
}

/** Applies a list op by op through vaMap / vaRemap / vaUnmap (the checked path). */
function applyEach(vm: GpuVm<number>, list: OpList<number>): void {
  for (const op of list) {
    if (op.kind === 'map') vm.vaMap(op);
    else if (op.kind === 'remap') vm.vaRemap(op);
    else if (op.kind === 'unmap') vm.vaUnmap(op);
  }
}

function state(w: World): unknown {
  const s = w.vm.stats();
  // (bytes also count the list array, whose capacity the engine's scratch swaps decide)
  return { snap: snapshot(w.vm, w.bos), nodes: s.treeNodes, mappings: s.mappings };
}

describe.each(backends)('op-list application paths (%s)', (backend) => {
  it('whole lists, op-by-op lists and fused calls end in the same state, tree shape included', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const rng = new Prng(seed);
      const whole = world(backend);
      const each = world(backend);
      const fused = world(backend);
      for (let i = 0; i < 400; i++) {
        const addr = PAGE * (1 + rng.int(PAGES - 1));
        const range = PAGE * (1 + rng.int(Math.min(12, PAGES + 1 - addr / PAGE)));
        const where = `seed ${seed} request ${i}: [${addr.toString(16)}, +${range.toString(16)})`;
        if (rng.chance(0.3)) {
          whole.vm.smUnmapOps(addr, range).apply();
          applyEach(each.vm, each.vm.smUnmapOps(addr, range));
          fused.vm.unbind(addr, range);
        } else {
          const b = rng.int(4);
          const offset = PAGE * rng.int(64);
          const req = (w: World) => ({ addr, range, bo: b === 0 ? null : w.bos[b - 1], offset });
          whole.vm.smMapOps(req(whole)).apply();
          applyEach(each.vm, each.vm.smMapOps(req(each)));
          fused.vm.bind(addr, range, req(fused).bo, offset);
        }
        const s = state(whole);
        expect(state(each), where).toEqual(s);
        expect(state(fused), where).toEqual(s);
      }
      for (const w of [whole, each, fused]) w.vm.destroy();
    }
  });

  it('a list the VM changed behind is checked again: applied when it still fits, refused unchanged when not', () => {
    const rng = new Prng(77);
    let fits = 0;
    let refused = 0;
    for (let round = 0; round < 600; round++) {
      const a = world(backend);
      const b = world(backend);
      // the same few mappings in both
      for (let k = 0; k < 6; k++) {
        const addr = PAGE * (1 + 12 * k + rng.int(4));
        const range = PAGE * (1 + rng.int(8));
        a.vm.bind(addr, range, a.bos[k % 3], 0);
        b.vm.bind(addr, range, b.bos[k % 3], 0);
      }
      const addr = PAGE * (1 + rng.int(PAGES - 16));
      const range = PAGE * (1 + rng.int(16));
      const map = rng.chance(0.5);
      const list = map ? a.vm.smMapOps({ addr, range, bo: a.bos[0], offset: 0 }) : a.vm.smUnmapOps(addr, range);
      const twin = map ? b.vm.smMapOps({ addr, range, bo: b.bos[0], offset: 0 }) : b.vm.smUnmapOps(addr, range);
      // change the VM behind the list: insert into a hole, or remove a mapping
      const maps = [...a.vm.mappings()];
      if (rng.chance(0.5) && maps.length > 0) {
        const victim = maps[rng.int(maps.length)];
        const other = [...b.vm.mappings()].find((v) => v.addr === victim.addr)!;
        a.vm.remove(victim);
        victim.unlink();
        b.vm.remove(other);
        other.unlink();
      } else {
        const at = PAGE * (1 + rng.int(PAGES - 2));
        try {
          a.vm.insert({ addr: at, range: PAGE, bo: null });
          b.vm.insert({ addr: at, range: PAGE, bo: null });
        } catch (err) {
          expect((err as GpuVmError).code).toBe('EEXIST');
        }
      }
      const before = state(a);
      try {
        list.apply();
      } catch (err) {
        // refused: nothing changed
        expect(['EINVAL', 'EEXIST']).toContain((err as GpuVmError).code);
        expect(state(a)).toEqual(before);
        refused++;
        a.vm.destroy();
        b.vm.destroy();
        continue;
      }
      // applied: as the same list made before the same change, applied op by op
      // (a whole list re-run as a fused step would also unmap what was inserted)
      fits++;
      applyEach(b.vm, twin);
      expect(snapshot(a.vm, a.bos)).toEqual(snapshot(b.vm, b.bos));
      a.vm.destroy();
      b.vm.destroy();
    }
    // both outcomes were reached
    expect(fits).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });

  it('a list stays right when a failed transaction edited the tree behind it and put it back', () => {
    // A whole list is applied from where its generation found the mappings;
    // an undone transaction leaves the same mappings in a tree of another
    // shape, so that position must not be trusted any more.
    const rng = new Prng(91);
    let reshaped = 0;
    for (let round = 0; round < 60; round++) {
      const a = world(backend);
      const b = world(backend);
      for (let k = 0; k < 70; k++) {
        const addr = PAGE * (1 + rng.int(PAGES - 1));
        const range = PAGE * (1 + rng.int(3));
        if (addr / PAGE + range / PAGE > PAGES + 1) continue;
        a.vm.bind(addr, range, a.bos[k % 3], addr);
        b.vm.bind(addr, range, b.bos[k % 3], addr);
      }
      const addr = PAGE * (1 + rng.int(PAGES - 8));
      const range = PAGE * (1 + rng.int(8));
      const map = rng.chance(0.5);
      const list = map ? a.vm.smMapOps({ addr, range, bo: a.bos[1], offset: 0 }) : a.vm.smUnmapOps(addr, range);
      const twin = map ? b.vm.smMapOps({ addr, range, bo: b.bos[1], offset: 0 }) : b.vm.smUnmapOps(addr, range);
      // many splits and merges, then a failing entry: all of it is undone
      const entries: BindEntry[] = [];
      for (let k = 0; k < 40; k++) {
        const at = PAGE * (1 + rng.int(PAGES - 4));
        entries.push(rng.chance(0.5) ? { op: 'unmap', addr: at, range: PAGE * 3 } : { op: 'map', addr: at, range: PAGE, bo: a.bos[2], offset: 0 });
      }
      entries.push({ op: 'unmap', addr: PAGE, range: PAGE, injectError: true });
      const nodesBefore = a.vm.stats().treeNodes;
      expect(() => a.vm.bindArray(entries)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
      if (a.vm.stats().treeNodes !== nodesBefore) reshaped++;
      expect(snapshot(a.vm, a.bos)).toEqual(snapshot(b.vm, b.bos));
      expect(list.state).toBe(twin.state);
      if (list.state === 'pending') {
        list.apply();
        twin.apply();
      }
      expect(snapshot(a.vm, a.bos)).toEqual(snapshot(b.vm, b.bos));
      expect(a.vm.count).toBe(b.vm.count);
      a.vm.destroy();
      b.vm.destroy();
    }
    // the undo really left trees of another shape in some rounds
    expect(reshaped).toBeGreaterThan(5);
  });
});
