// CUDA implementation of the kernel table, built only into the optional CUDA addon
// (git_tensor_cuda.node: GIT_TENSOR_CUDA=1 at build time and nvcc present). Each call copies its
// block to the GPU, runs there, and copies the result back on the calling thread's default stream,
// so the CPU threads of src/ops.cc keep several blocks in flight. Elementwise results are the same
// bits as the CPU implementations (same formulas, nvcc --fmad=false) except NaN payloads (the GPU
// returns its canonical NaN); reductions agree within the tests' tolerance. TIES and matvec run on the best CPU implementation: their selection passes are
// dominated by PCIe transfers, not arithmetic.
//
// The tensors live in host memory, so for these memory-bound kernels the GPU rarely beats the CPU:
// "cuda" is never chosen by default, only with GIT_TENSOR_KERNELS=cuda.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "../kernels/common.h"
#include "../src/dispatch.h"

namespace gt {
namespace cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + ": " + cudaGetErrorString(e));
}

// Device buffers reused by the calling thread, grown on demand.
struct Buffer {
  void* ptr = nullptr;
  size_t size = 0;
  void* get(size_t bytes) {
    if (bytes > size) {
      if (ptr) cudaFree(ptr);
      ptr = nullptr;
      check(cudaMalloc(&ptr, bytes), "cudaMalloc");
      size = bytes;
    }
    return ptr;
  }
  ~Buffer() {
    if (ptr) cudaFree(ptr);
  }
};

thread_local Buffer buffers[8];
const cudaStream_t kStream = cudaStreamPerThread;

template <class T>
T* upload(int slot, const void* src, size_t bytes) {
  void* d = buffers[slot].get(bytes + 16);
  if (bytes) check(cudaMemcpyAsync(d, src, bytes, cudaMemcpyHostToDevice, kStream), "upload");
  return static_cast<T*>(d);
}

template <class T>
T* scratch(int slot, size_t bytes) {
  void* d = buffers[slot].get(bytes + 16);
  check(cudaMemsetAsync(d, 0, bytes + 16, kStream), "memset");
  return static_cast<T*>(d);
}

void download(void* dst, const void* src, size_t bytes) {
  if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, kStream), "download");
  check(cudaStreamSynchronize(kStream), "sync");
}

constexpr unsigned kThreads = 256;
unsigned grid(size_t items) { return unsigned((items + kThreads - 1) / kThreads); }

// One atomic per warp instead of per thread.
__device__ void warp_add(unsigned long long v, unsigned long long* total) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0 && v) atomicAdd(total, v);
}
__device__ void warp_add(double v, double* total) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(total, v);
}

__device__ double value(const uint8_t* p, size_t j, DType dt) {
  switch (dt) {
    case DType::F64: return load<double>(p, j);
    case DType::F32: return load<float>(p, j);
    case DType::F16: return f16_to_f32(load<uint16_t>(p, j));
    case DType::BF16: return bf16_to_f32(load<uint16_t>(p, j));
    case DType::I64: return double(load<int64_t>(p, j));
    case DType::I32: return load<int32_t>(p, j);
    case DType::I16: return load<int16_t>(p, j);
    case DType::I8: return load<int8_t>(p, j);
    case DType::U64: return double(load<uint64_t>(p, j));
    case DType::U32: return load<uint32_t>(p, j);
    case DType::U16: return load<uint16_t>(p, j);
    default: return load<uint8_t>(p, j);
  }
}

__device__ uint64_t bits_at(const uint8_t* p, size_t j, unsigned w) {
  switch (w) {
    case 8: return load<uint64_t>(p, j);
    case 4: return load<uint32_t>(p, j);
    case 2: return load<uint16_t>(p, j);
    default: return p[j];
  }
}

__device__ int order_at(const uint8_t* x, const uint8_t* y, size_t j, DType dt) {
  if (dt == DType::I64) { const int64_t u = load<int64_t>(x, j), v = load<int64_t>(y, j); return (u > v) - (u < v); }
  if (dt == DType::U64) { const uint64_t u = load<uint64_t>(x, j), v = load<uint64_t>(y, j); return (u > v) - (u < v); }
  const double u = value(x, j, dt), v = value(y, j, dt);
  return (u > v) - (u < v);
}

