// zstd compression of store chunks (src/store/encoding.ts), plain or fused with the float-aware
// transforms of encodings 5 and 6 (byte planes, sign rotation, zigzag delta, one zstd frame per plane),
// so a chunk crosses into native code once. Synchronous on purpose: a chunk is at most 256 KiB, so a call takes well under a
// millisecond and a thread hop would cost more than it saves. src/store/encoding.ts holds the same
// transforms in TypeScript (the reference the tests compare against, and the path without the addon).
// Built only where libzstd's header and library exist (GT_WITH_ZSTD); elsewhere `zstd` is absent from
// the exports and the store keeps new chunks raw (it still reads compressed ones through the JS decoder).
#include "codec.h"
#include "planes.h"
#include "view.h"

#ifdef GT_WITH_ZSTD
#include <zstd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace gt {

// zstd parameters for one byte plane (16 KiB for a 64 KiB chunk of F32). Measured on the exponent
// planes of generated F32 weights in 16 KiB blocks, level 1: the default 16K-entry hash table and 6-byte
// matches give x2.58 at 174 MB/s (decode 569 MB/s); 64 entries and 7-byte matches give x3.04 at
// 390 MB/s (decode 1.5 GB/s). In such a plane short matches cost more bits than the Huffman-coded
// literals they replace; long runs (the zero planes of a delta) still match.
constexpr int kPlaneHashLog = 6;
constexpr int kPlaneMinMatch = 7;

size_t compress_plane(ZSTD_CCtx* cctx, uint8_t* dst, size_t capacity, const uint8_t* plane, size_t n, int level);

namespace {

// Compresses info[0] at level info[1] into a Buffer: plainly, or (`plane`) with the byte-plane parameters
// of compress_plane. One reusable context and scratch buffer per thread: `git add` compresses thousands
// of chunks, and a fresh context and a bound-sized buffer for each would dominate the cost of a small
// chunk. (ZSTD_compressCCtx resets the advanced parameters compress_plane sets, so both can share it.)
Napi::Value compress_one(const Napi::CallbackInfo& info, bool plane) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0], "zstd: the input");
  const int level = info[1].As<Napi::Number>().Int32Value();
  thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  thread_local std::vector<uint8_t> scratch;
  scratch.resize(ZSTD_compressBound(src.size));
  const size_t n = plane ? compress_plane(cctx, scratch.data(), scratch.size(), src.data, src.size, level)
                         : ZSTD_compressCCtx(cctx, scratch.data(), scratch.size(), src.data, src.size, level);
  if (ZSTD_isError(n)) throw Napi::Error::New(env, std::string("zstd compress: ") + ZSTD_getErrorName(n));
  return Napi::Buffer<uint8_t>::Copy(env, scratch.data(), n);
}

// compress(src: Uint8Array, level: number) -> Buffer
Napi::Value Compress(const Napi::CallbackInfo& info) { return compress_one(info, false); }

// decompress(src: Uint8Array, size: number) -> Buffer of exactly `size` bytes, or an error.
Napi::Value Decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0], "zstd: the input");
  const size_t size = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  thread_local ZSTD_DCtx* dctx = ZSTD_createDCtx();
  auto out = Napi::Buffer<uint8_t>::New(env, size);
  const size_t n = ZSTD_decompressDCtx(dctx, out.Data(), size, src.data, src.size);
  if (ZSTD_isError(n)) throw Napi::Error::New(env, std::string("zstd decompress: ") + ZSTD_getErrorName(n));
  if (n != size) throw Napi::Error::New(env, "zstd decompress: wrong decoded size");
  return out;
}

struct PlaneArgs {
  size_t width;
  bool rotate;
  View base;  // data == nullptr: no delta
};

PlaneArgs plane_args(const Napi::CallbackInfo& info, size_t at, size_t size) {
  Napi::Env env = info.Env();
  const size_t width = static_cast<size_t>(info[at].As<Napi::Number>().Uint32Value());
  if (width != 1 && width != 2 && width != 4 && width != 8) throw Napi::RangeError::New(env, "planes: width must be 1, 2, 4 or 8");
  if (size % width != 0) throw Napi::RangeError::New(env, "planes: size is not a whole number of elements");
  PlaneArgs a{width, info[at + 1].ToBoolean().Value(), {nullptr, 0}};
  if (!info[at + 2].IsNull() && !info[at + 2].IsUndefined()) {
    a.base = view_of(info[at + 2], "planes: the base");
    if (a.base.size != size) throw Napi::RangeError::New(env, "planes: base and chunk differ in size");
  }
  return a;
}

// compressPlane(plane, level) -> one plane's zstd frame, as encode_split_planes makes it (for the
// TypeScript reference of split planes).
Napi::Value CompressPlane(const Napi::CallbackInfo& info) { return compress_one(info, true); }

// compressPlanes(src, width, rotate, base | null, level) -> the split-planes body (encode_split_planes).
Napi::Value CompressPlanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0], "zstd: the input");
  const PlaneArgs a = plane_args(info, 1, src.size);
  const int level = info[4].As<Napi::Number>().Int32Value();
  thread_local std::vector<uint8_t> body;
  try {
    encode_split_planes(src.data, src.size, a.width, a.rotate, a.base.data, level, body);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return Napi::Buffer<uint8_t>::Copy(env, body.data(), body.size());
}

