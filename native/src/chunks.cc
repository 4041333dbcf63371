// Batched chunk work for `git add` and `git checkout`: hashing chunks, compressing them, and decoding
// and verifying them, a few MiB per call on a libuv pool thread. The JS thread meanwhile reads git's
// pipe, hashes whole tensors and writes packs, so the two cores of a small machine both work. Which
// encoding a chunk gets, and the byte layout of payloads, stay in src/store/encoding.ts; this file only
// runs the transforms (planes.h) and zstd over many chunks at once.
//
// SHA-256 is OpenSSL's, taken from the Node binary that loads the addon (Node exports its OpenSSL
// symbols for addons); it uses the CPU's SHA extensions where present, as `crypto.createHash` does.
// CRC-32 (crc32.h, zlib's definition) is the pack index's checksum of a raw chunk, which checkout
// verifies instead of the chunk's SHA-256 (see readRaw).
#include "chunks.h"
#include "codec.h"
#include "crc32.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "job.h"
#include "planes.h"
#include "view.h"

#ifdef GT_WITH_ZSTD
#include <zstd.h>
#endif

extern "C" {
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_md_st EVP_MD;
typedef struct engine_st ENGINE;
EVP_MD_CTX* EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX* ctx);
const EVP_MD* EVP_sha256(void);
int EVP_DigestInit_ex(EVP_MD_CTX* ctx, const EVP_MD* type, ENGINE* impl);
int EVP_DigestUpdate(EVP_MD_CTX* ctx, const void* d, size_t cnt);
int EVP_DigestFinal_ex(EVP_MD_CTX* ctx, unsigned char* md, unsigned int* s);
}

namespace gt {
namespace {

void sha256(const uint8_t* data, size_t size, uint8_t out[32]) {
  thread_local EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned int len = 0;
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) || !EVP_DigestUpdate(ctx, data, size) ||
      !EVP_DigestFinal_ex(ctx, out, &len) || len != 32) {
    throw std::runtime_error("SHA-256 failed in OpenSSL");
  }
}

std::string hex16(const uint8_t* id) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 8; i++) {
    s += digits[id[i] >> 4];
    s += digits[id[i] & 15];
  }
  return s;
}

// hash(data, lengths: Uint32Array, crcs?: Uint32Array) -> Promise<Buffer>: the SHA-256 of each
// consecutive piece of `data`, 32 bytes each, in order; with `crcs` (one per piece), also each piece's
// CRC-32, written there.
Napi::Value Hash(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const View data = view_of(info[0], "hash: data");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    throw Napi::TypeError::New(env, "hash: lengths must be a Uint32Array");
  }
  const Napi::Uint32Array lengths_js = info[1].As<Napi::Uint32Array>();
  std::vector<uint32_t> lengths(lengths_js.Data(), lengths_js.Data() + lengths_js.ElementLength());
  uint32_t* crcs = nullptr;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        info[2].As<Napi::Uint32Array>().ElementLength() != lengths.size()) {
      throw Napi::TypeError::New(env, "hash: crcs must be a Uint32Array with one element per piece");
    }
    crcs = info[2].As<Napi::Uint32Array>().Data();
  }
  size_t total = 0;
  for (uint32_t n : lengths) total += n;
  if (total != data.size) throw Napi::RangeError::New(env, "hash: lengths do not add up to the data's size");
  auto digests = std::make_shared<std::vector<uint8_t>>(lengths.size() * 32);
  return Job::run(
      info, data.size,
      [data, lengths, digests, crcs] {
        size_t at = 0;
        for (size_t k = 0; k < lengths.size(); k++) {
          sha256(data.data + at, lengths[k], digests->data() + 32 * k);
          if (crcs) crcs[k] = crc32(0, data.data + at, lengths[k]);
          at += lengths[k];
        }
      },
      [digests](Napi::Env env) { return Napi::Buffer<uint8_t>::Copy(env, digests->data(), digests->size()); });
}

