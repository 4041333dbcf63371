// The kernel interface: one table of function pointers per instruction set (scalar, avx2, avx512,
// neon, cuda). Every implementation computes exactly what the scalar one does (docs/kernels.md gives
// the formulas); only the instruction mix differs. Kernels see one block of a tensor at a time:
// src/ops.cc splits tensors into blocks, runs them on threads and combines the partial results.
//
// Conventions shared by every kernel:
// - tensors are raw little-endian bytes of `n` elements, at any alignment (loads are unaligned);
// - masks are packed bitmaps, element j -> byte j/8, bit j%8 (LSB first, numpy bitorder='little');
//   bits past n in the last byte are written as 0; blocks always start at a multiple of 8 elements;
// - "changed" means the bit patterns differ: -0 vs +0 is a change, two identical NaNs are not.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gt {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

// `static`: these are compiled into every ISA file, each with its own -m flags; internal linkage keeps
// the linker from picking an AVX-512 copy for code that runs everywhere.
static constexpr unsigned dtype_size(DType dt) {
  switch (dt) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    default: return 1;
  }
}

static constexpr bool dtype_is_float(DType dt) {
  return dt == DType::F64 || dt == DType::F32 || dt == DType::F16 || dt == DType::BF16;
}

struct ClassifyMasks {
  uint8_t* changed_a;      // a != o
  uint8_t* changed_b;      // b != o
  uint8_t* same;           // a != o and a == b: both sides made the same change
  uint8_t* conflict;       // a != o, b != o, a != b
  uint8_t* sign_conflict;  // conflict and (a > o > b or a < o < b) in value order
};

struct ClassifyCounts {
  uint64_t changed_a = 0, changed_b = 0, same = 0, conflict = 0, sign_conflict = 0;
};

// Sums run over the elements where both a and b are finite, accumulated in f64.
struct DiffStats {
  double sum_a2 = 0, sum_b2 = 0, sum_ab = 0, sum_d2 = 0, max_abs_diff = 0;
  uint64_t changed = 0, sign_flips = 0, nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
};

static inline void add_stats(DiffStats& into, const DiffStats& s) {
  into.sum_a2 += s.sum_a2;
  into.sum_b2 += s.sum_b2;
  into.sum_ab += s.sum_ab;
  into.sum_d2 += s.sum_d2;
  if (s.max_abs_diff > into.max_abs_diff) into.max_abs_diff = s.max_abs_diff;
  into.changed += s.changed;
  into.sign_flips += s.sign_flips;
  into.nan_a += s.nan_a;
  into.nan_b += s.nan_b;
  into.inf_a += s.inf_a;
  into.inf_b += s.inf_b;
}

// Elementwise merges. The compute type is f64 for F64 tensors and f32 otherwise; terms are added in
// model order without fused multiply-add, so every implementation rounds identically.
enum class CombineMode : uint8_t {
  Linear,  // out = sum_i c_i * t_i                              (average, SLERP)
  Task,    // out = o + sum_i c_i * (t_i - o)                    (task arithmetic)
  Dare,    // out = o + sum_{i kept} c_i * (t_i - o), or o when no term is kept (DARE; c_i holds 1/density)
};

struct CombineArgs {
  CombineMode mode;
  DType dtype;
  const uint8_t* base;            // o; unused for Linear
  const uint8_t* const* models;   // t_0 .. t_{count-1}
  const double* coeffs;           // c_i, rounded to the compute type before use
  uint32_t count;
  uint64_t seed;                  // DARE: PRNG seed
  uint64_t keep_below;            // DARE: keep element when (r >> 11) < keep_below = floor(density * 2^53)
  uint64_t stream_first;          // DARE: the tensor's element index of element 0 here (a merge runs in blocks)
};

// TIES: thresholds[i] is the magnitude key (|d| bits) of the k-th largest |t_i - o|; UINT64_MAX keeps none.
struct TiesArgs {
  DType dtype;
  const uint8_t* base;
  const uint8_t* const* models;
  uint32_t count;
  const uint64_t* thresholds;
  double lambda;
  int majority;  // +1 or -1: the elected sign where the trimmed deltas sum to exactly zero
};

// y = x W^T + bias in f32 (an nn.Linear over a batch of rows): x is rows x in, W is out x in (PyTorch's
// layout), y is rows x out, all row-major and contiguous; bias has `out` elements or is null. y must
// not overlap x, W or bias. Sums use f32 fused multiply-add in an order each implementation chooses.
// W's elements are F32, F16 or BF16 (w_type): the engine keeps a checkpoint's half-precision matrices
// as they are stored, and a kernel widens each piece of W to f32 (exactly) as it packs it, so the sums,
// and y, are bit for bit those of the same kernel on the whole matrix widened first.
struct MatmulArgs {
  const float* x;
  const void* w;
  DType w_type;
  const float* bias;
  float* y;
  size_t rows, in, out;
};

