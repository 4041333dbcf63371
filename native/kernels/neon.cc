// AArch64 Advanced SIMD (NEON) implementation. Compare results are lanes of all ones; they become
// mask bits by AND-ing with per-lane bit weights and adding across the vector. Bitwise kernels work
// on groups of 16 elements and leave the last group, and the integer dtypes, to the scalar kernels.
// NEON is part of every AArch64 CPU, so there is no feature check; the file is empty elsewhere.

#include "common.h"

#if defined(__aarch64__)
#include <arm_neon.h>

namespace gt {
namespace neon {
namespace {

constexpr size_t kGroup = 16;  // elements per two mask bytes

inline uint32_t bits_u8(uint8x16_t m) {
  static const uint8_t w[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t b = vandq_u8(m, vld1q_u8(w));
  return uint32_t(vaddv_u8(vget_low_u8(b))) | (uint32_t(vaddv_u8(vget_high_u8(b))) << 8);
}
inline uint32_t bits_u16(uint16x8_t m) {
  static const uint16_t w[8] = {1, 2, 4, 8, 16, 32, 64, 128};
  return vaddvq_u16(vandq_u16(m, vld1q_u16(w)));
}
inline uint32_t bits_u32(uint32x4_t m) {
  static const uint32_t w[4] = {1, 2, 4, 8};
  return vaddvq_u32(vandq_u32(m, vld1q_u32(w)));
}
inline uint32_t bits_u64(uint64x2_t m) {
  static const uint64_t w[2] = {1, 2};
  return uint32_t(vaddvq_u64(vandq_u64(m, vld1q_u64(w))));
}

// Bits of a == b for 16 elements of width W.
template <unsigned W> uint32_t eq16(const uint8_t* a, const uint8_t* b);
template <> inline uint32_t eq16<1>(const uint8_t* a, const uint8_t* b) { return bits_u8(vceqq_u8(vld1q_u8(a), vld1q_u8(b))); }
template <> inline uint32_t eq16<2>(const uint8_t* a, const uint8_t* b) {
  uint32_t bits = 0;
  for (int k = 0; k < 2; k++)
    bits |= bits_u16(vceqq_u16(vld1q_u16(reinterpret_cast<const uint16_t*>(a + 16 * k)),
                               vld1q_u16(reinterpret_cast<const uint16_t*>(b + 16 * k)))) << (8 * k);
  return bits;
}
template <> inline uint32_t eq16<4>(const uint8_t* a, const uint8_t* b) {
  uint32_t bits = 0;
  for (int k = 0; k < 4; k++)
    bits |= bits_u32(vceqq_u32(vld1q_u32(reinterpret_cast<const uint32_t*>(a + 16 * k)),
                               vld1q_u32(reinterpret_cast<const uint32_t*>(b + 16 * k)))) << (4 * k);
  return bits;
}
template <> inline uint32_t eq16<8>(const uint8_t* a, const uint8_t* b) {
  uint32_t bits = 0;
  for (int k = 0; k < 8; k++)
    bits |= bits_u64(vceqq_u64(vld1q_u64(reinterpret_cast<const uint64_t*>(a + 16 * k)),
                               vld1q_u64(reinterpret_cast<const uint64_t*>(b + 16 * k)))) << (2 * k);
  return bits;
}

inline void store16(uint8_t* mask, size_t j, uint32_t bits) {
  const uint16_t v = uint16_t(bits);
  std::memcpy(mask + j / 8, &v, 2);
}

inline DType unsigned_of_width(unsigned w) {
  return w == 8 ? DType::U64 : w == 4 ? DType::U32 : w == 2 ? DType::U16 : DType::U8;
}

template <unsigned W>
uint64_t change_mask_w(const uint8_t* a, const uint8_t* b, size_t n, uint8_t* mask) {
  uint64_t count = 0;
  size_t j = 0;
  for (; j + kGroup <= n; j += kGroup) {
    const uint32_t bits = ~eq16<W>(a + j * W, b + j * W) & 0xffff;
    store16(mask, j, bits);
    count += popcount64(bits);
  }
  return count + scalar::table().change_mask(a + j * W, b + j * W, n - j, unsigned_of_width(W), mask + j / 8);
}

uint64_t change_mask(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask) {
  switch (dtype_size(dt)) {
    case 8: return change_mask_w<8>(a, b, n, mask);
    case 4: return change_mask_w<4>(a, b, n, mask);
    case 2: return change_mask_w<2>(a, b, n, mask);
    default: return change_mask_w<1>(a, b, n, mask);
  }
}

// Value order as bits for 16 float elements: gt = x > y, lt = x < y (false when either is NaN).
template <DType DT> void order16(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt);
template <> inline void order16<DType::F32>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  gt = lt = 0;
  for (int k = 0; k < 4; k++) {
    const float32x4_t vx = vld1q_f32(reinterpret_cast<const float*>(x + 16 * k));
    const float32x4_t vy = vld1q_f32(reinterpret_cast<const float*>(y + 16 * k));
    gt |= bits_u32(vcgtq_f32(vx, vy)) << (4 * k);
    lt |= bits_u32(vcltq_f32(vx, vy)) << (4 * k);
  }
}
template <> inline void order16<DType::F64>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  gt = lt = 0;
  for (int k = 0; k < 8; k++) {
    const float64x2_t vx = vld1q_f64(reinterpret_cast<const double*>(x + 16 * k));
    const float64x2_t vy = vld1q_f64(reinterpret_cast<const double*>(y + 16 * k));
    gt |= bits_u64(vcgtq_f64(vx, vy)) << (2 * k);
    lt |= bits_u64(vcltq_f64(vx, vy)) << (2 * k);
  }
}
// 16-bit floats: sign-magnitude bits -> a signed integer in value order (+0 and -0 both 0), NaNs dropped.
template <uint16_t kInf>
inline void order16_half(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  gt = lt = 0;
  const uint16x8_t magnitude = vdupq_n_u16(0x7fff), inf = vdupq_n_u16(kInf);
  for (int k = 0; k < 2; k++) {
    const uint16x8_t vx = vld1q_u16(reinterpret_cast<const uint16_t*>(x + 16 * k));
    const uint16x8_t vy = vld1q_u16(reinterpret_cast<const uint16_t*>(y + 16 * k));
    const uint16x8_t mx = vandq_u16(vx, magnitude), my = vandq_u16(vy, magnitude);
    const int16x8_t sx = vshrq_n_s16(vreinterpretq_s16_u16(vx), 15), sy = vshrq_n_s16(vreinterpretq_s16_u16(vy), 15);
    const int16x8_t kx = vsubq_s16(veorq_s16(vreinterpretq_s16_u16(mx), sx), sx);
    const int16x8_t ky = vsubq_s16(veorq_s16(vreinterpretq_s16_u16(my), sy), sy);
    const uint16x8_t ordered = vmvnq_u16(vorrq_u16(vcgtq_u16(mx, inf), vcgtq_u16(my, inf)));
    gt |= bits_u16(vandq_u16(vcgtq_s16(kx, ky), ordered)) << (8 * k);
    lt |= bits_u16(vandq_u16(vcltq_s16(kx, ky), ordered)) << (8 * k);
  }
}
template <> inline void order16<DType::F16>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) { order16_half<0x7c00>(x, y, gt, lt); }
template <> inline void order16<DType::BF16>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) { order16_half<0x7f80>(x, y, gt, lt); }

