/** Helpers of the tests that drive an engine through its raw calls. */
import { expect } from 'vitest';
import { IO, type Engine } from '../../src/backend/engine.js';

/** Writes a u64 given as a safe integer to io[i] (low word), io[i + 1] (high). */
export function put64(io: Uint32Array, i: number, v: number): void {
  io[i] = v % 2 ** 32;
  io[i + 1] = Math.floor(v / 2 ** 32);
}

/** A map request in ARG: pages [page, page + pages) of 4 KiB, BO id `bo`, offset 0, VmBo word `vmbo`. */
export function mapArgs(E: Engine, page: number, pages: number, bo: number, vmbo: number): void {
  const io = E.io();
  put64(io, IO.ARG, page * 0x1000);
  put64(io, IO.ARG + 2, pages * 0x1000);
  put64(io, IO.ARG + 4, 0);
  io[IO.ARG + 6] = bo;
  io[IO.ARG + 7] = vmbo;
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

/**
 * The names of the engine calls the facade makes while `fn` runs, in order
 * (the engine object loadEngine hands out is the facade's; its functions are
 * wrapped meanwhile). setRing, which hands the native engine a record slab
 * once per 4096 records, is not counted.
 */
export function engineCallsDuring(E: Engine, fn: () => void): string[] {
  const e = E as unknown as Record<string, unknown>;
  const calls: string[] = [];
  const saved = new Map<string, unknown>();
  for (const [k, f] of Object.entries(e)) {
    if (typeof f !== 'function' || k === 'io' || k === 'setRing') continue;
    saved.set(k, f);
    e[k] = (...args: unknown[]) => {
      calls.push(k);
      return (f as (...a: unknown[]) => unknown)(...args);
    };
  }
  try {
    fn();
  } finally {
    for (const [k, f] of saved) e[k] = f;
  }
  return calls;
}
