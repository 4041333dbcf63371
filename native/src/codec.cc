// zstd compression of store chunks (src/store/encoding.ts). Synchronous on purpose: a chunk is at most
// 256 KiB, so a call takes well under a millisecond and a thread hop would cost more than it saves.
// Built only where libzstd's header and library exist (GT_WITH_ZSTD); elsewhere `zstd` is absent from
// the exports and the store keeps new chunks raw (it still reads compressed ones through the JS decoder).
#include "codec.h"

#ifdef GT_WITH_ZSTD
#include <zstd.h>

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

}  // namespace

void InitCodec(Napi::Env env, Napi::Object exports) {
  auto zstd = Napi::Object::New(env);
  zstd.Set("compress", Napi::Function::New(env, Compress));
  zstd.Set("decompress", Napi::Function::New(env, Decompress));
  zstd.Set("version", Napi::String::New(env, ZSTD_versionString()));
  exports.Set("zstd", zstd);
}

}  // namespace gt

#else

namespace gt {
void InitCodec(Napi::Env, Napi::Object) {}
}  // namespace gt

#endif