template <DType DT>
void classify3_t(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, const ClassifyMasks& masks,
                 ClassifyCounts& counts) {
  constexpr unsigned W = dtype_size(DT);
  ClassifyCounts c;
  size_t j = 0;
  for (; j + kGroup <= n; j += kGroup) {
    const size_t at = j * W;
    const uint32_t ca = ~eq16<W>(a + at, o + at) & 0xffff, cb = ~eq16<W>(b + at, o + at) & 0xffff;
    const uint32_t cab = ~eq16<W>(a + at, b + at) & 0xffff;
    const uint32_t same = ca & ~cab, conflict = ca & cb & cab;
    uint32_t gt_a, lt_a, gt_b, lt_b;
    order16<DT>(a + at, o + at, gt_a, lt_a);
    order16<DT>(b + at, o + at, gt_b, lt_b);
    const uint32_t sign = conflict & ((gt_a & lt_b) | (lt_a & gt_b));
    store16(masks.changed_a, j, ca);
    store16(masks.changed_b, j, cb);
    store16(masks.same, j, same);
    store16(masks.conflict, j, conflict);
    store16(masks.sign_conflict, j, sign);
    c.changed_a += popcount64(ca);
    c.changed_b += popcount64(cb);
    c.same += popcount64(same);
    c.conflict += popcount64(conflict);
    c.sign_conflict += popcount64(sign);
  }
  ClassifyCounts tail;
  const size_t m = j / 8;
  const ClassifyMasks rest = {masks.changed_a + m, masks.changed_b + m, masks.same + m, masks.conflict + m,
                              masks.sign_conflict + m};
  scalar::table().classify3(o + j * W, a + j * W, b + j * W, n - j, DT, rest, tail);
  c.changed_a += tail.changed_a;
  c.changed_b += tail.changed_b;
  c.same += tail.same;
  c.conflict += tail.conflict;
  c.sign_conflict += tail.sign_conflict;
  counts = c;
}