// One thread per mask byte (8 elements).
__global__ void change_mask_kernel(const uint8_t* a, const uint8_t* b, size_t n, unsigned w, uint8_t* mask,
                                   unsigned long long* count) {
  const size_t byte = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned bits = 0;
  for (size_t j = byte * 8; j < n && j < byte * 8 + 8; j++) bits |= unsigned(bits_at(a, j, w) != bits_at(b, j, w)) << (j & 7);
  if (byte * 8 < n) mask[byte] = uint8_t(bits);
  warp_add((unsigned long long)__popc(bits), count);
}

__global__ void classify3_kernel(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, DType dt,
                                 uint8_t* masks, size_t mask_bytes, unsigned long long* counts) {
  const size_t byte = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const unsigned w = dtype_size(dt);
  unsigned m[5] = {0, 0, 0, 0, 0};
  for (size_t j = byte * 8; j < n && j < byte * 8 + 8; j++) {
    const uint64_t bo = bits_at(o, j, w), ba = bits_at(a, j, w), bb = bits_at(b, j, w);
    const unsigned bit = 1u << (j & 7);
    if (ba != bo) m[0] |= bit;
    if (bb != bo) m[1] |= bit;
    if (ba != bo && ba == bb) m[2] |= bit;
    if (ba != bo && bb != bo && ba != bb) {
      m[3] |= bit;
      if (order_at(a, o, j, dt) * order_at(b, o, j, dt) < 0) m[4] |= bit;
    }
  }
  for (int k = 0; k < 5; k++) {
    if (byte * 8 < n) masks[k * mask_bytes + byte] = uint8_t(m[k]);
    warp_add((unsigned long long)__popc(m[k]), counts + k);
  }
}

struct DeviceStats {
  double sum_a2, sum_b2, sum_ab, sum_d2;
  unsigned long long max_bits, changed, flips, nan_a, nan_b, inf_a, inf_b;
};

__global__ void diff_stats_kernel(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DeviceStats* s) {
  const unsigned w = dtype_size(dt);
  double a2 = 0, b2 = 0, ab = 0, d2 = 0, max_d = 0;
  unsigned long long changed = 0, flips = 0, nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
  for (size_t j = size_t(blockIdx.x) * blockDim.x + threadIdx.x; j < n; j += size_t(gridDim.x) * blockDim.x) {
    const double x = value(a, j, dt), y = value(b, j, dt);
    changed += bits_at(a, j, w) != bits_at(b, j, w);
    nan_a += isnan(x), nan_b += isnan(y), inf_a += isinf(x), inf_b += isinf(y);
    flips += (x > 0 && y < 0) || (x < 0 && y > 0);
    if (isfinite(x) && isfinite(y)) {
      const double d = x - y;
      a2 += x * x, b2 += y * y, ab += x * y, d2 += d * d;
      max_d = fabs(d) > max_d ? fabs(d) : max_d;
    }
  }
  warp_add(a2, &s->sum_a2);
  warp_add(b2, &s->sum_b2);
  warp_add(ab, &s->sum_ab);
  warp_add(d2, &s->sum_d2);
  warp_add(changed, &s->changed);
  warp_add(flips, &s->flips);
  warp_add(nan_a, &s->nan_a);
  warp_add(nan_b, &s->nan_b);
  warp_add(inf_a, &s->inf_a);
  warp_add(inf_b, &s->inf_b);
  // Non-negative doubles order like their bit patterns.
  atomicMax(&s->max_bits, (unsigned long long)__double_as_longlong(max_d));
}

template <class C>
__device__ C load_c(const uint8_t* p, size_t j, DType dt) {
  if (dt == DType::F64) return C(load<double>(p, j));
  if (dt == DType::F32) return C(load<float>(p, j));
  return C(dt == DType::F16 ? f16_to_f32(load<uint16_t>(p, j)) : bf16_to_f32(load<uint16_t>(p, j)));
}

template <class C>
__device__ void store_c(uint8_t* p, size_t j, DType dt, C v) {
  if (dt == DType::F64) store<double>(p, j, double(v));
  else if (dt == DType::F32) store<float>(p, j, float(v));
  else store<uint16_t>(p, j, dt == DType::F16 ? f32_to_f16(float(v)) : f32_to_bf16(float(v)));
}

struct DeviceCombine {
  CombineMode mode;
  DType dtype;
  const uint8_t* base;
  const uint8_t* models[6];
  double coeffs[6];
  uint32_t count;
  uint64_t seed, keep_below;
};

