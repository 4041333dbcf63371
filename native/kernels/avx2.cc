// AVX2 (+ FMA, F16C) implementation. AVX2 compares give vectors of all-ones lanes, turned into mask
// bits with movemask; the bitwise kernels work on groups of 32 elements (four bytes of mask) and
// leave the last group, and the integer dtypes, to the scalar kernels.

#include "common.h"

#include <algorithm>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace gt {
namespace avx2 {
namespace {

constexpr size_t kGroup = 32;  // elements per mask word

inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// Two vectors of 16-bit lane masks -> 32 bits, in element order (packs interleaves 128-bit lanes).
inline uint32_t bits16(__m256i c0, __m256i c1) {
  return uint32_t(_mm256_movemask_epi8(_mm256_permute4x64_epi64(_mm256_packs_epi16(c0, c1), 0xD8)));
}

// Bits of a == b for 32 elements of width W.
template <unsigned W> uint32_t eq32(const uint8_t* a, const uint8_t* b);
template <> inline uint32_t eq32<1>(const uint8_t* a, const uint8_t* b) {
  return uint32_t(_mm256_movemask_epi8(_mm256_cmpeq_epi8(load256(a), load256(b))));
}
template <> inline uint32_t eq32<2>(const uint8_t* a, const uint8_t* b) {
  return bits16(_mm256_cmpeq_epi16(load256(a), load256(b)), _mm256_cmpeq_epi16(load256(a + 32), load256(b + 32)));
}
template <> inline uint32_t eq32<4>(const uint8_t* a, const uint8_t* b) {
  uint32_t bits = 0;
  for (int k = 0; k < 4; k++)
    bits |= uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(load256(a + 32 * k), load256(b + 32 * k))))) << (8 * k);
  return bits;
}
template <> inline uint32_t eq32<8>(const uint8_t* a, const uint8_t* b) {
  uint32_t bits = 0;
  for (int k = 0; k < 8; k++)
    bits |= uint32_t(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(load256(a + 32 * k), load256(b + 32 * k))))) << (4 * k);
  return bits;
}

inline void store32(uint8_t* mask, size_t j, uint32_t bits) { std::memcpy(mask + j / 8, &bits, 4); }

template <unsigned W>
uint64_t change_mask_w(const uint8_t* a, const uint8_t* b, size_t n, uint8_t* mask) {
  uint64_t count = 0;
  size_t j = 0;
  for (; j + kGroup <= n; j += kGroup) {
    const uint32_t bits = ~eq32<W>(a + j * W, b + j * W);
    store32(mask, j, bits);
    count += popcount64(bits);
  }
  const DType dt = W == 8 ? DType::U64 : W == 4 ? DType::U32 : W == 2 ? DType::U16 : DType::U8;
  return count + scalar::table().change_mask(a + j * W, b + j * W, n - j, dt, mask + j / 8);
}

uint64_t change_mask(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask) {
  switch (dtype_size(dt)) {
    case 8: return change_mask_w<8>(a, b, n, mask);
    case 4: return change_mask_w<4>(a, b, n, mask);
    case 2: return change_mask_w<2>(a, b, n, mask);
    default: return change_mask_w<1>(a, b, n, mask);
  }
}

