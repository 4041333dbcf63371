// The scalar implementation: always compiled, no SIMD flags, written for clarity. It is the oracle the
// SIMD implementations are tested against, and they call it for tails and for the integer dtypes.

#include "common.h"

namespace gt {
namespace scalar {
namespace {

template <class T>
uint64_t change_mask_t(const uint8_t* a, const uint8_t* b, size_t n, uint8_t* mask) {
  uint64_t count = 0;
  for (size_t j0 = 0; j0 < n; j0 += 8) {
    unsigned bits = 0;
    for (size_t j = j0; j < n && j < j0 + 8; j++) bits |= unsigned(load<T>(a, j) != load<T>(b, j)) << (j - j0);
    mask[j0 >> 3] = uint8_t(bits);
    count += popcount64(bits);
  }
  return count;
}

uint64_t change_mask(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask) {
  switch (dtype_size(dt)) {
    case 8: return change_mask_t<uint64_t>(a, b, n, mask);
    case 4: return change_mask_t<uint32_t>(a, b, n, mask);
    case 2: return change_mask_t<uint16_t>(a, b, n, mask);
    default: return change_mask_t<uint8_t>(a, b, n, mask);
  }
}

// +1 when x > y, -1 when x < y, 0 when equal or unordered (NaN); 64-bit integers compare exactly.
int order_of(const uint8_t* x, const uint8_t* y, size_t j, DType dt) {
  if (dt == DType::I64) { const int64_t u = load<int64_t>(x, j), v = load<int64_t>(y, j); return (u > v) - (u < v); }
  if (dt == DType::U64) { const uint64_t u = load<uint64_t>(x, j), v = load<uint64_t>(y, j); return (u > v) - (u < v); }
  const double u = load_value(x, j, dt), v = load_value(y, j, dt);  // exact for every other dtype
  return (u > v) - (u < v);
}

void classify3(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, DType dt, const ClassifyMasks& masks,
               ClassifyCounts& counts) {
  const unsigned width = dtype_size(dt);
  ClassifyCounts c;
  for (size_t j0 = 0; j0 < n; j0 += 8) {
    unsigned ca = 0, cb = 0, same = 0, conflict = 0, sign = 0;
    for (size_t j = j0; j < n && j < j0 + 8; j++) {
      const uint64_t bo = load_bits(o, j, width), ba = load_bits(a, j, width), bb = load_bits(b, j, width);
      const unsigned bit = 1u << (j - j0);
      if (ba != bo) ca |= bit;
      if (bb != bo) cb |= bit;
      if (ba != bo && ba == bb) same |= bit;
      if (ba != bo && bb != bo && ba != bb) {
        conflict |= bit;
        // Value order: +0 == -0, and any NaN makes the comparisons false.
        if (order_of(a, o, j, dt) * order_of(b, o, j, dt) < 0) sign |= bit;
      }
    }
    masks.changed_a[j0 >> 3] = uint8_t(ca);
    masks.changed_b[j0 >> 3] = uint8_t(cb);
    masks.same[j0 >> 3] = uint8_t(same);
    masks.conflict[j0 >> 3] = uint8_t(conflict);
    masks.sign_conflict[j0 >> 3] = uint8_t(sign);
    c.changed_a += popcount64(ca);
    c.changed_b += popcount64(cb);
    c.same += popcount64(same);
    c.conflict += popcount64(conflict);
    c.sign_conflict += popcount64(sign);
  }
  counts = c;
}

void diff_stats(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DiffStats& stats) {
  const unsigned width = dtype_size(dt);
  DiffStats s;
  for (size_t j = 0; j < n; j++) {
    const double x = load_value(a, j, dt), y = load_value(b, j, dt);
    s.changed += load_bits(a, j, width) != load_bits(b, j, width);
    s.nan_a += std::isnan(x);
    s.nan_b += std::isnan(y);
    s.inf_a += std::isinf(x);
    s.inf_b += std::isinf(y);
    s.sign_flips += (x > 0 && y < 0) || (x < 0 && y > 0);
    if (std::isfinite(x) && std::isfinite(y)) {
      const double d = x - y;
      s.sum_a2 += x * x;
      s.sum_b2 += y * y;
      s.sum_ab += x * y;
      s.sum_d2 += d * d;
      if (std::fabs(d) > s.max_abs_diff) s.max_abs_diff = std::fabs(d);
    }
  }
  stats = s;
}

}  // namespace

void to_f32(const uint8_t* src, size_t n, DType dt, float* dst) {
  switch (dt) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::F64: for (size_t j = 0; j < n; j++) dst[j] = float(load<double>(src, j)); break;
    case DType::F16: for (size_t j = 0; j < n; j++) dst[j] = f16_to_f32(load<uint16_t>(src, j)); break;
    case DType::BF16: for (size_t j = 0; j < n; j++) dst[j] = bf16_to_f32(load<uint16_t>(src, j)); break;
    default: for (size_t j = 0; j < n; j++) dst[j] = float(load_value(src, j, dt)); break;
  }
}

void from_f32(const float* src, size_t n, DType dt, uint8_t* dst) {
  switch (dt) {
    case DType::F32: std::memcpy(dst, src, n * 4); break;
    case DType::F64: for (size_t j = 0; j < n; j++) store<double>(dst, j, src[j]); break;
    case DType::F16: for (size_t j = 0; j < n; j++) store<uint16_t>(dst, j, f32_to_f16(src[j])); break;
    case DType::BF16: for (size_t j = 0; j < n; j++) store<uint16_t>(dst, j, f32_to_bf16(src[j])); break;
    default: break;  // integer dtypes are rejected before reaching a kernel
  }
}

#include "generic.inc"

const KernelTable& table() {
  static const KernelTable t = {"scalar", change_mask, classify3, diff_stats, to_f32, from_f32, select,
                                combine, ties_histogram, ties_signs, ties_merge, matvec, matmul_packed, activation, attention, norm};
  return t;
}

}  // namespace scalar
}  // namespace gt