// The formula of generic.inc's combine_t, one element per thread.
template <class C>
__global__ void combine_kernel(DeviceCombine args, size_t first, size_t n, uint8_t* out) {
  const size_t j = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const DType dt = args.dtype;
  const C base = args.mode == CombineMode::Linear ? C(0) : load_c<C>(args.base, j, dt);
  C acc = 0;
  bool any = false;
  for (uint32_t i = 0; i < args.count; i++) {
    const C c = C(args.coeffs[i]), t = load_c<C>(args.models[i], j, dt);
    if (args.mode == CombineMode::Linear) {
      acc = i == 0 ? c * t : acc + c * t;
    } else if (args.mode == CombineMode::Task) {
      acc = i == 0 ? c * (t - base) : acc + c * (t - base);
    } else if (dare_keep(dare_stream(args.seed, i), first + j, args.keep_below)) {
      const C term = c * (t - base);
      acc = any ? acc + term : term;
      any = true;
    }
  }
  if (args.mode == CombineMode::Dare && !any) {
    for (unsigned k = 0; k < dtype_size(dt); k++) out[j * dtype_size(dt) + k] = args.base[j * dtype_size(dt) + k];
    return;
  }
  store_c<C>(out, j, dt, args.mode == CombineMode::Linear ? acc : base + acc);
}

__global__ void convert_kernel(const uint8_t* src, size_t n, DType from, DType to, uint8_t* dst) {
  const size_t j = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  // to_f32: F64 rounds to f32 (nearest even); from_f32: F16/BF16 round, F64 widens.
  if (to == DType::F32) store<float>(dst, j, from == DType::F64 ? float(load<double>(src, j)) : load_c<float>(src, j, from));
  else store_c<float>(dst, j, to, load<float>(src, j));
}

__global__ void select_kernel(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n, unsigned w, uint8_t* out) {
  const size_t j = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const uint8_t* from = (mask[j >> 3] >> (j & 7)) & 1 ? b : a;
  for (unsigned k = 0; k < w; k++) out[j * w + k] = from[j * w + k];
}

// ---- host side: the KernelTable functions ----

const KernelTable& cpu() {
  // The best CPU implementation (the first supported one that is not this one).
  for (const Implementation& impl : implementations())
    if (impl.supported && impl.table != &table()) return *impl.table;
  return scalar::table();
}

uint64_t change_mask(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask) {
  const size_t w = dtype_size(dt), bytes = (n + 7) / 8;
  const uint8_t* da = upload<uint8_t>(0, a, n * w);
  const uint8_t* db = upload<uint8_t>(1, b, n * w);
  uint8_t* dm = scratch<uint8_t>(2, bytes);
  unsigned long long* dc = scratch<unsigned long long>(3, 8);
  if (bytes) change_mask_kernel<<<grid(bytes), kThreads, 0, kStream>>>(da, db, n, unsigned(w), dm, dc);
  check(cudaGetLastError(), "change_mask");
  unsigned long long count = 0;
  download(mask, dm, bytes);
  download(&count, dc, 8);
  return count;
}

void classify3(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, DType dt, const ClassifyMasks& masks,
               ClassifyCounts& counts) {
  const size_t w = dtype_size(dt), bytes = (n + 7) / 8;
  const uint8_t* d_o = upload<uint8_t>(0, o, n * w);
  const uint8_t* d_a = upload<uint8_t>(1, a, n * w);
  const uint8_t* d_b = upload<uint8_t>(2, b, n * w);
  uint8_t* dm = scratch<uint8_t>(3, 5 * bytes);
  unsigned long long* dc = scratch<unsigned long long>(4, 5 * 8);
  if (bytes) classify3_kernel<<<grid(bytes), kThreads, 0, kStream>>>(d_o, d_a, d_b, n, dt, dm, bytes, dc);
  check(cudaGetLastError(), "classify3");
  uint8_t* out[5] = {masks.changed_a, masks.changed_b, masks.same, masks.conflict, masks.sign_conflict};
  for (int k = 0; k < 5; k++) download(out[k], dm + k * bytes, bytes);
  unsigned long long c[5];
  download(c, dc, sizeof c);
  counts = {c[0], c[1], c[2], c[3], c[4]};
}

void diff_stats(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DiffStats& s) {
  const size_t w = dtype_size(dt);
  const uint8_t* da = upload<uint8_t>(0, a, n * w);
  const uint8_t* db = upload<uint8_t>(1, b, n * w);
  DeviceStats* ds = scratch<DeviceStats>(2, sizeof(DeviceStats));
  if (n) diff_stats_kernel<<<grid(n) < 1024 ? grid(n) : 1024, kThreads, 0, kStream>>>(da, db, n, dt, ds);
  check(cudaGetLastError(), "diff_stats");
  DeviceStats h;
  download(&h, ds, sizeof h);
  s.sum_a2 = h.sum_a2, s.sum_b2 = h.sum_b2, s.sum_ab = h.sum_ab, s.sum_d2 = h.sum_d2;
  s.max_abs_diff = bits_f64(h.max_bits);
  s.changed = h.changed, s.sign_flips = h.flips, s.nan_a = h.nan_a, s.nan_b = h.nan_b, s.inf_a = h.inf_a, s.inf_b = h.inf_b;
}

