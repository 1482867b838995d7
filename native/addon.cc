// Marshalling only: one exported function per GpuVmEngine method
// (src/backend/engine.ts) plus setup(). Arguments are small integers; all
// other data goes through the io transfer area that setup() pins once. The
// engine state is per JS environment (worker threads get their own).
#include <napi.h>

#include "gpuvm.h"
#include "page_table_addon.h"
#include "span_map_addon.h"

namespace {

using gpuvm::Engine;

struct AddonState {
  Engine engine;
  Napi::Reference<Napi::ArrayBuffer> ioRef;  // keeps the transfer area alive
  Napi::Reference<Napi::ArrayBuffer> ringRef;  // and the record ring
};

inline AddonState* State(const Napi::CallbackInfo& info) {
  return static_cast<AddonState*>(info.Data());
}

inline uint32_t Arg(const Napi::CallbackInfo& info, size_t i) {
  return info[i].As<Napi::Number>().Uint32Value();
}

inline Napi::Value Result(const Napi::CallbackInfo& info, int32_t r) {
  return Napi::Number::New(info.Env(), r);
}

// setup(arrayBuffer): the io area, IO_WORDS u32 words. -> 0 or -EINVAL
Napi::Value Setup(const Napi::CallbackInfo& info) {
  AddonState* s = State(info);
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) return Result(info, -gpuvm::kEINVAL);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() < static_cast<size_t>(gpuvm::IO_WORDS) * 4) {
    return Result(info, -gpuvm::kEINVAL);
  }
  s->ioRef = Napi::Persistent(ab);
  s->engine.io = static_cast<uint32_t*>(ab.Data());
  return Result(info, 0);
}

// setRing(arrayBuffer): where smMapApply / smUnmapApply write op records
// (a whole number of records). -> 0 or -EINVAL
Napi::Value SetRing(const Napi::CallbackInfo& info) {
  AddonState* s = State(info);
  if (s->engine.io == nullptr || info.Length() < 1 || !info[0].IsArrayBuffer()) return Result(info, -gpuvm::kEINVAL);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  const size_t bytes = ab.ByteLength();
  const size_t record = static_cast<size_t>(gpuvm::OP_WORDS) * 4;
  if (bytes == 0 || bytes % record != 0 || bytes / 4 > 0xffffffffu ||
      reinterpret_cast<uintptr_t>(ab.Data()) % alignof(gpuvm::GpuVaOp) != 0) {
    return Result(info, -gpuvm::kEINVAL);
  }
  s->ringRef = Napi::Persistent(ab);
  s->engine.SetRing(static_cast<uint32_t*>(ab.Data()), static_cast<uint32_t>(bytes / 4));
  return Result(info, 0);
}

// One wrapper per arity; before setup() every call is -EINVAL.
#define GPUVM_EXPORT0(Name, Method)                                    \
  Napi::Value Name(const Napi::CallbackInfo& info) {                   \
    Engine& e = State(info)->engine;                                   \
    if (e.io == nullptr) return Result(info, -gpuvm::kEINVAL);         \
    return Result(info, e.Method());                                   \
  }
#define GPUVM_EXPORT1(Name, Method)                                    \
  Napi::Value Name(const Napi::CallbackInfo& info) {                   \
    Engine& e = State(info)->engine;                                   \
    if (e.io == nullptr) return Result(info, -gpuvm::kEINVAL);         \
    return Result(info, e.Method(Arg(info, 0)));                       \
  }
#define GPUVM_EXPORT2(Name, Method)                                    \
  Napi::Value Name(const Napi::CallbackInfo& info) {                   \
    Engine& e = State(info)->engine;                                   \
    if (e.io == nullptr) return Result(info, -gpuvm::kEINVAL);         \
    return Result(info, e.Method(Arg(info, 0), Arg(info, 1)));         \
  }
#define GPUVM_EXPORT3(Name, Method)                                              \
  Napi::Value Name(const Napi::CallbackInfo& info) {                             \
    Engine& e = State(info)->engine;                                             \
    if (e.io == nullptr) return Result(info, -gpuvm::kEINVAL);                   \
    return Result(info, e.Method(Arg(info, 0), Arg(info, 1), Arg(info, 2)));     \
  }
#define GPUVM_EXPORT4(Name, Method)                                                      \
  Napi::Value Name(const Napi::CallbackInfo& info) {                                     \
    Engine& e = State(info)->engine;                                                     \
    if (e.io == nullptr) return Result(info, -gpuvm::kEINVAL);                           \
    return Result(info, e.Method(Arg(info, 0), Arg(info, 1), Arg(info, 2), Arg(info, 3))); \
  }

