// zstd compression of store chunks (src/store/encoding.ts), plain or fused with the float-aware
// transforms of encodings 3 and 4 (byte planes, sign rotation, zigzag delta), so a chunk crosses into
// native code once. Synchronous on purpose: a chunk is at most 256 KiB, so a call takes well under a
// millisecond and a thread hop would cost more than it saves. src/store/encoding.ts holds the same
// transforms in TypeScript (the reference the tests compare against, and the path without the addon).
// Built only where libzstd's header and library exist (GT_WITH_ZSTD); elsewhere `zstd` is absent from
// the exports and the store keeps new chunks raw (it still reads compressed ones through the JS decoder).
#include "codec.h"
#include "planes.h"

#ifdef GT_WITH_ZSTD
#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

namespace gt {
namespace {

struct View {
  const uint8_t* data;
  size_t size;
};

// Asks Node-API for the data pointer only: the chunk buffers of ingest live in SharedArrayBuffers, for
// which asking for the ArrayBuffer fails.
View view_of(const Napi::Value& v) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "zstd: expected a Uint8Array");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(v.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
    throw Napi::TypeError::New(v.Env(), "zstd: expected a Uint8Array");
  }
  return {static_cast<const uint8_t*>(data), length};
}

// compress(src: Uint8Array, level: number) -> Buffer
Napi::Value Compress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0]);
  const int level = info[1].As<Napi::Number>().Int32Value();
  // One reusable context and scratch buffer per thread: `git add` compresses thousands of chunks, and a
  // fresh context and a bound-sized buffer for each would dominate the cost of a small chunk.
  thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  thread_local std::vector<uint8_t> scratch;
  scratch.resize(ZSTD_compressBound(src.size));
  const size_t n = ZSTD_compressCCtx(cctx, scratch.data(), scratch.size(), src.data, src.size, level);
  if (ZSTD_isError(n)) throw Napi::Error::New(env, std::string("zstd compress: ") + ZSTD_getErrorName(n));
  return Napi::Buffer<uint8_t>::Copy(env, scratch.data(), n);
}

// decompress(src: Uint8Array, size: number) -> Buffer of exactly `size` bytes, or an error.
Napi::Value Decompress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0]);
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
    a.base = view_of(info[at + 2]);
    if (a.base.size != size) throw Napi::RangeError::New(env, "planes: base and chunk differ in size");
  }
  return a;
}

// compressPlanes(src, width, rotate, base | null, level) -> zstd(planes(...)) as a Buffer.
Napi::Value CompressPlanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0]);
  const PlaneArgs a = plane_args(info, 1, src.size);
  const int level = info[4].As<Napi::Number>().Int32Value();
  thread_local ZSTD_CCtx* cctx = ZSTD_createCCtx();
  thread_local std::vector<uint8_t> planes, scratch;
  planes.resize(src.size);
  planes_by_width(a.width, false, src.data, a.base.data, a.rotate, src.size / a.width, planes.data());
  scratch.resize(ZSTD_compressBound(src.size));
  const size_t n = ZSTD_compressCCtx(cctx, scratch.data(), scratch.size(), planes.data(), planes.size(), level);
  if (ZSTD_isError(n)) throw Napi::Error::New(env, std::string("zstd compress: ") + ZSTD_getErrorName(n));
  return Napi::Buffer<uint8_t>::Copy(env, scratch.data(), n);
}

// decompressPlanes(z, size, width, rotate, base | null) -> the chunk's `size` bytes, or an error.
Napi::Value DecompressPlanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View src = view_of(info[0]);
  const size_t size = static_cast<size_t>(info[1].As<Napi::Number>().Int64Value());
  const PlaneArgs a = plane_args(info, 2, size);
  thread_local ZSTD_DCtx* dctx = ZSTD_createDCtx();
  thread_local std::vector<uint8_t> planes;
  planes.resize(size);
  const size_t n = ZSTD_decompressDCtx(dctx, planes.data(), size, src.data, src.size);
  if (ZSTD_isError(n)) throw Napi::Error::New(env, std::string("zstd decompress: ") + ZSTD_getErrorName(n));
  if (n != size) throw Napi::Error::New(env, "zstd decompress: wrong decoded size");
  auto out = Napi::Buffer<uint8_t>::New(env, size);
  planes_by_width(a.width, true, planes.data(), a.base.data, a.rotate, size / a.width, out.Data());
  return out;
}

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  auto zstd = Napi::Object::New(env);
  zstd.Set("compress", Napi::Function::New(env, Compress));
  zstd.Set("decompress", Napi::Function::New(env, Decompress));
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
