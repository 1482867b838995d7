// Marshalling of the page-table engine functions (src/backend/page-table-engine.ts):
// io in, io out, one exported function per contract method. Twin of
// assembly/page_table_api.ts.
#include "page_table_addon.h"

#include "page_table.h"

namespace gpuvm {
namespace {

uint32_t** gIo = nullptr;

inline uint32_t* io() { return *gIo; }
inline uint64_t arg64(uint32_t i) { return (uint64_t)io()[pt::kIoArg + i] | ((uint64_t)io()[pt::kIoArg + i + 1] << 32); }
inline uint32_t argU(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i].As<Napi::Number>().Uint32Value() : 0;
}
inline Napi::Value ret(const Napi::CallbackInfo& info, int32_t r) { return Napi::Number::New(info.Env(), r); }
inline bool ready(const Napi::CallbackInfo& info) {
  (void)info;
  return gIo != nullptr && *gIo != nullptr;
}

// ptCreate(n, leaf, flags): shifts at DATA[0..n)
Napi::Value PtCreate(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  const uint32_t n = argU(info, 0);
  if (n > pt::kMaxShifts) return ret(info, -pt::kEinval);
  return ret(info, pt::ptCreate(io() + pt::kIoData, n, argU(info, 1), argU(info, 2)));
}

Napi::Value PtDestroy(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  return ret(info, pt::ptDestroy(argU(info, 0)));
}

// ptApply(pt, words, flags): records at DATA[0..words)
Napi::Value PtApply(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  return ret(info, pt::ptApply(argU(info, 0), io() + pt::kIoData, argU(info, 1), argU(info, 2), io() + pt::kIoOut));
}

// ptTranslate(pt): va at ARG0
Napi::Value PtTranslate(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  return ret(info, pt::ptTranslate(argU(info, 0), arg64(0), io() + pt::kIoOut));
}

Napi::Value PtTranslateBatch(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  return ret(info, pt::ptTranslateBatch(argU(info, 0), io() + pt::kIoData, argU(info, 1)));
}

// ptWalk(pt, flags, max): first ARG0, last ARG2, cursor pos ARG4, rank ARG6, has cursor ARG7
Napi::Value PtWalk(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  uint32_t* w = io();
  return ret(info, pt::ptWalk(argU(info, 0), arg64(0), arg64(2), arg64(4), w[pt::kIoArg + 6], w[pt::kIoArg + 7],
                              argU(info, 1), argU(info, 2), w + pt::kIoData, w + pt::kIoOut));
}

Napi::Value PtStats(const Napi::CallbackInfo& info) {
  if (!ready(info)) return ret(info, -pt::kEinval);
  return ret(info, pt::ptStats(argU(info, 0), io() + pt::kIoOut));
}

}  // namespace

void RegisterPageTable(Napi::Env env, Napi::Object exports, uint32_t** ioArea) {
  gIo = ioArea;
  exports.Set("ptCreate", Napi::Function::New(env, PtCreate, "ptCreate"));
  exports.Set("ptDestroy", Napi::Function::New(env, PtDestroy, "ptDestroy"));
  exports.Set("ptApply", Napi::Function::New(env, PtApply, "ptApply"));
  exports.Set("ptTranslate", Napi::Function::New(env, PtTranslate, "ptTranslate"));
  exports.Set("ptTranslateBatch", Napi::Function::New(env, PtTranslateBatch, "ptTranslateBatch"));
  exports.Set("ptWalk", Napi::Function::New(env, PtWalk, "ptWalk"));
  exports.Set("ptStats", Napi::Function::New(env, PtStats, "ptStats"));
}

}  // namespace gpuvm
