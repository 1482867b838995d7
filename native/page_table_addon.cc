// Marshalling of the page-table engine functions (src/backend/page-table-engine.ts):
// io in, io out, one exported function per contract method. Twin of
// assembly/page_table_api.ts.
#include "page_table_addon.h"

#include "page_table.h"

namespace gpuvm {
namespace {

// One per RegisterPageTable call, that is per addon instance: the page tables
// of that environment and the io area of its GpuVm half.
struct PtAddon {
  uint32_t** io;  // &engine.io of the same addon instance; set by its setup()
  pt::Space space;
};

inline PtAddon& Self(const Napi::CallbackInfo& info) { return *static_cast<PtAddon*>(info.Data()); }
inline uint64_t arg64(const uint32_t* w, uint32_t i) {
  return (uint64_t)w[pt::kIoArg + i] | ((uint64_t)w[pt::kIoArg + i + 1] << 32);
}
inline uint32_t argU(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i].As<Napi::Number>().Uint32Value() : 0;
}
inline Napi::Value ret(const Napi::CallbackInfo& info, int32_t r) { return Napi::Number::New(info.Env(), r); }

// Every function starts here: its instance, and that instance's io area
// (null until setup() ran).
#define PT_ENTRY                            \
  PtAddon& a = Self(info);                  \
  uint32_t* w = *a.io;                      \
  if (w == nullptr) return ret(info, -pt::kEinval)

// ptCreate(n, leaf, flags): shifts at DATA[0..n)
Napi::Value PtCreate(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  const uint32_t n = argU(info, 0);
  if (n > pt::kMaxShifts) return ret(info, -pt::kEinval);
  return ret(info, a.space.ptCreate(w + pt::kIoData, n, argU(info, 1), argU(info, 2)));
}

Napi::Value PtDestroy(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptDestroy(argU(info, 0)));
}

// ptApply(pt, words, flags): records at DATA[0..words), leaf budget at ARG0 (read with END)
Napi::Value PtApply(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptApply(argU(info, 0), w + pt::kIoData, argU(info, 1), argU(info, 2), w[pt::kIoArg],
                                   w + pt::kIoOut));
}

// ptTranslate(pt): va at ARG0
Napi::Value PtTranslate(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptTranslate(argU(info, 0), arg64(w, 0), w + pt::kIoOut));
}

Napi::Value PtTranslateBatch(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptTranslateBatch(argU(info, 0), w + pt::kIoData, argU(info, 1)));
}

// ptWalk(pt, flags, max): first ARG0, last ARG2, cursor pos ARG4, rank ARG6, has cursor ARG7
Napi::Value PtWalk(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptWalk(argU(info, 0), arg64(w, 0), arg64(w, 2), arg64(w, 4), w[pt::kIoArg + 6],
                                  w[pt::kIoArg + 7], argU(info, 1), argU(info, 2), w + pt::kIoData, w + pt::kIoOut));
}

Napi::Value PtStats(const Napi::CallbackInfo& info) {
  PT_ENTRY;
  return ret(info, a.space.ptStats(argU(info, 0), w + pt::kIoOut));
}

#undef PT_ENTRY

template <Napi::Function::Callback fn>
void Export(Napi::Env env, Napi::Object exports, PtAddon* a, const char* name) {
  exports.Set(name, Napi::Function::New<fn>(env, name, a));
}

}  // namespace

void RegisterPageTable(Napi::Env env, Napi::Object exports, uint32_t** ioArea, Budget* budget) {
  PtAddon* a = new PtAddon{ioArea, pt::Space()};
  // One storage budget per instance: page tables and VMs share the limit.
  a->space.useBudget(budget);
  // Freed with the environment, like the GpuVm half's state; cleanup hooks
  // run last-registered first, so the budget outlives the page tables.
  napi_add_env_cleanup_hook(
      env, [](void* p) { delete static_cast<PtAddon*>(p); }, a);
  Export<PtCreate>(env, exports, a, "ptCreate");
  Export<PtDestroy>(env, exports, a, "ptDestroy");
  Export<PtApply>(env, exports, a, "ptApply");
  Export<PtTranslate>(env, exports, a, "ptTranslate");
  Export<PtTranslateBatch>(env, exports, a, "ptTranslateBatch");
  Export<PtWalk>(env, exports, a, "ptWalk");
  Export<PtStats>(env, exports, a, "ptStats");
}

}  // namespace gpuvm