// hashStream() -> {update(data) -> Promise<void>, digest() -> Buffer}: SHA-256 of a whole object fed in
// pieces, the pieces hashed on a pool thread. The caller starts an update only once the previous one
// has settled (one context, fed in order), and calls digest once, after the last.
Napi::Value HashStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
  };
  auto state = std::make_shared<Context>();
  if (!state->ctx || !EVP_DigestInit_ex(state->ctx, EVP_sha256(), nullptr)) throw Napi::Error::New(env, "SHA-256 failed in OpenSSL");
  Napi::Object stream = Napi::Object::New(env);
  stream.Set("update", Napi::Function::New(env, [state](const Napi::CallbackInfo& info) -> Napi::Value {
    const View data = view_of(info[0], "hashStream.update: data");
    return Job::run(
        info, data.size,
        [state, data] {
          if (!EVP_DigestUpdate(state->ctx, data.data, data.size)) throw std::runtime_error("SHA-256 failed in OpenSSL");
        },
        [](Napi::Env env) { return env.Undefined(); });
  }));
  stream.Set("digest", Napi::Function::New(env, [state](const Napi::CallbackInfo& info) -> Napi::Value {
    uint8_t out[32];
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(state->ctx, out, &len) || len != 32) throw Napi::Error::New(info.Env(), "SHA-256 failed in OpenSSL");
    return Napi::Buffer<uint8_t>::Copy(info.Env(), out, 32);
  }));
  return stream;
}

// readRaw(places: Float64Array, out) -> Promise<void>: raw chunks read straight from their pack files
// into consecutive parts of `out`, each checked against the CRC-32 its pack index records. `places`
// holds (fd, offset, length, crc) per chunk. Checkout's path for chunks `git add` stored raw: the bytes
// are copied once, from the page cache into `out`, and checked at CRC-32's speed rather than
// SHA-256's (their SHA-256 was computed from these bytes when they entered the store; `git tensor
// fsck` re-checks it). Rejects naming the first chunk that fails, by its index in `places`.
Napi::Value ReadRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[0].As<Napi::Float64Array>().ElementLength() % 4 != 0) {
    throw Napi::TypeError::New(env, "readRaw: places must be a Float64Array of (fd, offset, length, crc) quadruples");
  }
  const Napi::Float64Array places_js = info[0].As<Napi::Float64Array>();
  std::vector<double> places(places_js.Data(), places_js.Data() + places_js.ElementLength());
  const View out = view_of(info[1], "readRaw: out");
  size_t total = 0;
  for (size_t k = 0; k < places.size(); k += 4) total += static_cast<size_t>(places[k + 2]);
  if (total != out.size) throw Napi::RangeError::New(env, "readRaw: out is not the size of the chunks");
  uint8_t* dst = const_cast<uint8_t*>(out.data);
  return Job::run(
      info, total,
      [places, dst] {
        uint8_t* at = dst;
        for (size_t k = 0; k < places.size(); k += 4) {
          const int fd = static_cast<int>(places[k]);
          const off_t offset = static_cast<off_t>(places[k + 1]);
          const size_t length = static_cast<size_t>(places[k + 2]);
          const uint32_t crc = static_cast<uint32_t>(places[k + 3]);
          for (size_t got = 0; got < length;) {
            const ssize_t n = pread(fd, at + got, length - got, offset + static_cast<off_t>(got));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw std::runtime_error("chunk #" + std::to_string(k / 4) + ": " + std::strerror(errno));
            if (n == 0) throw std::runtime_error("chunk #" + std::to_string(k / 4) + ": the pack file ends inside it");
            got += static_cast<size_t>(n);
          }
          if (crc32(0, at, length) != crc) {
            throw std::runtime_error("chunk #" + std::to_string(k / 4) + ": fails the CRC-32 its pack index records");
          }
          at += length;
        }
      },
      [](Napi::Env env) { return env.Undefined(); });
}

#ifdef GT_WITH_ZSTD

struct PlaneItem {
  View src;
  size_t width = 1;
  bool rotate = false;
  View base;  // data == nullptr: no delta
};

