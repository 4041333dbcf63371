// The N-API surface of the kernels: argument checking, and running each operation off the JS thread.
// Only src/kernels/addon.ts calls this; it passes Uint8Array views of the tensors and allocates every
// output, so nothing here allocates JS memory from a worker thread.
//
// Every operation takes (implementation name, threads, dtype, ...) and returns a Promise. Inputs of a
// few hundred KiB run inline (a round trip through the libuv pool costs more than the work); larger
// ones run as napi async work, which itself splits the tensor over `threads` threads (src/ops.cc).
// The caller must not modify the buffers until the promise settles.

#include "chunks.h"
#include "codec.h"
#include "io.h"
#include <napi.h>

#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "dispatch.h"
#include "job.h"
#include "ops.h"

namespace gt {
namespace {

struct Bytes {
  uint8_t* data = nullptr;
  size_t size = 0;
};

Bytes bytes_of(const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a typed array");
  // The C call rather than Napi::TypedArray::ArrayBuffer(): it also accepts SharedArrayBuffer views.
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  NAPI_THROW_IF_FAILED(v.Env(), napi_get_typedarray_info(v.Env(), v, &type, &length, &data, nullptr, nullptr), Bytes());
  size_t element = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: element = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: element = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: element = 8; break;
    default: break;
  }
  return {static_cast<uint8_t*>(data), length * element};
}

DType dtype_of(const Napi::Value& v) {
  static const struct { const char* name; DType dt; } names[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
      {"U64", DType::U64}, {"U32", DType::U32}, {"U16", DType::U16}, {"U8", DType::U8}, {"BOOL", DType::BOOL}};
  const std::string s = v.ToString().Utf8Value();
  for (const auto& n : names)
    if (s == n.name) return n.dt;
  throw Napi::TypeError::New(v.Env(), "unsupported dtype " + s);
}

const KernelTable& impl_of(const Napi::Value& v) {
  const std::string name = v.ToString().Utf8Value();
  if (name.empty()) return best_implementation();
  const KernelTable* k = find_implementation(name.c_str());
  if (!k) throw Napi::Error::New(v.Env(), "kernel implementation '" + name + "' is not supported on this machine");
  return *k;
}

unsigned threads_of(const Napi::Value& v) {
  const double t = v.ToNumber().DoubleValue();
  return t >= 1 ? unsigned(t) : std::max(1u, std::thread::hardware_concurrency());
}

size_t elements(const Bytes& b, DType dt, const Napi::Env& env, const char* what) {
  if (b.size % dtype_size(dt)) throw Napi::RangeError::New(env, std::string(what) + ": byte length is not a whole number of elements");
  return b.size / dtype_size(dt);
}

void need(bool ok, const Napi::Env& env, const std::string& message) {
  if (!ok) throw Napi::RangeError::New(env, message);
}

Napi::Value undefined_result(Napi::Env env) { return env.Undefined(); }

// implementations() -> [{name, supported}], best first.
Napi::Value Implementations(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& list = implementations();
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", list[i].name);
    o.Set("supported", list[i].supported);
    out.Set(uint32_t(i), o);
  }
  return out;
}

Napi::Value Best(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), best_implementation().name); }

// changeMask(impl, threads, dtype, a, b, mask) -> Promise<count>
Napi::Value ChangeMask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  const Bytes a = bytes_of(info[3], "a"), b = bytes_of(info[4], "b"), mask = bytes_of(info[5], "mask");
  const size_t n = elements(a, dt, env, "a");
  need(b.size == a.size && mask.size >= (n + 7) / 8, env, "changeMask: sizes do not match");
  auto count = std::make_shared<uint64_t>(0);
  return Job::run(info, a.size, [=] { *count = ops::change_mask(k, threads, a.data, b.data, n, dt, mask.data); },
                  [count](Napi::Env e) { return Napi::Number::New(e, double(*count)); });
}