GPUVM_EXPORT0(VmCreate, VmCreate)
GPUVM_EXPORT1(VmDestroy, VmDestroy)
GPUVM_EXPORT1(VmStats, VmStats)
GPUVM_EXPORT1(VaInsert, VaInsert)
GPUVM_EXPORT3(VaRemove, VaRemove)
GPUVM_EXPORT4(VaLink, VaLink)
GPUVM_EXPORT3(VaUnlink, VaUnlink)
GPUVM_EXPORT3(VaGet, VaGet)
GPUVM_EXPORT4(VaSetFlags, VaSetFlags)
GPUVM_EXPORT1(FindFirst, FindFirst)
GPUVM_EXPORT2(FindFirstBatch, FindFirstBatch)
GPUVM_EXPORT2(Iterate, Iterate)
GPUVM_EXPORT1(SmMapOps, SmMapOps)
GPUVM_EXPORT1(SmUnmapOps, SmUnmapOps)
GPUVM_EXPORT1(PrefetchOps, PrefetchOps)
GPUVM_EXPORT1(MadviseOps, MadviseOps)
GPUVM_EXPORT2(VmBoUnmapOps, VmBoUnmapOps)
GPUVM_EXPORT2(OpsRead, OpsRead)
GPUVM_EXPORT3(OpsApply, OpsApply)
GPUVM_EXPORT1(OpsDrop, OpsDrop)
GPUVM_EXPORT1(Bind, Bind)
GPUVM_EXPORT1(Unbind, Unbind)
GPUVM_EXPORT1(SmMapApply, SmMapApply)
GPUVM_EXPORT1(SmUnmapApply, SmUnmapApply)
GPUVM_EXPORT2(Submit, Submit)
GPUVM_EXPORT2(TxStage, TxStage)
GPUVM_EXPORT1(TxClear, TxClear)
GPUVM_EXPORT1(TxRun, TxRun)
GPUVM_EXPORT2(VmBoCreate, VmBoCreate)
GPUVM_EXPORT2(VmBoGet, VmBoGet)
GPUVM_EXPORT2(VmBoPut, VmBoPut)
GPUVM_EXPORT2(VmBoInfo, VmBoInfo)
GPUVM_EXPORT4(VmBoMappings, VmBoMappings)
GPUVM_EXPORT1(VmBoReap, VmBoReap)
GPUVM_EXPORT0(MemSetLimit, MemSetLimit)
GPUVM_EXPORT0(MemStats, MemStats)

// Function::New<fn> dispatches to the C++ function directly (no per-call
// trampoline object); `s` comes back as info.Data().
template <Napi::Function::Callback fn>
void Export(Napi::Env env, Napi::Object exports, AddonState* s, const char* name) {
  exports.Set(name, Napi::Function::New<fn>(env, name, s));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonState* s = new AddonState();
  // Freed with the environment (main thread exit or worker termination).
  napi_add_env_cleanup_hook(
      env, [](void* p) { delete static_cast<AddonState*>(p); }, s);

  Export<Setup>(env, exports, s, "setup");
  Export<VmCreate>(env, exports, s, "vmCreate");
  Export<VmDestroy>(env, exports, s, "vmDestroy");
  Export<VmStats>(env, exports, s, "vmStats");
  Export<VaInsert>(env, exports, s, "vaInsert");
  Export<VaRemove>(env, exports, s, "vaRemove");
  Export<VaLink>(env, exports, s, "vaLink");
  Export<VaUnlink>(env, exports, s, "vaUnlink");
  Export<VaGet>(env, exports, s, "vaGet");
  Export<VaSetFlags>(env, exports, s, "vaSetFlags");
  Export<FindFirst>(env, exports, s, "findFirst");
  Export<FindFirstBatch>(env, exports, s, "findFirstBatch");
  Export<Iterate>(env, exports, s, "iterate");
  Export<SmMapOps>(env, exports, s, "smMapOps");
  Export<SmUnmapOps>(env, exports, s, "smUnmapOps");
  Export<PrefetchOps>(env, exports, s, "prefetchOps");
  Export<MadviseOps>(env, exports, s, "madviseOps");
  Export<VmBoUnmapOps>(env, exports, s, "vmboUnmapOps");
  Export<OpsRead>(env, exports, s, "opsRead");
  Export<OpsApply>(env, exports, s, "opsApply");
  Export<OpsDrop>(env, exports, s, "opsDrop");
  Export<Bind>(env, exports, s, "bind");
  Export<Unbind>(env, exports, s, "unbind");
  Export<SmMapApply>(env, exports, s, "smMapApply");
  Export<SmUnmapApply>(env, exports, s, "smUnmapApply");
  Export<SetRing>(env, exports, s, "setRing");
  Export<Submit>(env, exports, s, "submit");
  Export<TxStage>(env, exports, s, "txStage");
  Export<TxClear>(env, exports, s, "txClear");
  Export<TxRun>(env, exports, s, "txRun");
  Export<VmBoCreate>(env, exports, s, "vmboCreate");
  Export<VmBoGet>(env, exports, s, "vmboGet");
  Export<VmBoPut>(env, exports, s, "vmboPut");
  Export<VmBoInfo>(env, exports, s, "vmboInfo");
  Export<VmBoMappings>(env, exports, s, "vmboMappings");
  Export<VmBoReap>(env, exports, s, "vmboReap");
  Export<MemSetLimit>(env, exports, s, "memSetLimit");
  Export<MemStats>(env, exports, s, "memStats");

  gpuvm::RegisterPageTable(env, exports, &s->engine.io, &s->engine.budget());
  gpuvm::RegisterSpanMaps(env, exports, &s->engine.io, &s->engine.budget());
  return exports;
}

}  // namespace

NODE_API_MODULE(NODE_GYP_MODULE_NAME, Init)