void classify3(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, DType dt, const ClassifyMasks& masks,
               ClassifyCounts& counts) {
  switch (dt) {
    case DType::F32: return classify3_t<DType::F32>(o, a, b, n, masks, counts);
    case DType::F64: return classify3_t<DType::F64>(o, a, b, n, masks, counts);
    case DType::F16: return classify3_t<DType::F16>(o, a, b, n, masks, counts);
    case DType::BF16: return classify3_t<DType::BF16>(o, a, b, n, masks, counts);
    default: return scalar::table().classify3(o, a, b, n, dt, masks, counts);
  }
}

inline uint64_t lanes_set(uint32x4_t m) { return vaddvq_u32(vshrq_n_u32(m, 31)); }
inline uint64_t lanes_set(uint64x2_t m) { return vaddvq_u64(vshrq_n_u64(m, 63)); }

struct StatsAcc {
  float64x2_t a2 = vdupq_n_f64(0), b2 = vdupq_n_f64(0), ab = vdupq_n_f64(0), d2 = vdupq_n_f64(0), max_d = vdupq_n_f64(0);
  uint64_t changed = 0, flips = 0, nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
  void add(float64x2_t x, float64x2_t y) {
    const float64x2_t d = vsubq_f64(x, y);
    a2 = vfmaq_f64(a2, x, x);
    b2 = vfmaq_f64(b2, y, y);
    ab = vfmaq_f64(ab, x, y);
    d2 = vfmaq_f64(d2, d, d);
    max_d = vmaxq_f64(max_d, vabsq_f64(d));
  }
  void finish(DiffStats& s) const {
    s.sum_a2 = vaddvq_f64(a2), s.sum_b2 = vaddvq_f64(b2), s.sum_ab = vaddvq_f64(ab), s.sum_d2 = vaddvq_f64(d2);
    s.max_abs_diff = vmaxvq_f64(max_d);
    s.changed = changed, s.sign_flips = flips, s.nan_a = nan_a, s.nan_b = nan_b, s.inf_a = inf_a, s.inf_b = inf_b;
  }
};

