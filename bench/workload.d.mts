// Types for workload.mjs: the package's own, from the build.
import type { workload } from '../dist/index.js';

export declare const PAGE: number;
export declare const BASE: number;
export declare const W: number;
export declare const MAXP: number;
export declare const VM_START: number;
export declare const VM_RANGE: number;
export declare const BO_COUNT: number;
export type Expected = workload.Expected;
export declare const EXPECTED: typeof workload.EXPECTED;
export declare const XorShift64Star: typeof workload.XorShift64Star;
export type XorShift64Star = workload.XorShift64Star;
export type Workload = workload.Workload;
export declare const generate: typeof workload.generate;
export declare const Fnv1a64: typeof workload.Fnv1a64;
export type Fnv1a64 = workload.Fnv1a64;
export type StateEntry = workload.StateEntry;
export declare const checksum: typeof workload.checksum;
export declare const checksumArrays: typeof workload.checksumArrays;
export declare const replay: typeof workload.replayWorkload;