// classify3(impl, threads, dtype, o, a, b, [changedA, changedB, same, conflict, signConflict])
//   -> Promise<[counts in the same order]>
Napi::Value Classify3(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  const Bytes o = bytes_of(info[3], "o"), a = bytes_of(info[4], "a"), b = bytes_of(info[5], "b");
  const size_t n = elements(o, dt, env, "o");
  need(a.size == o.size && b.size == o.size, env, "classify3: sizes do not match");
  Napi::Array ms = info[6].As<Napi::Array>();
  need(ms.Length() == 5, env, "classify3: five masks expected");
  uint8_t* m[5];
  for (uint32_t i = 0; i < 5; i++) {
    const Bytes mb = bytes_of(ms.Get(i), "mask");
    need(mb.size >= (n + 7) / 8, env, "classify3: mask too small");
    m[i] = mb.data;
  }
  const ClassifyMasks masks = {m[0], m[1], m[2], m[3], m[4]};
  auto counts = std::make_shared<ClassifyCounts>();
  return Job::run(info, 3 * o.size,
                  [=] { *counts = ops::classify3(k, threads, o.data, a.data, b.data, n, dt, masks); },
                  [counts](Napi::Env e) {
                    Napi::Array r = Napi::Array::New(e, 5);
                    const uint64_t c[5] = {counts->changed_a, counts->changed_b, counts->same, counts->conflict,
                                           counts->sign_conflict};
                    for (uint32_t i = 0; i < 5; i++) r.Set(i, double(c[i]));
                    return r;
                  });
}

// diffStats(impl, threads, dtype, a, b) -> Promise<{sumA2, ...}>
Napi::Value DiffStatsFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  const Bytes a = bytes_of(info[3], "a"), b = bytes_of(info[4], "b");
  const size_t n = elements(a, dt, env, "a");
  need(b.size == a.size, env, "diffStats: sizes do not match");
  auto s = std::make_shared<DiffStats>();
  return Job::run(info, 2 * a.size, [=] { *s = ops::diff_stats(k, threads, a.data, b.data, n, dt); },
                  [s](Napi::Env e) {
                    Napi::Object r = Napi::Object::New(e);
                    r.Set("sumA2", s->sum_a2);
                    r.Set("sumB2", s->sum_b2);
                    r.Set("sumAB", s->sum_ab);
                    r.Set("sumD2", s->sum_d2);
                    r.Set("maxAbsDiff", s->max_abs_diff);
                    r.Set("changed", double(s->changed));
                    r.Set("signFlips", double(s->sign_flips));
                    r.Set("nanA", double(s->nan_a));
                    r.Set("nanB", double(s->nan_b));
                    r.Set("infA", double(s->inf_a));
                    r.Set("infB", double(s->inf_b));
                    return r;
                  });
}

void need_float(DType dt, const Napi::Env& env) {
  need(dtype_is_float(dt), env, "this kernel needs a float dtype (F64, F32, F16, BF16)");
}

// toF32(impl, threads, dtype, src, dst) / fromF32(impl, threads, dtype, src, dst) -> Promise<void>
Napi::Value ToF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const Bytes src = bytes_of(info[3], "src"), dst = bytes_of(info[4], "dst");
  const size_t n = elements(src, dt, env, "src");
  need(dst.size == n * 4 && (reinterpret_cast<uintptr_t>(dst.data) & 3) == 0, env, "toF32: bad destination");
  return Job::run(info, src.size, [=] { ops::to_f32(k, threads, src.data, n, dt, reinterpret_cast<float*>(dst.data)); },
                  undefined_result);
}

Napi::Value FromF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const Bytes src = bytes_of(info[3], "src"), dst = bytes_of(info[4], "dst");
  const size_t n = src.size / 4;
  need(src.size % 4 == 0 && (reinterpret_cast<uintptr_t>(src.data) & 3) == 0 && dst.size == n * dtype_size(dt), env,
       "fromF32: bad source or destination");
  return Job::run(info, src.size,
                  [=] { ops::from_f32(k, threads, reinterpret_cast<const float*>(src.data), n, dt, dst.data); },
                  undefined_result);
}

