// Batched chunk work for the object store, off the JS thread (see chunks.cc).
#pragma once

#include <napi.h>

namespace gt {
// Adds `chunks: {hash, compressPlanes, decode}` to the exports (compressPlanes and decode need zstd).
void InitChunks(Napi::Env env, Napi::Object exports);
}  // namespace gt
