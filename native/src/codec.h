// Store codecs exported by the addon (see codec.cc).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gt {
// Adds `zstd: {compress, decompress, compressPlanes, decompressPlanes, version}` to the exports when
// built with libzstd.
void InitCodec(Napi::Env env, Napi::Object exports);

#ifdef GT_WITH_ZSTD
// The body of store encodings 5 and 6 (docs/store.md): the chunk's byte planes (after the sign rotation,
// or the zigzag delta against `base` when base is not null), each stored as its own zstd frame, or raw
// when zstd does not make it smaller: per plane, mode u8 (0 raw, 1 zstd), length u32 LE, bytes.
// Each plane gets its own entropy coder, and the near-random low mantissa planes cost a memcpy to read.
void encode_split_planes(const uint8_t* src, size_t size, size_t width, bool rotate, const uint8_t* base, int level,
                         std::vector<uint8_t>& out);
// The inverse; throws std::runtime_error when the body is malformed or a frame does not decode to its plane.
void decode_split_planes(const uint8_t* body, size_t length, size_t size, size_t width, bool rotate, const uint8_t* base,
                         uint8_t* out);
// One zstd frame holding all planes (store encodings 3 and 4, still read): decode into `out`.
void decode_joined_planes(const uint8_t* frame, size_t length, size_t size, size_t width, bool rotate, const uint8_t* base,
                          uint8_t* out);
#endif
}  // namespace gt
