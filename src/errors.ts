/**
 * GpuVmError: every failure of the library carries the Linux errno name the
 * kernel would return. Engines return negated errno numbers; this
 * file maps them to names in one place, so both engines raise the same errors.
 */
import { Errno, type ErrnoName } from './backend/engine.js';

const NAMES = new Map<number, ErrnoName>(
  Object.entries(Errno).map(([k, v]) => [v, k as ErrnoName]),
);

export class GpuVmError extends Error {
  /** Linux errno name, e.g. 'EINVAL' */
  readonly code: ErrnoName;
  /** Linux errno number, e.g. 22 */
  readonly errno: number;

  constructor(code: ErrnoName, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.name = 'GpuVmError';
    this.code = code;
    this.errno = Errno[code];
  }
}

/** The errno name of a negative engine result. */
export function errnoName(result: number): ErrnoName {
  return NAMES.get(-result) ?? 'EIO';
}

export function gpuVmError(result: number, message: string): GpuVmError {
  return new GpuVmError(errnoName(result), message);
}