// select(impl, threads, dtype, a, b, mask, out) -> Promise<void>
Napi::Value Select(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  const Bytes a = bytes_of(info[3], "a"), b = bytes_of(info[4], "b"), mask = bytes_of(info[5], "mask"),
              out = bytes_of(info[6], "out");
  const size_t n = elements(a, dt, env, "a");
  need(b.size == a.size && out.size == a.size && mask.size >= (n + 7) / 8, env, "select: sizes do not match");
  return Job::run(info, 2 * a.size, [=] { ops::select(k, threads, a.data, b.data, mask.data, n, dt, out.data); },
                  undefined_result);
}

// Holds the model pointers of a merge for the life of the job.
struct Models {
  std::vector<const uint8_t*> ptrs;
  std::vector<double> coeffs;
  std::vector<uint64_t> keep, thresholds;
};

std::shared_ptr<Models> models_of(const Napi::Value& v, size_t size, const Napi::Env& env) {
  need(v.IsArray(), env, "models must be an array of typed arrays");
  Napi::Array arr = v.As<Napi::Array>();
  need(arr.Length() >= 1, env, "at least one model is needed");
  auto m = std::make_shared<Models>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    const Bytes b = bytes_of(arr.Get(i), "model");
    need(b.size == size, env, "model sizes do not match");
    m->ptrs.push_back(b.data);
  }
  return m;
}

// combine(impl, threads, dtype, mode, base|null, models[], coeffs: number[], seed: bigint, keepBelow, out, streamFirst = 0)
Napi::Value Combine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const std::string mode_name = info[3].ToString().Utf8Value();
  const CombineMode mode = mode_name == "linear" ? CombineMode::Linear
                           : mode_name == "task" ? CombineMode::Task
                           : mode_name == "dare" ? CombineMode::Dare
                                                 : throw Napi::TypeError::New(env, "unknown combine mode " + mode_name);
  const Bytes out = bytes_of(info[9], "out");
  const size_t n = elements(out, dt, env, "out");
  Bytes base;
  if (mode != CombineMode::Linear) {
    base = bytes_of(info[4], "base");
    need(base.size == out.size, env, "combine: base size does not match");
  }
  auto models = models_of(info[5], out.size, env);
  Napi::Array coeffs = info[6].As<Napi::Array>();
  need(coeffs.Length() == models->ptrs.size(), env, "combine: one coefficient per model");
  for (uint32_t i = 0; i < coeffs.Length(); i++) models->coeffs.push_back(coeffs.Get(i).ToNumber().DoubleValue());
  bool lossless = true;
  const uint64_t seed = info[7].IsBigInt() ? info[7].As<Napi::BigInt>().Uint64Value(&lossless) : 0;
  const uint64_t keep_below = uint64_t(info[8].ToNumber().DoubleValue());
  const uint64_t stream_first = info.Length() > 10 ? uint64_t(info[10].ToNumber().DoubleValue()) : 0;
  const CombineArgs args = {mode, dt, base.data, models->ptrs.data(), models->coeffs.data(),
                            uint32_t(models->ptrs.size()), seed, keep_below, stream_first};
  return Job::run(info, out.size * (models->ptrs.size() + 2), [=] { ops::combine(k, threads, args, n, out.data); },
                  [models](Napi::Env e) { return e.Undefined(); });
}