// Value order as bits for 32 float elements: gt = x > y, lt = x < y (false when either is NaN).
template <DType DT> void order32(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt);
template <> inline void order32<DType::F32>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  gt = lt = 0;
  for (int k = 0; k < 4; k++) {
    const __m256 vx = _mm256_castsi256_ps(load256(x + 32 * k)), vy = _mm256_castsi256_ps(load256(y + 32 * k));
    gt |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(vx, vy, _CMP_GT_OQ))) << (8 * k);
    lt |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(vx, vy, _CMP_LT_OQ))) << (8 * k);
  }
}
template <> inline void order32<DType::F64>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  gt = lt = 0;
  for (int k = 0; k < 8; k++) {
    const __m256d vx = _mm256_castsi256_pd(load256(x + 32 * k)), vy = _mm256_castsi256_pd(load256(y + 32 * k));
    gt |= uint32_t(_mm256_movemask_pd(_mm256_cmp_pd(vx, vy, _CMP_GT_OQ))) << (4 * k);
    lt |= uint32_t(_mm256_movemask_pd(_mm256_cmp_pd(vx, vy, _CMP_LT_OQ))) << (4 * k);
  }
}
// 16-bit floats: sign-magnitude bits -> a signed integer in value order (+0 and -0 both 0), NaNs dropped.
template <uint16_t kInf>
inline void order16(__m256i x, __m256i y, __m256i& gt, __m256i& lt) {
  const __m256i magnitude = _mm256_set1_epi16(0x7fff), inf = _mm256_set1_epi16(short(kInf));
  const __m256i mx = _mm256_and_si256(x, magnitude), my = _mm256_and_si256(y, magnitude);
  const __m256i sx = _mm256_srai_epi16(x, 15), sy = _mm256_srai_epi16(y, 15);
  const __m256i kx = _mm256_sub_epi16(_mm256_xor_si256(mx, sx), sx), ky = _mm256_sub_epi16(_mm256_xor_si256(my, sy), sy);
  const __m256i nan = _mm256_or_si256(_mm256_cmpgt_epi16(mx, inf), _mm256_cmpgt_epi16(my, inf));
  gt = _mm256_andnot_si256(nan, _mm256_cmpgt_epi16(kx, ky));
  lt = _mm256_andnot_si256(nan, _mm256_cmpgt_epi16(ky, kx));
}
template <uint16_t kInf>
inline void order32_16(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) {
  __m256i g0, l0, g1, l1;
  order16<kInf>(load256(x), load256(y), g0, l0);
  order16<kInf>(load256(x + 32), load256(y + 32), g1, l1);
  gt = bits16(g0, g1);
  lt = bits16(l0, l1);
}
template <> inline void order32<DType::F16>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) { order32_16<0x7c00>(x, y, gt, lt); }
template <> inline void order32<DType::BF16>(const uint8_t* x, const uint8_t* y, uint32_t& gt, uint32_t& lt) { order32_16<0x7f80>(x, y, gt, lt); }

template <DType DT>
void classify3_t(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, const ClassifyMasks& masks,
                 ClassifyCounts& counts) {
  constexpr unsigned W = dtype_size(DT);
  ClassifyCounts c;
  size_t j = 0;
  for (; j + kGroup <= n; j += kGroup) {
    const size_t at = j * W;
    const uint32_t ca = ~eq32<W>(a + at, o + at), cb = ~eq32<W>(b + at, o + at), cab = ~eq32<W>(a + at, b + at);
    const uint32_t same = ca & ~cab, conflict = ca & cb & cab;
    uint32_t gt_a, lt_a, gt_b, lt_b;
    order32<DT>(a + at, o + at, gt_a, lt_a);
    order32<DT>(b + at, o + at, gt_b, lt_b);
    const uint32_t sign = conflict & ((gt_a & lt_b) | (lt_a & gt_b));
    store32(masks.changed_a, j, ca);
    store32(masks.changed_b, j, cb);
    store32(masks.same, j, same);
    store32(masks.conflict, j, conflict);
    store32(masks.sign_conflict, j, sign);
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

inline unsigned lanes(__m256 m) { return unsigned(_mm256_movemask_ps(m)); }
inline unsigned lanes(__m256i m) { return unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(m))); }

// Running sums of diff_stats; two f64 halves per 8-lane step so that the FMA chains interleave.
struct StatsAcc {
  __m256d a2[2], b2[2], ab[2], d2[2], max_d[2];
  uint64_t changed = 0, flips = 0, nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
  StatsAcc() {
    for (int h = 0; h < 2; h++) a2[h] = b2[h] = ab[h] = d2[h] = max_d[h] = _mm256_setzero_pd();
  }
  void add(__m256d x, __m256d y, int h) {
    const __m256d d = _mm256_sub_pd(x, y);
    a2[h] = _mm256_fmadd_pd(x, x, a2[h]);
    b2[h] = _mm256_fmadd_pd(y, y, b2[h]);
    ab[h] = _mm256_fmadd_pd(x, y, ab[h]);
    d2[h] = _mm256_fmadd_pd(d, d, d2[h]);
    max_d[h] = _mm256_max_pd(max_d[h], _mm256_andnot_pd(_mm256_set1_pd(-0.0), d));
  }
  static double sum(__m256d v) {
    alignas(32) double t[4];
    _mm256_store_pd(t, v);
    return (t[0] + t[1]) + (t[2] + t[3]);
  }
  void finish(DiffStats& s) const {
    s.sum_a2 = sum(_mm256_add_pd(a2[0], a2[1]));
    s.sum_b2 = sum(_mm256_add_pd(b2[0], b2[1]));
    s.sum_ab = sum(_mm256_add_pd(ab[0], ab[1]));
    s.sum_d2 = sum(_mm256_add_pd(d2[0], d2[1]));
    alignas(32) double t[4];
    _mm256_store_pd(t, _mm256_max_pd(max_d[0], max_d[1]));
    s.max_abs_diff = 0;
    for (double v : t) s.max_abs_diff = v > s.max_abs_diff ? v : s.max_abs_diff;
    s.changed = changed, s.sign_flips = flips, s.nan_a = nan_a, s.nan_b = nan_b, s.inf_a = inf_a, s.inf_b = inf_b;
  }
};