// Elementwise activations of the inference engine, in place on f32 (docs/kernels.md gives the formulas):
// Gelu = x Phi(x) with erf by Abramowitz & Stegun 7.1.26, GeluTanh = x sigmoid(2 sqrt(2/pi)(x + 0.044715 x^3))
// (= 0.5 x (1 + tanh(...))), Silu = x sigmoid(x). exp is a Cephes-style polynomial: within 2 ulp.
enum class Activation : uint8_t { Gelu, GeluTanh, Silu };

// Scaled dot-product attention over packed sequences (src/model's layout): q and out are
// [rows x heads*head_dim], k and v [rows x kv_heads*head_dim]; query head h reads key/value head
// h / (heads / kv_heads). Scores are scale * q.k; causal: token i sees j <= i, and with window > 0 only
// j > i - window. Softmax and sums in f32.
struct AttentionArgs {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  size_t heads, kv_heads, head_dim;
  float scale;
  bool causal;
  size_t window;  // 0: none
};

// Per row of `dim` floats: layernorm out = (x - mean) / sqrt(var + eps) * weight + bias (biased variance,
// nn.LayerNorm); with rms, out = x / sqrt(mean(x^2) + eps) * weight (Llama's RMSNorm). Sums in f64.
// bias may be null; out may be x.
struct NormArgs {
  const float* x;
  const float* weight;
  const float* bias;
  float* out;
  size_t dim;
  float eps;
  bool rms;
};

// src/ops.cc hands a matmul kernel a block of rows and columns plus kMatmulPackFloats floats of
// 64-byte-aligned scratch per thread: room for one panel of kMatmulTileCols columns of W over
// kMatmulDepth inputs, where a kernel may repack W.
constexpr size_t kMatmulTileCols = 64;
constexpr size_t kMatmulDepth = 128;
constexpr size_t kMatmulPackFloats = kMatmulTileCols * kMatmulDepth;

// Every pointer below points at the block; `first` (merges) is the block's element index in the whole
// tensor, needed where the result depends on the position (the DARE PRNG) and by pointer arithmetic.
struct KernelTable {
  const char* name;
  uint64_t (*change_mask)(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask);
  void (*classify3)(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, DType dt,
                    const ClassifyMasks& masks, ClassifyCounts& counts);
  void (*diff_stats)(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DiffStats& stats);
  // Float dtypes only; F16/BF16 <-> F32 round to nearest even and keep NaNs NaN.
  void (*to_f32)(const uint8_t* src, size_t n, DType dt, float* dst);
  void (*from_f32)(const float* src, size_t n, DType dt, uint8_t* dst);
  // out = mask bit set ? b : a, bit for bit.
  void (*select)(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n, DType dt, uint8_t* out);
  void (*combine)(const CombineArgs& args, size_t first, size_t n, uint8_t* out);
  // hist[(key >> shift) & 0xffff] += 1 for each element of model `model` whose key >> (shift + 16) == prefix.
  void (*ties_histogram)(const TiesArgs& args, uint32_t model, size_t first, size_t n, unsigned shift,
                         uint64_t prefix, uint64_t* hist);
  void (*ties_signs)(const TiesArgs& args, size_t first, size_t n, uint64_t& positive, uint64_t& negative);
  void (*ties_merge)(const TiesArgs& args, size_t first, size_t n, uint8_t* out);
  // transpose == false: y[r] = sum_c M[r,c] x[c] for the block's rows;
  // transpose == true:  y[c] += sum_r M[r,c] x[r] over the block's rows (x indexed by block row).
  void (*matvec)(const uint8_t* m, size_t rows, size_t cols, DType dt, const double* x, double* y, bool transpose);
  // Rows [r0, r0 + nr) and columns [c0, c0 + nc) of MatmulArgs' y. Null in
  // tables without one (CUDA): src/ops.cc then runs the best CPU implementation's.
  void (*matmul)(const MatmulArgs& a, size_t r0, size_t nr, size_t c0, size_t nc, float* pack);
  void (*activation)(Activation fn, float* x, size_t n);
  // One head of one sequence (rows [start, start + len)); `scores` holds len floats.
  void (*attention)(const AttentionArgs& a, size_t start, size_t len, size_t head, float* scores);
  // Rows [r0, r0 + n).
  void (*norm)(const NormArgs& a, size_t r0, size_t n);
};

namespace scalar { const KernelTable& table(); }
namespace avx2 { const KernelTable& table(); }
namespace avx512 { const KernelTable& table(); }
namespace neon { const KernelTable& table(); }
// native/cuda, in the CUDA addon only: available() is false without a usable GPU.
namespace cuda { const KernelTable& table(); bool available(); }

}  // namespace gt