// ties(impl, threads, dtype, base, models[], keep: number[], lambda, out) -> Promise<void>
Napi::Value Ties(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const Bytes base = bytes_of(info[3], "base"), out = bytes_of(info[7], "out");
  const size_t n = elements(base, dt, env, "base");
  need(out.size == base.size, env, "ties: output size does not match");
  auto models = models_of(info[4], base.size, env);
  Napi::Array keep = info[5].As<Napi::Array>();
  need(keep.Length() == models->ptrs.size(), env, "ties: one keep count per model");
  for (uint32_t i = 0; i < keep.Length(); i++) models->keep.push_back(uint64_t(keep.Get(i).ToNumber().DoubleValue()));
  models->thresholds.resize(models->ptrs.size());
  const TiesArgs args = {dt, base.data, models->ptrs.data(), uint32_t(models->ptrs.size()), nullptr,
                         info[6].ToNumber().DoubleValue(), 1};
  return Job::run(info, base.size * (2 * models->ptrs.size() + 4),
                  [=] { ops::ties(k, threads, args, models->keep.data(), models->thresholds.data(), n, out.data); },
                  [models](Napi::Env e) { return e.Undefined(); });
}

// The passes of ties() on one block of a tensor streamed by the caller (ops.h):
//   tiesHistogram(impl, threads, dtype, base, models[], model, shift, prefix: bigint, hist: BigUint64Array(65536))
//   tiesSigns(impl, threads, dtype, base, models[], thresholds: BigUint64Array) -> Promise<[positive, negative]>
//   tiesMerge(impl, threads, dtype, base, models[], thresholds: BigUint64Array, majority, lambda, out)
struct TiesBlock {
  DType dt;
  Bytes base;
  size_t n;
  std::shared_ptr<Models> models;
};

TiesBlock ties_block(const Napi::CallbackInfo& info, int thresholds_at) {
  Napi::Env env = info.Env();
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const Bytes base = bytes_of(info[3], "base");
  auto models = models_of(info[4], base.size, env);
  if (thresholds_at >= 0) {
    const Bytes t = bytes_of(info[thresholds_at], "thresholds");
    need(t.size == 8 * models->ptrs.size(), env, "ties: one threshold per model");
    models->thresholds.resize(models->ptrs.size());
    std::memcpy(models->thresholds.data(), t.data, t.size);
  }
  return {dt, base, elements(base, dt, env, "base"), models};
}

Napi::Value TiesHistogram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const TiesBlock b = ties_block(info, -1);
  const uint32_t model = info[5].ToNumber().Uint32Value();
  const unsigned shift = info[6].ToNumber().Uint32Value();
  bool lossless = true;
  const uint64_t prefix = info[7].As<Napi::BigInt>().Uint64Value(&lossless);
  const Bytes hist = bytes_of(info[8], "hist");
  need(model < b.models->ptrs.size(), env, "tiesHistogram: no such model");
  need(shift % 16 == 0 && shift < 64, env, "tiesHistogram: shift must be 0, 16, 32 or 48");
  need(hist.size == 65536 * 8, env, "tiesHistogram: hist must hold 65536 counts");
  const TiesArgs args = {b.dt, b.base.data, b.models->ptrs.data(), uint32_t(b.models->ptrs.size()), nullptr, 0, 1};
  auto models = b.models;
  const size_t n = b.n;
  return Job::run(info, 2 * b.base.size,
                  [=] { ops::ties_histogram(k, threads, args, model, shift, prefix, n, reinterpret_cast<uint64_t*>(hist.data)); },
                  [models](Napi::Env e) { return e.Undefined(); });
}

Napi::Value TiesSigns(const Napi::CallbackInfo& info) {
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const TiesBlock b = ties_block(info, 5);
  const TiesArgs args = {b.dt, b.base.data, b.models->ptrs.data(), uint32_t(b.models->ptrs.size()), b.models->thresholds.data(), 0, 1};
  auto models = b.models;
  const size_t n = b.n;
  auto counts = std::make_shared<std::pair<uint64_t, uint64_t>>(0, 0);
  return Job::run(info, b.base.size * (models->ptrs.size() + 1),
                  [=] { ops::ties_signs(k, threads, args, n, counts->first, counts->second); },
                  [models, counts](Napi::Env e) {
                    Napi::Array r = Napi::Array::New(e, 2);
                    r.Set(uint32_t(0), Napi::Number::New(e, double(counts->first)));
                    r.Set(uint32_t(1), Napi::Number::New(e, double(counts->second)));
                    return r;
                  });
}

