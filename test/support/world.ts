/**
 * A small but busy "world" for atomicity and failure tests: two VMs (one in
 * bigint mode with a kernel-reserved node, one in number mode) and several
 * BOs with shared VmBos (a BO mapped several times in one VM), BOs mapped in
 * both VMs, a private BO, a VmBo held by a driver reference with no
 * mappings, an evicted VmBo, mappings with flags, and null (no-BO) mappings.
 *
 * Built the same way every time, so two worlds can be compared by snapshot.
 */
import { Bo, GpuVa, GpuVm, type BackendName, type VmBo } from '../../src/index.js';
import { snapshotWorld, objectsOf, type Objects, type WorldSnap } from './state.js';

export const PG = 0x1000;
export const A0 = 0x100000; // start of both VMs
export const KERNEL = { start: 0x1f0000, range: 0x10000 }; // vmA's reserved node
export const SPAN = 0x100000; // both VMs: [0x100000, 0x200000)

export interface World {
  vmA: GpuVm<bigint>;
  vmB: GpuVm<number>;
  b: { p: Bo; s1: Bo; s2: Bo; held: Bo; fresh: Bo; never: Bo; solo: Bo };
  bos: Bo[];
  /** references the world holds (driver refs) */
  refs: { held: VmBo<bigint>; s1: VmBo<bigint> };
  snap(): WorldSnap;
  objects(): Objects[];
}

const big = (n: number) => BigInt(n);

export function buildWorld(backend: BackendName): World {
  const vmA = new GpuVm<bigint>({
    name: 'A',
    start: big(A0),
    range: big(SPAN),
    reserve: { start: big(KERNEL.start), range: big(KERNEL.range) },
    bigint: true,
    backend,
  });
  const vmB = new GpuVm<number>({ name: 'B', start: A0, range: SPAN, backend });
  const b = {
    p: new Bo({ name: 'p', privateTo: vmA }), // private to A: not an extobj of A
    s1: new Bo({ name: 's1' }), // shared VmBo in A (several mappings), also in B
    s2: new Bo({ name: 's2' }), // in A and B; its VmBo in A is evicted
    held: new Bo({ name: 'held' }), // a VmBo with only a driver reference
    fresh: new Bo({ name: 'fresh' }), // no VmBo anywhere yet
    never: new Bo({ name: 'never' }), // never mapped
    solo: new Bo({ name: 'solo' }), // one mapping in A, no other reference
  };
  const P = big(PG);
  const at = (page: number) => big(A0) + big(page) * P;
  vmA.bind(at(0), 8n * P, b.p, 0n); // p [0, 8)
  vmA.bind(at(8), 4n * P, b.s1, 0x10000n); // s1 [8, 12)
  vmA.bind(at(12), 4n * P, b.s1, 0x20000n); // s1 [12, 16), same VmBo
  vmA.bind(at(16), 4n * P, null, 0n); // null [16, 20)
  vmA.bind(at(20), 8n * P, b.s2, 0n); // s2 [20, 28)
  vmA.bind(at(28), 2n * P, b.p, 0x8000n); // p [28, 30)
  vmA.bind(at(32), 4n * P, b.s1, 0n); // s1 [32, 36)
  vmA.bind(at(40), 2n * P, b.solo, 0x3000n); // solo [40, 42)
  vmB.bind(A0 + 0 * PG, 4 * PG, b.s1, 0); // B: s1 [0, 4)
  vmB.bind(A0 + 8 * PG, 4 * PG, b.s2, 0x4000); // B: s2 [8, 12)
  vmB.bind(A0 + 12 * PG, 4 * PG, b.p, 0); // B: p (external to B)
  // flags on some mappings: REMAP pieces must carry them
  vmA.find(at(0), 8n * P)!.flags = GpuVa.USERBITS | (GpuVa.USERBITS << 5);
  vmA.find(at(20), 8n * P)!.invalidate(true);
  vmA.find(at(16), 4n * P)!.flags = GpuVa.SPARSE;
  // driver references and lists
  const held = vmA.obtainBo(b.held);
  const s1 = vmA.obtainBo(b.s1);
  const s2 = vmA.findBo(b.s2)!;
  s2.evict(true);
  s2.put();
  const bos = Object.values(b);
  return {
    vmA,
    vmB,
    b,
    bos,
    refs: { held, s1 },
    snap: () => snapshotWorld([vmA, vmB], bos),
    objects: () => [objectsOf(vmA, bos), objectsOf(vmB, bos)],
  };
}

/** Page `n` of the world's VMs, as a bigint (vmA) or number (vmB). */
export const pa = (n: number): bigint => BigInt(A0 + n * PG);
export const pb = (n: number): number => A0 + n * PG;
