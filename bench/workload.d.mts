// Types for workload.mjs (plain ESM, shared by the benchmarks and the tests).

export declare const PAGE: number;
export declare const BASE: number;
export declare const W: number;
export declare const MAXP: number;
export declare const VM_START: number;
export declare const VM_RANGE: number;
export declare const BO_COUNT: number;

export interface Expected {
  readonly seed: number;
  readonly mapRequests: number;
  readonly unmapRequests: number;
  readonly ops: { readonly map: number; readonly remap: number; readonly unmap: number };
  readonly mappings: number;
  readonly checksum: string;
}
export declare const EXPECTED: Readonly<Record<number, Expected | undefined>>;

export declare class XorShift64Star {
  constructor(seed?: number | bigint);
  hi: number;
  lo: number;
  rhi: number;
  rlo: number;
  step(): void;
  nextBig(): bigint;
  rnd(n: number): number;
}

export interface Workload {
  n: number;
  seed: number;
  kind: Uint8Array;
  addr: Float64Array;
  range: Float64Array;
  bo: Uint8Array;
  offset: Float64Array;
  maps: number;
  unmaps: number;
}
export declare function generate(n: number, seed?: number | bigint): Workload;

export declare class Fnv1a64 {
  hi: number;
  lo: number;
  byte(b: number): void;
  u32(w: number): void;
  u64(v: number | bigint): void;
  hex(): string;
}

export interface StateEntry {
  addr: number | bigint;
  range: number | bigint;
  bo: number | bigint;
  offset: number | bigint;
}
export declare function checksum(mappings: Iterable<StateEntry>): { checksum: string; count: number };
export declare function checksumArrays(
  addr: ArrayLike<number>,
  range: ArrayLike<number>,
  bo: ArrayLike<number>,
  offset: ArrayLike<number>,
  count?: number,
): { checksum: string; count: number };
export declare function replay(
  vm: { bind(a: number, r: number, bo: number, off: number): unknown; unbind(a: number, r: number): unknown },
  w: Workload,
  from?: number,
  to?: number,
): void;