Napi::Value TiesMerge(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const TiesBlock b = ties_block(info, 5);
  const int majority = info[6].ToNumber().Int32Value() < 0 ? -1 : 1;
  const Bytes out = bytes_of(info[8], "out");
  need(out.size == b.base.size, env, "tiesMerge: output size does not match");
  const TiesArgs args = {b.dt, b.base.data, b.models->ptrs.data(), uint32_t(b.models->ptrs.size()), b.models->thresholds.data(),
                         info[7].ToNumber().DoubleValue(), majority};
  auto models = b.models;
  const size_t n = b.n;
  return Job::run(info, b.base.size * (models->ptrs.size() + 2), [=] { ops::ties_merge(k, threads, args, n, out.data); },
                  [models](Napi::Env e) { return e.Undefined(); });
}

// matvec(impl, threads, dtype, matrix, rows, cols, x: Float64Array, y: Float64Array, transpose) -> Promise<void>
Napi::Value Matvec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType dt = dtype_of(info[2]);
  need_float(dt, env);
  const Bytes m = bytes_of(info[3], "matrix"), x = bytes_of(info[6], "x"), y = bytes_of(info[7], "y");
  const size_t rows = size_t(info[4].ToNumber().DoubleValue()), cols = size_t(info[5].ToNumber().DoubleValue());
  const bool transpose = info[8].ToBoolean().Value();
  need(m.size == rows * cols * dtype_size(dt), env, "matvec: matrix size does not match rows x cols");
  need(x.size == (transpose ? rows : cols) * 8 && y.size == (transpose ? cols : rows) * 8, env,
       "matvec: vector sizes do not match");
  need((reinterpret_cast<uintptr_t>(x.data) & 7) == 0 && (reinterpret_cast<uintptr_t>(y.data) & 7) == 0, env,
       "matvec: vectors must be Float64Arrays");
  return Job::run(info, m.size,
                  [=] {
                    ops::matvec(k, threads, m.data, rows, cols, dt, reinterpret_cast<const double*>(x.data),
                                reinterpret_cast<double*>(y.data), transpose);
                  },
                  undefined_result);
}

// matmul(impl, threads, x, w, wDtype, bias|null, out, rows, in, outDim) -> Promise<void>: out = x w^T + bias,
// x, bias and out Float32Arrays, w F32 (a Float32Array) or F16/BF16 (a Uint16Array) as wDtype says (see
// MatmulArgs). src/kernels/index.ts has checked that out overlaps no input.
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const DType wt = dtype_of(info[4]);
  need(wt == DType::F32 || wt == DType::F16 || wt == DType::BF16, env, "matmul: w must be F32, F16 or BF16");
  const size_t rows = size_t(info[7].ToNumber().DoubleValue()), in = size_t(info[8].ToNumber().DoubleValue()),
               out_dim = size_t(info[9].ToNumber().DoubleValue());
  const Bytes x = bytes_of(info[2], "x"), w = bytes_of(info[3], "w"), y = bytes_of(info[6], "out");
  const Bytes bias = info[5].IsNull() || info[5].IsUndefined() ? Bytes() : bytes_of(info[5], "bias");
  need(x.size == rows * in * 4 && w.size == out_dim * in * dtype_size(wt) && y.size == rows * out_dim * 4 &&
           (bias.data == nullptr || bias.size == out_dim * 4),
       env, "matmul: sizes do not match rows x in, out x in, rows x out");
  for (const Bytes* b : {&x, &y, &bias})
    need((reinterpret_cast<uintptr_t>(b->data) & 3) == 0, env, "matmul: arrays must be Float32Arrays");
  need((reinterpret_cast<uintptr_t>(w.data) & (dtype_size(wt) - 1)) == 0, env,
       "matmul: w must be a Float32Array (F32) or a Uint16Array (F16, BF16)");
  const MatmulArgs args = {reinterpret_cast<const float*>(x.data), w.data, wt,
                           reinterpret_cast<const float*>(bias.data), reinterpret_cast<float*>(y.data), rows, in,
                           out_dim};
  // Inline below kInlineBytes multiply-adds (tens of microseconds), like the other kernels below their byte size.
  return Job::run(info, rows * in * out_dim, [=] { ops::matmul(k, threads, args); }, undefined_result);
}

