// io: the transfer area shared with JS, its layout constants, errno values and
// u64 helpers (twin of native/io.h). The layout is the contract of
// src/backend/engine.ts; JS reads and writes the area through a Uint32Array
// over memory.buffer at ioPtr().

// ---- errno values (returned negated) ----
export const EPERM: i32 = 1;
export const ENOENT: i32 = 2;
export const EIO: i32 = 5;
export const EAGAIN: i32 = 11;
export const ENOMEM: i32 = 12;
export const EFAULT: i32 = 14;
export const EBUSY: i32 = 16;
export const EEXIST: i32 = 17;
export const EINVAL: i32 = 22;
export const ENOSPC: i32 = 28;

// ---- io layout (u32 word indices) ----
export const IO_ARG: u32 = 0;
export const IO_OUT: u32 = 32;
export const IO_DATA: u32 = 64;
export const IO_DATA_WORDS: u32 = 16 * 4096;
export const IO_WORDS: u32 = 64 + 16 * 4096;
export const OUT_ZOMBIES: u32 = 32;
export const OUT_SERIAL: u32 = 33;
export const OUT_CREATED: u32 = 34;
export const OUT_FAIL_INDEX: u32 = 38;
export const OUT_MADE_VMBO: u32 = 39;
export const OUT_INFO: u32 = 40;
/** The VmBos a call that applies ops (bind, unbind, smMapApply, smUnmapApply, opsApply) released itself on success: count, then up to OUT_REAP_MAX handles. */
export const OUT_REAPED: u32 = 48;
export const OUT_REAP_MAX: u32 = 15;

/** A map request's VmBo word asking the engine to make the VmBo (see makeRequestVmBo). */
export const VMBO_MAKE: u32 = 0xffffffff;

// ---- op records (16 words) ----
export const OP_WORDS: u32 = 16;
export const OPS_PER_CHUNK: u32 = IO_DATA_WORDS / OP_WORDS;
export const OP_MAP: u32 = 1;
export const OP_REMAP: u32 = 2;
export const OP_UNMAP: u32 = 3;
export const OP_PREFETCH: u32 = 4;
export const OP_KEEP: u32 = 1 << 8;
export const OP_HAS_PREV: u32 = 1 << 9;
export const OP_HAS_NEXT: u32 = 1 << 10;

// ---- VA records (12 words) ----
export const VA_WORDS: u32 = 12;
export const VAS_PER_CHUNK: u32 = IO_DATA_WORDS / VA_WORDS;
export const VA_ATTR_KERNEL: u32 = 1;
export const VA_ATTR_INSERTED: u32 = 2;

// ---- transaction entries (12 words) ----
export const TX_WORDS: u32 = 12;
export const TX_PER_CHUNK: u32 = IO_DATA_WORDS / TX_WORDS;
export const TX_MAP: u32 = 1;
export const TX_UNMAP: u32 = 2;
export const TX_PREFETCH: u32 = 3;
export const TX_UNMAP_ALL: u32 = 4;
export const TX_INJECT_ERROR: u32 = 1 << 8;

// The area itself: static, so its offset never changes even when memory grows.
export const io: usize = memory.data(<i32>(IO_WORDS << 2), 16);

// ---- word access ----
@inline export function ioGet(word: u32): u32 {
  return load<u32>(io + (<usize>word << 2));
}
@inline export function ioSet(word: u32, v: u32): void {
  store<u32>(io + (<usize>word << 2), v);
}
/** u64 from two words, low first. */
@inline export function ioGet64(word: u32): u64 {
  return load<u64>(io + (<usize>word << 2));
}
@inline export function ioSet64(word: u32, v: u64): void {
  store<u64>(io + (<usize>word << 2), v);
}
