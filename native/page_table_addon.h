// Marshalling of the page-table part of the engine contract
// (src/backend/page-table-engine.ts). addon.cc calls RegisterPageTable once per
// addon instance with the io slot of that instance's GpuVm half; the page
// tables of the instance live and die with its environment.
#pragma once
#include <napi.h>
#include <cstdint>

#include "budget.h"

namespace gpuvm {
void RegisterPageTable(Napi::Env env, Napi::Object exports, uint32_t** io, Budget* budget);
}
