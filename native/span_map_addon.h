// Marshalling of the span-map part of the engine contract
// (src/backend/span-engine.ts). addon.cc calls RegisterSpanMaps once per
// addon instance with the io slot and the budget of that instance; its span
// maps live and die with its environment.
#pragma once
#include <napi.h>
#include <cstdint>

#include "budget.h"

namespace gpuvm {
void RegisterSpanMaps(Napi::Env env, Napi::Object exports, uint32_t** io, Budget* budget);
}