// 8 f32 lanes, converted exactly from F32, F16 or BF16. NaN and Inf are rare, so they are counted
// (and masked out of the sums) on a branch of their own.
inline void stats_f32(StatsAcc& acc, __m256 x, __m256 y) {
  const __m256i mag = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i below_inf = _mm256_set1_epi32(0x7f7fffff);
  const __m256i mx = _mm256_and_si256(_mm256_castps_si256(x), mag), my = _mm256_and_si256(_mm256_castps_si256(y), mag);
  const __m256 zero = _mm256_setzero_ps();
  acc.flips += popcount64((lanes(_mm256_cmp_ps(x, zero, _CMP_GT_OQ)) & lanes(_mm256_cmp_ps(y, zero, _CMP_LT_OQ))) |
                          (lanes(_mm256_cmp_ps(x, zero, _CMP_LT_OQ)) & lanes(_mm256_cmp_ps(y, zero, _CMP_GT_OQ))));
  const __m256i special = _mm256_or_si256(_mm256_cmpgt_epi32(mx, below_inf), _mm256_cmpgt_epi32(my, below_inf));
  if (!_mm256_testz_si256(special, special)) {
    acc.nan_a += popcount64(lanes(_mm256_cmpgt_epi32(mx, inf)));
    acc.nan_b += popcount64(lanes(_mm256_cmpgt_epi32(my, inf)));
    acc.inf_a += popcount64(lanes(_mm256_cmpeq_epi32(mx, inf)));
    acc.inf_b += popcount64(lanes(_mm256_cmpeq_epi32(my, inf)));
    x = _mm256_andnot_ps(_mm256_castsi256_ps(special), x);
    y = _mm256_andnot_ps(_mm256_castsi256_ps(special), y);
  }
  acc.add(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_cvtps_pd(_mm256_castps256_ps128(y)), 0);
  acc.add(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)), 1);
}

inline __m256 widen8(__m128i raw, DType dt) {
  return dt == DType::F16 ? _mm256_cvtph_ps(raw) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}

template <DType DT>
size_t diff_stats_f32(const uint8_t* a, const uint8_t* b, size_t n, StatsAcc& acc) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    if (DT == DType::F32) {
      const __m256i ra = load256(a + j * 4), rb = load256(b + j * 4);
      acc.changed += popcount64(~lanes(_mm256_cmpeq_epi32(ra, rb)) & 0xff);
      stats_f32(acc, _mm256_castsi256_ps(ra), _mm256_castsi256_ps(rb));
    } else {
      const __m128i ra = load128(a + j * 2), rb = load128(b + j * 2);
      acc.changed += popcount64(~unsigned(_mm_movemask_epi8(_mm_cmpeq_epi16(ra, rb))) & 0xffff) / 2;
      stats_f32(acc, widen8(ra, DT), widen8(rb, DT));
    }
  }
  return j;
}