// The planes arguments of one item: its bytes, element width, sign rotation and delta base (or null).
PlaneItem plane_item(const Napi::Value& src, const Napi::Value& width, const Napi::Value& rotate, const Napi::Value& base,
                     const char* what) {
  PlaneItem item;
  item.src = view_of(src, what);
  item.width = width.As<Napi::Number>().Uint32Value();
  item.rotate = rotate.ToBoolean().Value();
  if (!base.IsNull() && !base.IsUndefined()) item.base = view_of(base, what);
  if (item.width != 1 && item.width != 2 && item.width != 4 && item.width != 8) {
    throw Napi::RangeError::New(src.Env(), std::string(what) + ": width must be 1, 2, 4 or 8");
  }
  return item;
}

// compressPlanes(items: [src, width, rotate, base | null][], level) -> Promise<Buffer[]>: for each item,
// the split-planes body of encodings 5 and 6 (codec.h), exactly what the synchronous compressPlanes makes.
Napi::Value CompressPlanes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "compressPlanes: items must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  const int level = info[1].As<Napi::Number>().Int32Value();
  auto items = std::make_shared<std::vector<PlaneItem>>();
  size_t bytes = 0;
  for (uint32_t k = 0; k < list.Length(); k++) {
    const Napi::Value v = list.Get(k);
    if (!v.IsArray()) throw Napi::TypeError::New(env, "compressPlanes: each item must be an array");
    Napi::Array a = v.As<Napi::Array>();
    PlaneItem item = plane_item(a.Get(0u), a.Get(1u), a.Get(2u), a.Get(3u), "compressPlanes");
    if (item.src.size % item.width) throw Napi::RangeError::New(env, "compressPlanes: a chunk is not a whole number of elements");
    if (item.base.data && item.base.size != item.src.size) throw Napi::RangeError::New(env, "compressPlanes: base and chunk differ in size");
    bytes += item.src.size;
    items->push_back(item);
  }
  auto out = std::make_shared<std::vector<std::vector<uint8_t>>>(items->size());
  return Job::run(
      info, bytes,
      [items, out, level] {
        for (size_t k = 0; k < items->size(); k++) {
          const PlaneItem& it = (*items)[k];
          encode_split_planes(it.src.data, it.src.size, it.width, it.rotate, it.base.data, level, (*out)[k]);
        }
      },
      [out](Napi::Env env) {
        Napi::Array result = Napi::Array::New(env, out->size());
        for (size_t k = 0; k < out->size(); k++) result.Set(k, Napi::Buffer<uint8_t>::Copy(env, (*out)[k].data(), (*out)[k].size()));
        return result;
      });
}

// How a payload body is stored: the bytes themselves, one zstd frame of all planes (encodings 2-4), or
// one frame or raw copy per plane (encodings 5 and 6).
enum class BodyMode { raw = 0, joined = 1, split = 2 };

struct DecodeItem {
  PlaneItem planes;  // src = the payload body; planes.base = decoded base bytes, if given as bytes
  BodyMode mode = BodyMode::raw;
  size_t size = 0;
  const uint8_t* id = nullptr;
  std::shared_ptr<DecodeItem> base_item;  // a delta base still to decode (its own chain, bounded)
};

// A delta chain is at most MAX_DELTA_DEPTH (4) long; anything deeper is a damaged store.
constexpr size_t kMaxChain = 16;