// activation(impl, threads, name, x: Float32Array) -> Promise<void>, in place; name: gelu, gelu_tanh, silu.
Napi::Value ActivationFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const std::string name = info[2].ToString().Utf8Value();
  const Activation fn = name == "gelu" ? Activation::Gelu
                        : name == "gelu_tanh" ? Activation::GeluTanh
                        : name == "silu" ? Activation::Silu
                                         : throw Napi::TypeError::New(env, "unknown activation " + name);
  const Bytes x = bytes_of(info[3], "x");
  need(x.size % 4 == 0 && (reinterpret_cast<uintptr_t>(x.data) & 3) == 0, env, "activation: x must be a Float32Array");
  // An exp costs about as much as copying a few dozen bytes: weigh the elements accordingly.
  return Job::run(info, x.size * 8, [=] { ops::activation(k, threads, fn, reinterpret_cast<float*>(x.data), x.size / 4); },
                  undefined_result);
}

// attention(impl, threads, q, k, v, out, seqs: Uint32Array of (start, length) pairs, heads, kvHeads, headDim,
//           scale, causal, window) -> Promise<void>. src/kernels/index.ts has checked the shapes.
Napi::Value AttentionFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const Bytes q = bytes_of(info[2], "q"), kb = bytes_of(info[3], "k"), v = bytes_of(info[4], "v"), out = bytes_of(info[5], "out"),
              seqs = bytes_of(info[6], "seqs");
  const size_t heads = size_t(info[7].ToNumber().DoubleValue()), kv_heads = size_t(info[8].ToNumber().DoubleValue()),
               head_dim = size_t(info[9].ToNumber().DoubleValue());
  const double window = info[12].IsNull() || info[12].IsUndefined() ? 0 : info[12].ToNumber().DoubleValue();
  need(heads > 0 && kv_heads > 0 && heads % kv_heads == 0 && head_dim > 0, env, "attention: bad head counts");
  const size_t rows = q.size / (4 * heads * head_dim);
  need(q.size == rows * heads * head_dim * 4 && out.size == q.size && kb.size == rows * kv_heads * head_dim * 4 &&
           v.size == kb.size && seqs.size % 8 == 0,
       env, "attention: q, k, v, out sizes do not match");
  const uint32_t* s = reinterpret_cast<const uint32_t*>(seqs.data);
  for (size_t i = 0; i < seqs.size / 8; i++)
    need(size_t(s[2 * i]) + s[2 * i + 1] <= rows, env, "attention: a sequence runs past the rows");
  for (const Bytes* b : {&q, &kb, &v, &out, &seqs})
    need((reinterpret_cast<uintptr_t>(b->data) & 3) == 0, env, "attention: arrays must be Float32Arrays / Uint32Array");
  const AttentionArgs a = {reinterpret_cast<const float*>(q.data), reinterpret_cast<const float*>(kb.data),
                           reinterpret_cast<const float*>(v.data), reinterpret_cast<float*>(out.data), heads, kv_heads,
                           head_dim, float(info[10].ToNumber().DoubleValue()), info[11].ToBoolean().Value(),
                           size_t(window)};
  size_t work = 0;
  for (size_t i = 0; i < seqs.size / 8; i++) work += size_t(s[2 * i + 1]) * s[2 * i + 1];
  return Job::run(info, work * heads * head_dim, [=] { ops::attention(k, threads, a, s, seqs.size / 8); }, undefined_result);
}