size_t diff_stats_f64(const uint8_t* a, const uint8_t* b, size_t n, StatsAcc& acc) {
  const __m256i mag = _mm256_set1_epi64x(0x7fffffffffffffffll), inf = _mm256_set1_epi64x(0x7ff0000000000000ll);
  const __m256i below_inf = _mm256_set1_epi64x(0x7fefffffffffffffll);
  const __m256d zero = _mm256_setzero_pd();
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m256i ra = load256(a + j * 8), rb = load256(b + j * 8);
    auto bits = [](__m256i m) { return unsigned(_mm256_movemask_pd(_mm256_castsi256_pd(m))); };
    acc.changed += popcount64(~bits(_mm256_cmpeq_epi64(ra, rb)) & 0xf);
    const __m256i mx = _mm256_and_si256(ra, mag), my = _mm256_and_si256(rb, mag);
    __m256d x = _mm256_castsi256_pd(ra), y = _mm256_castsi256_pd(rb);
    acc.flips += popcount64((unsigned(_mm256_movemask_pd(_mm256_cmp_pd(x, zero, _CMP_GT_OQ))) &
                             unsigned(_mm256_movemask_pd(_mm256_cmp_pd(y, zero, _CMP_LT_OQ)))) |
                            (unsigned(_mm256_movemask_pd(_mm256_cmp_pd(x, zero, _CMP_LT_OQ))) &
                             unsigned(_mm256_movemask_pd(_mm256_cmp_pd(y, zero, _CMP_GT_OQ)))));
    const __m256i special = _mm256_or_si256(_mm256_cmpgt_epi64(mx, below_inf), _mm256_cmpgt_epi64(my, below_inf));
    if (!_mm256_testz_si256(special, special)) {
      acc.nan_a += popcount64(bits(_mm256_cmpgt_epi64(mx, inf)));
      acc.nan_b += popcount64(bits(_mm256_cmpgt_epi64(my, inf)));
      acc.inf_a += popcount64(bits(_mm256_cmpeq_epi64(mx, inf)));
      acc.inf_b += popcount64(bits(_mm256_cmpeq_epi64(my, inf)));
      x = _mm256_andnot_pd(_mm256_castsi256_pd(special), x);
      y = _mm256_andnot_pd(_mm256_castsi256_pd(special), y);
    }
    acc.add(x, y, (j >> 2) & 1);
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
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, widen8(load128(src + j * 2), dt));
  } else if (dt == DType::F64) {
    for (; j + 4 <= n; j += 4) _mm_storeu_ps(dst + j, _mm256_cvtpd_ps(_mm256_loadu_pd(reinterpret_cast<const double*>(src + j * 8))));
  }
  scalar::table().to_f32(src + j * dtype_size(dt), n - j, dt, dst + j);
}

void from_f32(const float* src, size_t n, DType dt, uint8_t* dst) {
  size_t j = 0;
  if (dt == DType::F16) {
    for (; j + 8 <= n; j += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * 2),
                       _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  } else if (dt == DType::BF16) {
    const __m256i mag = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), quiet = _mm256_set1_epi32(0x40);
    for (; j + 8 <= n; j += 8) {
      const __m256i x = _mm256_castps_si256(_mm256_loadu_ps(src + j));
      const __m256i high = _mm256_srli_epi32(x, 16);
      const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, _mm256_and_si256(high, one))), 16);
      const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, mag), inf);
      const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(high, quiet), nan);
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xD8);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j * 2), _mm256_castsi256_si128(packed));
    }
  } else if (dt == DType::F64) {
    for (; j + 4 <= n; j += 4)
      _mm256_storeu_pd(reinterpret_cast<double*>(dst + j * 8), _mm256_cvtps_pd(_mm_loadu_ps(src + j)));
  }
  scalar::table().from_f32(src + j, n - j, dt, dst + j * dtype_size(dt));
}

// ---- matmul ----

// Packs columns [c0, c0 + nc) of W over inputs [k0, k0 + kc) as pack[k * 64 + j] = W[c0 + j][k0 + k]
// (kMatmulTileCols = 64), columns past nc as zeros: the micro-kernel then reads W as whole vectors of
// consecutive output columns, from one 32 KiB panel that stays in L1 while every row strip uses it.
// F16/BF16 rows of W are widened (F16C, shifts) on the way.
void pack_panel(const MatmulArgs& a, size_t c0, size_t nc, size_t k0, size_t kc, float* pack) {
  float widened[kMatmulDepth];
  for (size_t j = 0; j < kMatmulTileCols; j++) {
    float* dst = pack + j;
    if (j >= nc) {
      for (size_t k = 0; k < kc; k++) dst[k * kMatmulTileCols] = 0.0f;
      continue;
    }
    const float* src = matmul_w_row(a, c0 + j, k0, kc, widened, to_f32);
    for (size_t k = 0; k < kc; k++) dst[k * kMatmulTileCols] = src[k];
  }
}

