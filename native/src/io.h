// Process I/O helpers exported by the addon (see io.cc).
#pragma once

#include <napi.h>

namespace gt {
// Adds `setPipeSize`, `alignedBuffer` and `preallocate` to the exports.
void InitIo(Napi::Env env, Napi::Object exports);
}  // namespace gt
