// Marshalling of the span-map engine functions (src/backend/span-engine.ts):
// one exported function per contract method, arguments in io. Twin of
// assembly/span_map_api.ts.
#include "span_map_addon.h"

#include "span_map.h"

namespace gpuvm {
namespace {

// One per RegisterSpanMaps call, that is per addon instance.
struct SpanAddon {
  uint32_t** io;  // &engine.io of the same addon instance; set by its setup()
  SpanMaps maps;
};

inline SpanAddon& Self(const Napi::CallbackInfo& info) { return *static_cast<SpanAddon*>(info.Data()); }
inline uint32_t argU(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? info[i].As<Napi::Number>().Uint32Value() : 0;
}
inline Napi::Value ret(const Napi::CallbackInfo& info, int32_t r) { return Napi::Number::New(info.Env(), r); }

// Every function starts here: its instance and that instance's io area
// (null until setup() ran).
#define SPAN_ENTRY                          \
  SpanAddon& a = Self(info);                \
  uint32_t* w = *a.io;                      \
  if (w == nullptr) return ret(info, -kEINVAL)

Napi::Value SpanCreate(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  (void)w;
  return ret(info, a.maps.Create());
}

Napi::Value SpanDestroy(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  (void)w;
  return ret(info, a.maps.Destroy(argU(info, 0)));
}

Napi::Value SpanInsert(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Insert(argU(info, 0), w));
}

Napi::Value SpanRemove(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Remove(argU(info, 0), w));
}

Napi::Value SpanFind(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Find(argU(info, 0), w));
}

Napi::Value SpanSeek(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Seek(argU(info, 0), w));
}

Napi::Value SpanList(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.List(argU(info, 0), argU(info, 1), w));
}

Napi::Value SpanAssign(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Assign(argU(info, 0), w));
}

Napi::Value SpanStats(const Napi::CallbackInfo& info) {
  SPAN_ENTRY;
  return ret(info, a.maps.Stats(argU(info, 0), w));
}

#undef SPAN_ENTRY

template <Napi::Function::Callback fn>
void Export(Napi::Env env, Napi::Object exports, SpanAddon* a, const char* name) {
  exports.Set(name, Napi::Function::New<fn>(env, name, a));
}

}  // namespace

void RegisterSpanMaps(Napi::Env env, Napi::Object exports, uint32_t** ioArea, Budget* budget) {
  SpanAddon* a = new SpanAddon{ioArea, SpanMaps(budget)};
  // Freed with the environment; cleanup hooks run last-registered first, so
  // the budget (in the GpuVm half's state) outlives these pools.
  napi_add_env_cleanup_hook(
      env, [](void* p) { delete static_cast<SpanAddon*>(p); }, a);
  Export<SpanCreate>(env, exports, a, "spanCreate");
  Export<SpanDestroy>(env, exports, a, "spanDestroy");
  Export<SpanInsert>(env, exports, a, "spanInsert");
  Export<SpanRemove>(env, exports, a, "spanRemove");
  Export<SpanFind>(env, exports, a, "spanFind");
  Export<SpanSeek>(env, exports, a, "spanSeek");
  Export<SpanList>(env, exports, a, "spanList");
  Export<SpanAssign>(env, exports, a, "spanAssign");
  Export<SpanStats>(env, exports, a, "spanStats");
}

}  // namespace gpuvm
