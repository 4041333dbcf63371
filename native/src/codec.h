// Store codecs exported by the addon (see codec.cc).
#pragma once

#include <napi.h>

namespace gt {
// Adds `zstd: {compress, decompress, version}` to the exports when built with libzstd.
void InitCodec(Napi::Env env, Napi::Object exports);
}  // namespace gt
