/** Helpers of the tests that drive an engine through its raw calls. */
import { expect } from 'vitest';
import { IO, type Engine } from '../../src/backend/engine.js';

/** Writes a u64 given as a safe integer to io[i] (low word), io[i + 1] (high). */
export function put64(io: Uint32Array, i: number, v: number): void {
  io[i] = v % 2 ** 32;
  io[i + 1] = Math.floor(v / 2 ** 32);
}

/** A VM of `bytes` from 0 without a kernel node; its handle. */
export function rawVm(E: Engine, bytes: number): number {
  const io = E.io();
  put64(io, IO.ARG, 0);
  put64(io, IO.ARG + 2, bytes);
  put64(io, IO.ARG + 4, 0);
  put64(io, IO.ARG + 6, 0);
  const h = E.vmCreate();
  expect(h).toBeGreaterThan(0);
  return h;
}