// [body, mode, size, width, rotate, base, id], base being null, the decoded base bytes, or the base's
// own item (decoded here first, so a delta's whole chain is decoded off the JS thread).
std::shared_ptr<DecodeItem> parse_decode_item(Napi::Env env, const Napi::Value& v, size_t depth) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "decode: each item must be an array");
  if (depth > kMaxChain) throw Napi::RangeError::New(env, "decode: delta chain too deep");
  Napi::Array a = v.As<Napi::Array>();
  auto item = std::make_shared<DecodeItem>();
  const uint32_t mode = a.Get(1u).As<Napi::Number>().Uint32Value();
  if (mode > 2) throw Napi::RangeError::New(env, "decode: unknown body mode");
  item->mode = static_cast<BodyMode>(mode);
  item->size = static_cast<size_t>(a.Get(2u).As<Napi::Number>().Int64Value());
  const Napi::Value base = a.Get(5u);
  item->planes = plane_item(a.Get(0u), a.Get(3u), a.Get(4u), base.IsArray() ? env.Null() : base, "decode");
  if (base.IsArray()) {
    item->base_item = parse_decode_item(env, base, depth + 1);
    if (item->base_item->size != item->size) throw Napi::RangeError::New(env, "decode: base and chunk differ in size");
  }
  const View id = view_of(a.Get(6u), "decode: id");
  if (id.size != 32) throw Napi::RangeError::New(env, "decode: an id must be 32 bytes");
  item->id = id.data;
  if (item->size % item->planes.width) throw Napi::RangeError::New(env, "decode: a chunk is not a whole number of elements");
  if (item->planes.base.data && item->planes.base.size != item->size) throw Napi::RangeError::New(env, "decode: base and chunk differ in size");
  if (item->mode == BodyMode::raw && item->planes.src.size != item->size) throw Napi::RangeError::New(env, "decode: a raw payload differs from its size");
  return item;
}

// Decodes `it` into `out` (it.size bytes), its base chain first. Only the outermost chunk is hashed: a
// wrong base makes a wrong chunk, which its id then rejects.
void decode_item(const DecodeItem& it, uint8_t* out, size_t depth) {
  thread_local std::vector<std::vector<uint8_t>> bases(kMaxChain + 1);
  const uint8_t* base = it.planes.base.data;
  if (it.base_item) {
    std::vector<uint8_t>& scratch = bases[depth];
    scratch.resize(it.base_item->size);
    decode_item(*it.base_item, scratch.data(), depth + 1);
    base = scratch.data();
  }
  const PlaneItem& p = it.planes;
  if (it.mode == BodyMode::raw) std::memcpy(out, p.src.data, it.size);
  else if (it.mode == BodyMode::joined) decode_joined_planes(p.src.data, p.src.size, it.size, p.width, p.rotate, base, out);
  else decode_split_planes(p.src.data, p.src.size, it.size, p.width, p.rotate, base, out);
}

// decode(items: [body, mode, size, width, rotate, base, id][], out) -> Promise<void>: each item's bytes
// (BodyMode: raw, joined or split planes; base: null, bytes, or the base's own item) written one after
// the other into `out`, each checked against its 32-byte SHA-256 id. Rejects naming the first chunk
// that fails.
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "decode: items must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  const View out = view_of(info[1], "decode: out");
  auto items = std::make_shared<std::vector<std::shared_ptr<DecodeItem>>>();
  size_t total = 0;
  for (uint32_t k = 0; k < list.Length(); k++) {
    items->push_back(parse_decode_item(env, list.Get(k), 0));
    total += items->back()->size;
  }
  if (total != out.size) throw Napi::RangeError::New(env, "decode: out is not the size of the chunks");
  uint8_t* dst = const_cast<uint8_t*>(out.data);
  return Job::run(
      info, total,
      [items, dst] {
        uint8_t* at = dst;
        for (const auto& it : *items) {
          try {
            decode_item(*it, at, 0);
          } catch (const std::exception& e) {
            throw std::runtime_error("chunk " + hex16(it->id) + ": " + e.what());
          }
          uint8_t digest[32];
          sha256(at, it->size, digest);
          if (std::memcmp(digest, it->id, 32) != 0) throw std::runtime_error("chunk " + hex16(it->id) + ": content hashes to " + hex16(digest));
          at += it->size;
        }
      },
      [](Napi::Env env) { return env.Undefined(); });
}

#endif

}  // namespace

void InitChunks(Napi::Env env, Napi::Object exports) {
  auto chunks = Napi::Object::New(env);
  chunks.Set("hash", Napi::Function::New(env, Hash));
  chunks.Set("hashStream", Napi::Function::New(env, HashStream));
  chunks.Set("readRaw", Napi::Function::New(env, ReadRaw));
#ifdef GT_WITH_ZSTD
  chunks.Set("compressPlanes", Napi::Function::New(env, CompressPlanes));
  chunks.Set("decode", Napi::Function::New(env, Decode));
#endif
  exports.Set("chunks", chunks);
}

}  // namespace gt