// decompressPlanes(body, size, width, rotate, base | null) -> the chunk's `size` bytes, or an error.
Napi::Value DecompressPlanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View body = view_of(info[0], "zstd: the input");
  const size_t size = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  const PlaneArgs a = plane_args(info, 2, size);
  auto out = Napi::Buffer<uint8_t>::New(env, size);
  try {
    decode_split_planes(body.data, body.size, size, a.width, a.rotate, a.base.data, out.Data());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return out;
}

}  // namespace

size_t compress_plane(ZSTD_CCtx* cctx, uint8_t* dst, size_t capacity, const uint8_t* plane, size_t n, int level) {
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, kPlaneHashLog);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, kPlaneMinMatch);
  return ZSTD_compress2(cctx, dst, capacity, plane, n);
}

void encode_split_planes(const uint8_t* src, size_t size, size_t width, bool rotate, const uint8_t* base, int level,
                         std::vector<uint8_t>& out) {
  thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  thread_local std::vector<uint8_t> planes;
  const size_t n = size / width;
  planes.resize(size);
  planes_by_width(width, false, src, base, rotate, n, planes.data());
  out.resize(width * 5 + width * ZSTD_compressBound(n));
  size_t at = 0;
  for (size_t b = 0; b < width; b++) {
    const uint8_t* plane = planes.data() + b * n;
    uint8_t* head = out.data() + at;
    const size_t z = compress_plane(cctx, head + 5, out.size() - at - 5, plane, n, level);
    if (ZSTD_isError(z)) throw std::runtime_error(std::string("zstd compress: ") + ZSTD_getErrorName(z));
    const bool packed = z < n;
    if (!packed) std::memcpy(head + 5, plane, n);
    const uint32_t stored = static_cast<uint32_t>(packed ? z : n);
    head[0] = packed ? 1 : 0;
    for (int k = 0; k < 4; k++) head[1 + k] = static_cast<uint8_t>(stored >> (8 * k));
    at += 5 + stored;
  }
  out.resize(at);
}

void decode_split_planes(const uint8_t* body, size_t length, size_t size, size_t width, bool rotate, const uint8_t* base,
                         uint8_t* out) {
  thread_local ZSTD_DCtx* dctx = ZSTD_createDCtx();
  thread_local std::vector<uint8_t> planes;
  const size_t n = size / width;
  planes.resize(size);
  size_t at = 0;
  for (size_t b = 0; b < width; b++) {
    if (length - at < 5) throw std::runtime_error("plane " + std::to_string(b) + " is cut short");
    const uint8_t mode = body[at];
    size_t stored = 0;
    for (int k = 0; k < 4; k++) stored |= static_cast<size_t>(body[at + 1 + k]) << (8 * k);
    at += 5;
    if (stored > length - at) throw std::runtime_error("plane " + std::to_string(b) + " runs past the payload");
    uint8_t* plane = planes.data() + b * n;
    if (mode == 0) {
      if (stored != n) throw std::runtime_error("raw plane " + std::to_string(b) + " has the wrong size");
      std::memcpy(plane, body + at, n);
    } else if (mode == 1) {
      const size_t got = ZSTD_decompressDCtx(dctx, plane, n, body + at, stored);
      if (ZSTD_isError(got) || got != n) {
        throw std::runtime_error("plane " + std::to_string(b) + ": zstd: " + (ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong decoded size"));
      }
    } else {
      throw std::runtime_error("plane " + std::to_string(b) + " has unknown mode " + std::to_string(mode));
    }
    at += stored;
  }
  if (at != length) throw std::runtime_error("bytes follow the last plane");
  planes_by_width(width, true, planes.data(), base, rotate, n, out);
}

void decode_joined_planes(const uint8_t* frame, size_t length, size_t size, size_t width, bool rotate, const uint8_t* base,
                          uint8_t* out) {
  thread_local ZSTD_DCtx* dctx = ZSTD_createDCtx();
  thread_local std::vector<uint8_t> planes;
  planes.resize(size);
  const size_t got = ZSTD_decompressDCtx(dctx, planes.data(), size, frame, length);
  if (ZSTD_isError(got) || got != size) {
    throw std::runtime_error(std::string("zstd: ") + (ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong decoded size"));
  }
  planes_by_width(width, true, planes.data(), base, rotate, size / width, out);
}

void InitCodec(Napi::Env env, Napi::Object exports) {
  auto zstd = Napi::Object::New(env);
  zstd.Set("compress", Napi::Function::New(env, Compress));
  zstd.Set("decompress", Napi::Function::New(env, Decompress));
  zstd.Set("compressPlane", Napi::Function::New(env, CompressPlane));
  zstd.Set("compressPlanes", Napi::Function::New(env, CompressPlanes));
  zstd.Set("decompressPlanes", Napi::Function::New(env, DecompressPlanes));
  zstd.Set("version", Napi::String::New(env, ZSTD_versionString()));
  exports.Set("zstd", zstd);
}

}  // namespace gt

#else

namespace gt {
void InitCodec(Napi::Env, Napi::Object) {}
}  // namespace gt

#endif