// An M x 16 tile of y (M <= 6) from 16 columns of the packed panel: 12 accumulators, 2 loads of W and
// M broadcasts of x per input (15 of the 16 YMM registers). Partial tiles use masked loads and stores.
template <int M>
inline void matmul_tile(const float* x, size_t ldx, const float* pack, size_t kc, float* y, size_t ldy,
                        __m256i m0, __m256i m1, const float* bias, bool first) {
  __m256 acc[M][2];
  for (int i = 0; i < M; i++) {
    acc[i][0] = first ? (bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps()) : _mm256_maskload_ps(y + i * ldy, m0);
    acc[i][1] = first ? (bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps()) : _mm256_maskload_ps(y + i * ldy + 8, m1);
  }
  for (size_t k = 0; k < kc; k++) {
    const float* p = pack + k * kMatmulTileCols;
    const __m256 b0 = _mm256_load_ps(p), b1 = _mm256_load_ps(p + 8);
    for (int i = 0; i < M; i++) {
      const __m256 xi = _mm256_broadcast_ss(x + i * ldx + k);
      acc[i][0] = _mm256_fmadd_ps(xi, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xi, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < M; i++) {
    _mm256_maskstore_ps(y + i * ldy, m0, acc[i][0]);
    _mm256_maskstore_ps(y + i * ldy + 8, m1, acc[i][1]);
  }
}

// Lanes below n set (n clipped to [0, 8]).
inline __m256i lanes_below(long n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::max(0L, std::min(8L, n)))), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Rows [r0, r0 + nr) of one 64-column panel over inputs [k0, k0 + kc), 16 columns at a time.
void matmul_panel(const MatmulArgs& a, size_t r0, size_t nr, size_t c0, size_t nc, size_t k0, size_t kc, float* pack) {
  pack_panel(a, c0, nc, k0, kc, pack);
  const bool first = k0 == 0;
  for (size_t s = 0; s < nc; s += 16) {
    const __m256i m0 = lanes_below(long(nc - s)), m1 = lanes_below(long(nc - s) - 8);
    const float* bias = a.bias ? a.bias + c0 + s : nullptr;
    const float* p = pack + s;
    const float* x = a.x + r0 * a.in + k0;
    float* y = a.y + r0 * a.out + c0 + s;
    size_t r = 0;
    for (; r + 6 <= nr; r += 6) matmul_tile<6>(x + r * a.in, a.in, p, kc, y + r * a.out, a.out, m0, m1, bias, first);
    const float* xr = x + r * a.in;
    float* yr = y + r * a.out;
    switch (nr - r) {
      case 5: matmul_tile<5>(xr, a.in, p, kc, yr, a.out, m0, m1, bias, first); break;
      case 4: matmul_tile<4>(xr, a.in, p, kc, yr, a.out, m0, m1, bias, first); break;
      case 3: matmul_tile<3>(xr, a.in, p, kc, yr, a.out, m0, m1, bias, first); break;
      case 2: matmul_tile<2>(xr, a.in, p, kc, yr, a.out, m0, m1, bias, first); break;
      case 1: matmul_tile<1>(xr, a.in, p, kc, yr, a.out, m0, m1, bias, first); break;
      default: break;
    }
  }
}

// Input blocks outermost, as in avx512.cc.
void matmul(const MatmulArgs& a, size_t r0, size_t nr, size_t c0, size_t nc, float* pack) {
  for (size_t k0 = 0; k0 < a.in; k0 += kMatmulDepth) {
    const size_t kc = std::min(kMatmulDepth, a.in - k0);
    for (size_t c = c0; c < c0 + nc; c += kMatmulTileCols)
      matmul_panel(a, r0, nr, c, std::min(kMatmulTileCols, c0 + nc - c), k0, kc, pack);
  }
}

}  // namespace

#include "generic.inc"

const KernelTable& table() {
  static const KernelTable t = {"avx2", change_mask, classify3, diff_stats, to_f32, from_f32, select,
                                combine, ties_histogram, ties_signs, ties_merge, matvec, matmul, activation, attention, norm};
  return t;
}

}  // namespace avx2
}  // namespace gt

#endif
