/**
 * Full-state snapshots of VMs through the public API only, so a test can say
 * "this failing call changed nothing" or "these two ways of doing
 * the same thing end in the same state".
 *
 * A snapshot is plain data (comparable with toEqual across engines and
 * across separately built worlds): BOs are named by `bo.name`, VMs by
 * `vm.name`, numbers are bigints. The objects themselves (GpuVa, VmBo) are
 * kept apart in `objects`, for identity checks (a failed call must not
 * replace a live mapping by a look-alike).
 */
import { expect } from 'vitest';
import type { Bo, GpuVa, GpuVm, VmBo } from '../../src/index.js';

type AnyVm = GpuVm<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface VaSnap {
  addr: bigint;
  range: bigint;
  bo: string | null;
  offset: bigint;
  flags: number;
  /** BO name of the VmBo it is linked to, or null */
  vmBo: string | null;
  kernel: boolean;
}

export interface VmBoSnap {
  bo: string;
  refcount: number | string;
  evicted: boolean;
  /** its mappings in link order: [addr, range, offset] */
  mappings: [bigint, bigint, bigint][];
}

export interface VmSnap {
  name: string;
  destroyed: boolean;
  count?: number;
  mappings?: VaSnap[];
  /** by BO name */
  vmBos?: VmBoSnap[];
  /** BO names, list order */
  extobjs?: string[];
  evicted?: string[];
}

export interface WorldSnap {
  vms: VmSnap[];
  /** per BO (by name): the VMs of bo.vmBos, in list order */
  bos: Record<string, string[]>;
}

export interface Objects {
  vas: GpuVa<any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  vmBos: VmBo[];
}

const big = (v: number | bigint): bigint => (typeof v === 'bigint' ? v : BigInt(v));

function tryRead<T>(f: () => T): T | string {
  try {
    return f();
  } catch (e) {
    return `throws ${(e as Error).message}`;
  }
}

/** Every VmBo of `vm` reachable through the public API: the BOs' lists, the mappings' links, extobjs, evicted. */
export function vmBosOf(vm: AnyVm, bos: readonly Bo[]): VmBo[] {
  const set = new Set<VmBo>();
  for (const bo of bos) for (const vb of bo.vmBos) if (vb.vm === vm) set.add(vb);
  for (const vb of vm.extobjs) set.add(vb);
  for (const vb of vm.evicted) set.add(vb);
  for (const va of vm.mappings()) {
    const vb = va.isKernelNode ? null : va.vmBo;
    if (vb !== null) set.add(vb);
  }
  return [...set];
}

/** A snapshot of one VM; `bos` are the BOs whose VmBos should be found even without mappings. */
export function snapshot(vm: AnyVm, bos: readonly Bo[] = []): VmSnap {
  if (vm.destroyed) return { name: vm.name, destroyed: true };
  const mappings: VaSnap[] = [];
  for (const va of vm.mappings()) {
    mappings.push({
      addr: big(va.addr),
      range: big(va.range),
      bo: va.bo?.name ?? null,
      offset: big(va.offset),
      flags: va.isKernelNode ? 0 : va.flags,
      vmBo: va.isKernelNode ? null : (va.vmBo?.bo.name ?? null),
      kernel: va.isKernelNode,
    });
  }
  const vmBos: VmBoSnap[] = vmBosOf(vm, bos)
    .map((vb) => ({
      bo: vb.bo.name,
      refcount: tryRead(() => vb.refcount),
      evicted: vb.evicted,
      mappings: tryRead(() => vb.mappings().map((m) => [big(m.addr), big(m.range), big(m.offset)] as [bigint, bigint, bigint])) as [
        bigint,
        bigint,
        bigint,
      ][],
    }))
    .sort((a, b) => (a.bo < b.bo ? -1 : a.bo > b.bo ? 1 : 0));
  return {
    name: vm.name,
    destroyed: false,
    count: vm.count,
    mappings,
    vmBos,
    extobjs: vm.extobjs.map((vb) => vb.bo.name),
    evicted: vm.evicted.map((vb) => vb.bo.name),
  };
}

/** A snapshot of several VMs and the BOs' VmBo lists across them. */
export function snapshotWorld(vms: readonly AnyVm[], bos: readonly Bo[]): WorldSnap {
  const out: Record<string, string[]> = {};
  for (const bo of bos) out[bo.name] = bo.vmBos.map((vb) => vb.vm.name);
  return { vms: vms.map((vm) => snapshot(vm, bos)), bos: out };
}

/** The live objects of a VM (mappings in address order, VmBos as in vmBosOf). */
export function objectsOf(vm: AnyVm, bos: readonly Bo[] = []): Objects {
  if (vm.destroyed) return { vas: [], vmBos: [] };
  return { vas: [...vm.mappings()], vmBos: vmBosOf(vm, bos) };
}

/** The objects must be the very same ones, still live. */
export function expectSameObjects(before: Objects, after: Objects): void {
  expect(after.vas.length).toBe(before.vas.length);
  for (let i = 0; i < before.vas.length; i++) {
    if (after.vas[i] !== before.vas[i]) {
      expect.fail(`mapping ${i} [${before.vas[i].addr}, +${before.vas[i].range}) was replaced by another object`);
    }
    expect(before.vas[i].live).toBe(true);
  }
  expect(new Set(after.vmBos)).toEqual(new Set(before.vmBos));
  for (const vb of before.vmBos) expect(vb.live).toBe(true);
}

/**
 * Checks the API-visible invariants of a VM: disjoint
 * ascending mappings, count, every linked mapping in its VmBo's list and vice
 * versa, refcount >= linked mappings, each VmBo in its BO's list once, every
 * VmBo's mappings of its own BO.
 */
export function checkInvariants(vm: AnyVm, bos: readonly Bo[] = []): void {
  const vas = [...vm.mappings()];
  let last = -1n;
  let nonKernel = 0;
  const linked = new Map<VmBo, Set<string>>();
  for (const va of vas) {
    const a = big(va.addr);
    expect(a >= last, `mappings overlap or are out of order at ${a}`).toBe(true);
    last = a + big(va.range);
    if (va.isKernelNode) continue;
    nonKernel++;
    const vb = va.vmBo;
    if (vb !== null) {
      expect(vb.bo).toBe(va.bo);
      expect(vb.vm).toBe(vm);
      let s = linked.get(vb);
      if (!s) linked.set(vb, (s = new Set()));
      s.add(`${a}:${va.range}`);
    }
  }
  expect(vm.count).toBe(nonKernel);
  for (const vb of vmBosOf(vm, bos)) {
    expect(vb.live).toBe(true);
    const ms = vb.mappings();
    expect(vb.refcount).toBeGreaterThanOrEqual(ms.length);
    expect(vb.refcount).toBeGreaterThan(0);
    expect(new Set(ms.map((m) => `${big(m.addr)}:${m.range}`))).toEqual(linked.get(vb) ?? new Set());
    for (const m of ms) expect(m.bo).toBe(vb.bo);
    expect(vb.bo.vmBos.filter((x) => x === vb).length).toBe(1);
    expect(vb.bo.vmBos.filter((x) => x.vm === vm).length).toBe(1);
  }
}

/** Runs `fn`, which must throw; returns the error. */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to throw, it returned');
}