void convert(const uint8_t* src, size_t n, DType from, DType to, uint8_t* dst) {
  const uint8_t* ds = upload<uint8_t>(0, src, n * dtype_size(from));
  uint8_t* dd = scratch<uint8_t>(1, n * dtype_size(to));
  if (n) convert_kernel<<<grid(n), kThreads, 0, kStream>>>(ds, n, from, to, dd);
  check(cudaGetLastError(), "convert");
  download(dst, dd, n * dtype_size(to));
}

void to_f32(const uint8_t* src, size_t n, DType dt, float* dst) {
  if (dt == DType::F32) return cpu().to_f32(src, n, dt, dst);
  convert(src, n, dt, DType::F32, reinterpret_cast<uint8_t*>(dst));
}

void from_f32(const float* src, size_t n, DType dt, uint8_t* dst) {
  if (dt == DType::F32) return cpu().from_f32(src, n, dt, dst);
  convert(reinterpret_cast<const uint8_t*>(src), n, DType::F32, dt, dst);
}

void select(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n, DType dt, uint8_t* out) {
  const size_t w = dtype_size(dt);
  const uint8_t* da = upload<uint8_t>(0, a, n * w);
  const uint8_t* db = upload<uint8_t>(1, b, n * w);
  const uint8_t* dm = upload<uint8_t>(2, mask, (n + 7) / 8);
  uint8_t* dout = scratch<uint8_t>(3, n * w);
  if (n) select_kernel<<<grid(n), kThreads, 0, kStream>>>(da, db, dm, n, unsigned(w), dout);
  check(cudaGetLastError(), "select");
  download(out, dout, n * w);
}

constexpr uint32_t kMaxModels = 6;  // device buffers: base, up to 6 models, output

void combine(const CombineArgs& args, size_t first, size_t n, uint8_t* out) {
  if (args.count > kMaxModels) return cpu().combine(args, first, n, out);
  const size_t w = dtype_size(args.dtype), at = first * w;
  DeviceCombine d{args.mode, args.dtype, nullptr, {}, {}, args.count, args.seed, args.keep_below};
  if (args.mode != CombineMode::Linear) d.base = upload<uint8_t>(0, args.base + at, n * w);
  for (uint32_t i = 0; i < args.count; i++) {
    d.coeffs[i] = args.coeffs[i];
    d.models[i] = upload<uint8_t>(1 + int(i), args.models[i] + at, n * w);
  }
  uint8_t* dout = scratch<uint8_t>(7, n * w);
  if (n) {
    // The element index indexes the DARE PRNG; the device buffers start at the block.
    const size_t index = args.stream_first + first;
    if (args.dtype == DType::F64) combine_kernel<double><<<grid(n), kThreads, 0, kStream>>>(d, index, n, dout);
    else combine_kernel<float><<<grid(n), kThreads, 0, kStream>>>(d, index, n, dout);
  }
  check(cudaGetLastError(), "combine");
  download(out + at, dout, n * w);
}

void ties_histogram(const TiesArgs& args, uint32_t model, size_t first, size_t n, unsigned shift, uint64_t prefix,
                    uint64_t* hist) {
  cpu().ties_histogram(args, model, first, n, shift, prefix, hist);
}
void ties_signs(const TiesArgs& args, size_t first, size_t n, uint64_t& positive, uint64_t& negative) {
  cpu().ties_signs(args, first, n, positive, negative);
}
void ties_merge(const TiesArgs& args, size_t first, size_t n, uint8_t* out) { cpu().ties_merge(args, first, n, out); }
void matvec(const uint8_t* m, size_t rows, size_t cols, DType dt, const double* x, double* y, bool transpose) {
  cpu().matvec(m, rows, cols, dt, x, y, transpose);
}

}  // namespace

bool available() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

const KernelTable& table() {
  static const KernelTable t = {"cuda", change_mask, classify3, diff_stats, to_f32, from_f32, select,
                                combine, ties_histogram, ties_signs, ties_merge, matvec};
  return t;
}

}  // namespace cuda
}  // namespace gt