// 4 f32 lanes, converted exactly from F32, F16 or BF16.
inline void stats_f32(StatsAcc& acc, float32x4_t x, float32x4_t y) {
  const uint32x4_t mag = vdupq_n_u32(0x7fffffff), inf = vdupq_n_u32(0x7f800000);
  const uint32x4_t mx = vandq_u32(vreinterpretq_u32_f32(x), mag), my = vandq_u32(vreinterpretq_u32_f32(y), mag);
  acc.nan_a += lanes_set(vcgtq_u32(mx, inf));
  acc.nan_b += lanes_set(vcgtq_u32(my, inf));
  acc.inf_a += lanes_set(vceqq_u32(mx, inf));
  acc.inf_b += lanes_set(vceqq_u32(my, inf));
  const float32x4_t zero = vdupq_n_f32(0);
  acc.flips += lanes_set(vorrq_u32(vandq_u32(vcgtq_f32(x, zero), vcltq_f32(y, zero)),
                                   vandq_u32(vcltq_f32(x, zero), vcgtq_f32(y, zero))));
  const uint32x4_t finite = vandq_u32(vcltq_u32(mx, inf), vcltq_u32(my, inf));
  const float32x4_t x0 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(x), finite));
  const float32x4_t y0 = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), finite));
  acc.add(vcvt_f64_f32(vget_low_f32(x0)), vcvt_f64_f32(vget_low_f32(y0)));
  acc.add(vcvt_high_f64_f32(x0), vcvt_high_f64_f32(y0));
}

inline float32x4_t widen4(uint16x4_t raw, DType dt) {
  return dt == DType::F16 ? vcvt_f32_f16(vreinterpret_f16_u16(raw)) : vreinterpretq_f32_u32(vshll_n_u16(raw, 16));
}

template <DType DT>
size_t diff_stats_f32(const uint8_t* a, const uint8_t* b, size_t n, StatsAcc& acc) {
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    if (DT == DType::F32) {
      const uint32x4_t ra = vld1q_u32(reinterpret_cast<const uint32_t*>(a + j * 4));
      const uint32x4_t rb = vld1q_u32(reinterpret_cast<const uint32_t*>(b + j * 4));
      acc.changed += 4 - lanes_set(vceqq_u32(ra, rb));
      stats_f32(acc, vreinterpretq_f32_u32(ra), vreinterpretq_f32_u32(rb));
    } else {
      const uint16x4_t ra = vld1_u16(reinterpret_cast<const uint16_t*>(a + j * 2));
      const uint16x4_t rb = vld1_u16(reinterpret_cast<const uint16_t*>(b + j * 2));
      acc.changed += 4 - vaddv_u16(vshr_n_u16(vceq_u16(ra, rb), 15));
      stats_f32(acc, widen4(ra, DT), widen4(rb, DT));
    }
  }
  return j;
}

size_t diff_stats_f64(const uint8_t* a, const uint8_t* b, size_t n, StatsAcc& acc) {
  const uint64x2_t mag = vdupq_n_u64(0x7fffffffffffffffull), inf = vdupq_n_u64(0x7ff0000000000000ull);
  const float64x2_t zero = vdupq_n_f64(0);
  size_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const uint64x2_t ra = vld1q_u64(reinterpret_cast<const uint64_t*>(a + j * 8));
    const uint64x2_t rb = vld1q_u64(reinterpret_cast<const uint64_t*>(b + j * 8));
    acc.changed += 2 - lanes_set(vceqq_u64(ra, rb));
    const uint64x2_t mx = vandq_u64(ra, mag), my = vandq_u64(rb, mag);
    acc.nan_a += lanes_set(vcgtq_u64(mx, inf));
    acc.nan_b += lanes_set(vcgtq_u64(my, inf));
    acc.inf_a += lanes_set(vceqq_u64(mx, inf));
    acc.inf_b += lanes_set(vceqq_u64(my, inf));
    const float64x2_t x = vreinterpretq_f64_u64(ra), y = vreinterpretq_f64_u64(rb);
    acc.flips += lanes_set(vorrq_u64(vandq_u64(vcgtq_f64(x, zero), vcltq_f64(y, zero)),
                                     vandq_u64(vcltq_f64(x, zero), vcgtq_f64(y, zero))));
    const uint64x2_t finite = vandq_u64(vcltq_u64(mx, inf), vcltq_u64(my, inf));
    acc.add(vreinterpretq_f64_u64(vandq_u64(ra, finite)), vreinterpretq_f64_u64(vandq_u64(rb, finite)));
  }
  return j;
}

