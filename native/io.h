// The transfer area shared with JS (io), the errno values the engine returns,
// and u64 helpers. Mirrors the constants of src/backend/engine.ts; keep the
// two in step (assembly/io.ts is the WASM twin of this file).
#pragma once

#include <cstdint>

namespace gpuvm {

using u32 = uint32_t;
using u64 = uint64_t;
using i32 = int32_t;

// Linux errno values, returned negated. Named with a k prefix because the
// system headers define EPERM & co. as macros.
constexpr i32 kEPERM = 1;
constexpr i32 kENOENT = 2;
constexpr i32 kEIO = 5;
constexpr i32 kEAGAIN = 11;
constexpr i32 kENOMEM = 12;
constexpr i32 kEFAULT = 14;
constexpr i32 kEBUSY = 16;
constexpr i32 kEEXIST = 17;
constexpr i32 kEINVAL = 22;
constexpr i32 kENOSPC = 28;

// io layout (u32 word indices).
constexpr u32 IO_ARG = 0;
constexpr u32 IO_OUT = 32;
constexpr u32 IO_DATA = 64;
constexpr u32 IO_DATA_WORDS = 16 * 4096;
constexpr u32 IO_WORDS = 64 + IO_DATA_WORDS;
constexpr u32 IO_OUT_ZOMBIES = 32;
constexpr u32 IO_OUT_SERIAL = 33;
constexpr u32 IO_OUT_CREATED = 34;
constexpr u32 IO_OUT_FAIL_INDEX = 38;
constexpr u32 IO_OUT_MADE_VMBO = 39;
constexpr u32 IO_OUT_INFO = 40;
// The VmBos a call that applies ops (bind, unbind, smMapApply, smUnmapApply,
// opsApply) released itself on success: their count, then up to
// IO_OUT_REAP_MAX handles.
constexpr u32 IO_OUT_REAPED = 48;
constexpr u32 IO_OUT_REAP_MAX = 15;

// A map request's VmBo word asking the engine to make the VmBo (see
// Engine::MakeRequestVmBo).
constexpr u32 VMBO_MAKE = 0xffffffffu;

// Op records (16 words each).
constexpr u32 OP_WORDS = 16;
constexpr u32 OPS_PER_CHUNK = IO_DATA_WORDS / OP_WORDS;
constexpr u32 OP_MAP = 1;
constexpr u32 OP_REMAP = 2;
constexpr u32 OP_UNMAP = 3;
constexpr u32 OP_PREFETCH = 4;
constexpr u32 OP_KEEP = 1u << 8;
constexpr u32 OP_HAS_PREV = 1u << 9;
constexpr u32 OP_HAS_NEXT = 1u << 10;

// Mapping (VA) records (12 words each).
constexpr u32 VA_WORDS = 12;
constexpr u32 VAS_PER_CHUNK = IO_DATA_WORDS / VA_WORDS;
constexpr u32 VA_ATTR_KERNEL = 1;
constexpr u32 VA_ATTR_INSERTED = 2;

// Transaction entries (12 words each).
constexpr u32 TX_WORDS = 12;
constexpr u32 TX_PER_CHUNK = IO_DATA_WORDS / TX_WORDS;
constexpr u32 TX_MAP = 1;
constexpr u32 TX_UNMAP = 2;
constexpr u32 TX_PREFETCH = 3;
constexpr u32 TX_UNMAP_ALL = 4;
constexpr u32 TX_INJECT_ERROR = 1u << 8;

// A hint to start loading a line we will touch soon (no-op where unknown).
#if defined(__GNUC__) || defined(__clang__)
#define GPUVM_PREFETCH(p) __builtin_prefetch(p)
#else
#define GPUVM_PREFETCH(p) ((void)(p))
#endif

// Makes v opaque to the optimizer at this point (no code): it keeps partial
// sums the compiler would otherwise fold into one long dependency chain.
#if defined(__GNUC__) || defined(__clang__)
#define GPUVM_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define GPUVM_OPAQUE(v) ((void)(v))
#endif

// Small helpers on the per-request path.
#if defined(__GNUC__) || defined(__clang__)
#define GPUVM_INLINE inline __attribute__((always_inline))
#else
#define GPUVM_INLINE inline
#endif

// u64 values travel as two words, low word first.
inline u64 Read64(const u32* io, u32 i) {
  return static_cast<u64>(io[i]) | (static_cast<u64>(io[i + 1]) << 32);
}
inline void Write64(u32* io, u32 i, u64 v) {
  io[i] = static_cast<u32>(v);
  io[i + 1] = static_cast<u32>(v >> 32);
}

}  // namespace gpuvm
