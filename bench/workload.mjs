/**
 * The kernel-stream workload (xorshift64* request stream, FNV-1a 64 checksum
 * of a final state, reference results) lives in the package (src/workload.ts)
 * so that `gpuvm bench` can ship it; the suites and tests take it from the
 * build (npm run build:ts), so there is one copy.
 */
import { workload } from '../dist/index.js';

export const {
  PAGE,
  BASE,
  W,
  MAXP,
  VM_START,
  VM_RANGE,
  BO_COUNT,
  EXPECTED,
  XorShift64Star,
  generate,
  Fnv1a64,
  checksum,
  checksumArrays,
  replayWorkload: replay,
} = workload;