void diff_stats(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DiffStats& s) {
  StatsAcc acc;
  size_t j;
  switch (dt) {
    case DType::F32: j = diff_stats_f32<DType::F32>(a, b, n, acc); break;
    case DType::F16: j = diff_stats_f32<DType::F16>(a, b, n, acc); break;
    case DType::BF16: j = diff_stats_f32<DType::BF16>(a, b, n, acc); break;
    case DType::F64: j = diff_stats_f64(a, b, n, acc); break;
    default: return scalar::table().diff_stats(a, b, n, dt, s);
  }
  acc.finish(s);
  DiffStats tail;
  const size_t w = dtype_size(dt);
  scalar::table().diff_stats(a + j * w, b + j * w, n - j, dt, tail);
  add_stats(s, tail);
}

void to_f32(const uint8_t* src, size_t n, DType dt, float* dst) {
  size_t j = 0;
  if (dt == DType::F16 || dt == DType::BF16) {
    for (; j + 4 <= n; j += 4) vst1q_f32(dst + j, widen4(vld1_u16(reinterpret_cast<const uint16_t*>(src + j * 2)), dt));
  } else if (dt == DType::F64) {
    for (; j + 2 <= n; j += 2) vst1_f32(dst + j, vcvt_f32_f64(vld1q_f64(reinterpret_cast<const double*>(src + j * 8))));
  }
  scalar::table().to_f32(src + j * dtype_size(dt), n - j, dt, dst + j);
}

void from_f32(const float* src, size_t n, DType dt, uint8_t* dst) {
  size_t j = 0;
  if (dt == DType::F16) {
    for (; j + 4 <= n; j += 4)
      vst1_u16(reinterpret_cast<uint16_t*>(dst + j * 2), vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + j))));
  } else if (dt == DType::BF16) {
    const uint32x4_t mag = vdupq_n_u32(0x7fffffff), inf = vdupq_n_u32(0x7f800000);
    const uint32x4_t bias = vdupq_n_u32(0x7fff), one = vdupq_n_u32(1), quiet = vdupq_n_u32(0x40);
    for (; j + 4 <= n; j += 4) {
      const uint32x4_t x = vreinterpretq_u32_f32(vld1q_f32(src + j));
      const uint32x4_t high = vshrq_n_u32(x, 16);
      const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(x, vaddq_u32(bias, vandq_u32(high, one))), 16);
      const uint32x4_t r = vbslq_u32(vcgtq_u32(vandq_u32(x, mag), inf), vorrq_u32(high, quiet), rounded);
      vst1_u16(reinterpret_cast<uint16_t*>(dst + j * 2), vmovn_u32(r));
    }
  } else if (dt == DType::F64) {
    for (; j + 2 <= n; j += 2)
      vst1q_f64(reinterpret_cast<double*>(dst + j * 8), vcvt_f64_f32(vld1_f32(src + j)));
  }
  scalar::table().from_f32(src + j, n - j, dt, dst + j * dtype_size(dt));
}

}  // namespace

#include "generic.inc"

const KernelTable& table() {
  static const KernelTable t = {"neon", change_mask, classify3, diff_stats, to_f32, from_f32, select,
                                combine, ties_histogram, ties_signs, ties_merge, matvec,
                                matmul_packed, activation, attention, norm};
  return t;
}

}  // namespace neon
}  // namespace gt

#endif