// norm(impl, threads, x, weight, bias|null, out, rows, dim, eps, rms) -> Promise<void>; out may be x.
Napi::Value NormFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KernelTable& k = impl_of(info[0]);
  const unsigned threads = threads_of(info[1]);
  const Bytes x = bytes_of(info[2], "x"), w = bytes_of(info[3], "weight"), out = bytes_of(info[5], "out");
  const Bytes bias = info[4].IsNull() || info[4].IsUndefined() ? Bytes() : bytes_of(info[4], "bias");
  const size_t rows = size_t(info[6].ToNumber().DoubleValue()), dim = size_t(info[7].ToNumber().DoubleValue());
  need(dim > 0 && x.size == rows * dim * 4 && out.size == x.size && w.size == dim * 4 && (bias.data == nullptr || bias.size == dim * 4),
       env, "norm: sizes do not match rows x dim");
  for (const Bytes* b : {&x, &w, &out, &bias})
    need((reinterpret_cast<uintptr_t>(b->data) & 3) == 0, env, "norm: arrays must be Float32Arrays");
  const NormArgs a = {reinterpret_cast<const float*>(x.data), reinterpret_cast<const float*>(w.data),
                      reinterpret_cast<const float*>(bias.data), reinterpret_cast<float*>(out.data), dim,
                      float(info[8].ToNumber().DoubleValue()), info[9].ToBoolean().Value()};
  return Job::run(info, x.size * 2, [=] { ops::norm(k, threads, a, rows); }, undefined_result);
}

// copy(threads, src, dst) -> Promise<void>: memcpy, the benchmark's bandwidth baseline.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const unsigned threads = threads_of(info[0]);
  const Bytes src = bytes_of(info[1], "src"), dst = bytes_of(info[2], "dst");
  need(src.size == dst.size, env, "copy: sizes do not match");
  return Job::run(info, src.size, [=] { ops::copy(threads, src.data, src.size, dst.data); }, undefined_result);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("implementations", Napi::Function::New(env, Implementations));
  exports.Set("best", Napi::Function::New(env, Best));
  exports.Set("changeMask", Napi::Function::New(env, ChangeMask));
  exports.Set("classify3", Napi::Function::New(env, Classify3));
  exports.Set("diffStats", Napi::Function::New(env, DiffStatsFn));
  exports.Set("toF32", Napi::Function::New(env, ToF32));
  exports.Set("fromF32", Napi::Function::New(env, FromF32));
  exports.Set("select", Napi::Function::New(env, Select));
  exports.Set("combine", Napi::Function::New(env, Combine));
  exports.Set("ties", Napi::Function::New(env, Ties));
  exports.Set("tiesHistogram", Napi::Function::New(env, TiesHistogram));
  exports.Set("tiesSigns", Napi::Function::New(env, TiesSigns));
  exports.Set("tiesMerge", Napi::Function::New(env, TiesMerge));
  exports.Set("matvec", Napi::Function::New(env, Matvec));
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("activation", Napi::Function::New(env, ActivationFn));
  exports.Set("attention", Napi::Function::New(env, AttentionFn));
  exports.Set("norm", Napi::Function::New(env, NormFn));
  exports.Set("copy", Napi::Function::New(env, Copy));
  InitChunks(env, exports);
  InitCodec(env, exports);
  InitIo(env, exports);
#ifdef GT_WITH_CUDA
  exports.Set("cuda", Napi::Boolean::New(env, true));
#else
  exports.Set("cuda", Napi::Boolean::New(env, false));
#endif
  return exports;
}

}  // namespace
}  // namespace gt

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return gt::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitModule)
