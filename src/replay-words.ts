/**
 * Words of the replay language shared by its command sets: numbers are
 * decimal or 0x-hex u64 values, and a line that breaks the syntax is
 * Malformed (reported as `err EINVAL`, like a refused command).
 */
import { GpuVmError } from './errors.js';
import { U64_MAX } from './u64.js';

/** A malformed command: reported as `err EINVAL`, like a refused one. */
export class Malformed extends Error {}

/** Parses a decimal or 0x-hex u64. */
export function parseU64(s: string | undefined): bigint {
  if (s === undefined || !/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(s)) throw new Malformed(`not a number: ${s}`);
  const v = BigInt(s);
  if (v > U64_MAX) throw new Malformed(`above u64: ${s}`);
  return v;
}

/**
 * What an `err` line reports for an error: its errno name and the reason
 * (`<CODE>: <message>`, the shape of GpuVmError messages), or null for an
 * error that is not a refusal (a bug: let it propagate).
 */
export function refusal(err: unknown): { code: string; reason: string } | null {
  if (err instanceof GpuVmError) return { code: err.code, reason: err.message };
  if (err instanceof Malformed || err instanceof RangeError || err instanceof TypeError) return { code: 'EINVAL', reason: `EINVAL: ${err.message}` };
  return null;
}
