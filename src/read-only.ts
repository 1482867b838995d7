/**
 * TypeScript's `readonly` is a promise the compiler keeps, not JavaScript: a
 * plain property declared readonly can still be assigned at run time. The
 * facade reads some of them on every call (a number mode, the arrays of a
 * request batch, the CpuMm a GpuSvm works on), so an assignment would change
 * what a call does. Locking them after the constructor has set them makes an
 * assignment a TypeError (in strict code; elsewhere it does nothing).
 *
 * Redefining a property costs about 0.4 µs (measured: a class with four
 * locked fields took 1.9 µs to construct, 0.45 µs without), so classes made
 * often or in loops (GpuVm, Bo) keep such settings in private fields behind
 * getters instead; this is for the ones made a few times (page tables, SVM
 * objects, request batches).
 */
export function lockFields<T extends object>(obj: T, keys: readonly (keyof T & string)[]): void {
  for (const k of keys) Object.defineProperty(obj, k, { writable: false, configurable: false });
}
