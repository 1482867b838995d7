// Marshalling of the page-table part of the engine contract
// (src/backend/page-table-engine.ts). addon.cc calls RegisterPageTable once.
#pragma once
#include <napi.h>
#include <cstdint>

namespace gpuvm {
void RegisterPageTable(Napi::Env env, Napi::Object exports, uint32_t** io);
}
