// AVX-512 (F, BW, VL, DQ) implementation. Compares produce mask registers directly, so a vector of
// elements becomes a word of mask bits with no shuffling, and tails use masked loads (masked-off
// lanes read as zero and never fault) instead of a scalar loop. Integer dtypes, rare in checkpoints,
// go to the scalar kernels.

#include "common.h"

#include <algorithm>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

namespace gt {
namespace avx512 {
namespace {

inline __mmask64 low_mask(size_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// A masked load of `count` elements of width W (count < 64 / W); the rest of the vector is zero.
template <unsigned W>
inline __m512i load_part(const uint8_t* p, size_t count) { return _mm512_maskz_loadu_epi8(low_mask(count * W), p); }

// Mask bits of `count` elements starting at element j (a multiple of 8), little-endian.
inline void store_bits(uint8_t* mask, size_t j, uint64_t word, size_t count) {
  std::memcpy(mask + j / 8, &word, (count + 7) / 8);
}

template <unsigned W> uint64_t neq(__m512i x, __m512i y);
// Every compare mask becomes a 64-bit integer here, behind an empty asm that pins it in a general
// register. Without it GCC 12 -O3 spills __mmask16 values with 16-bit stores and reloads them with
// 64-bit loads under register pressure, so stack garbage lands in the upper mask bits.
inline uint64_t pinned(uint64_t v) {
  __asm__("" : "+r"(v));
  return v;
}
inline uint64_t bits(__mmask64 m) { return pinned(_cvtmask64_u64(m)); }
inline uint64_t bits(__mmask32 m) { return pinned(_cvtmask32_u32(m)); }
inline uint64_t bits(__mmask16 m) { return pinned(_cvtmask16_u32(m)); }
inline uint64_t bits(__mmask8 m) { return pinned(_cvtmask8_u32(m)); }

template <> inline uint64_t neq<1>(__m512i x, __m512i y) { return bits(_mm512_cmpneq_epi8_mask(x, y)); }
template <> inline uint64_t neq<2>(__m512i x, __m512i y) { return bits(_mm512_cmpneq_epi16_mask(x, y)); }
template <> inline uint64_t neq<4>(__m512i x, __m512i y) { return bits(_mm512_cmpneq_epi32_mask(x, y)); }
template <> inline uint64_t neq<8>(__m512i x, __m512i y) { return bits(_mm512_cmpneq_epi64_mask(x, y)); }

// Loads vector v (of 64 / W elements) of the 64-element group at element j; `count` elements
// remain in the tensor from j. Full groups use plain loads, the last one masked loads.
template <unsigned W, bool kFull>
inline __m512i load_vector(const uint8_t* p, size_t j, unsigned v, size_t count) {
  constexpr size_t per = 64 / W;
  const uint8_t* at = p + (j + v * per) * W;
  if (kFull) return _mm512_loadu_si512(at);
  return count > v * per ? load_part<W>(at, count - v * per < per ? count - v * per : per) : _mm512_setzero_si512();
}

// Groups of 64 elements, so that each mask gets one 64-bit store per group (the last one partial).
template <unsigned W, bool kFull>
inline uint64_t change_group(const uint8_t* a, const uint8_t* b, size_t j, size_t count) {
  constexpr unsigned per = 64 / W;
  uint64_t word = 0;
  for (unsigned v = 0; v < W; v++)
    word |= neq<W>(load_vector<W, kFull>(a, j, v, count), load_vector<W, kFull>(b, j, v, count)) << (v * per);
  return word;
}

template <unsigned W>
uint64_t change_mask_w(const uint8_t* a, const uint8_t* b, size_t n, uint8_t* mask) {
  uint64_t count = 0;
  size_t j = 0;
  for (; j + 64 <= n; j += 64) {
    const uint64_t word = change_group<W, true>(a, b, j, 64);
    store_bits(mask, j, word, 64);
    count += popcount64(word);
  }
  if (j < n) {
    const uint64_t word = change_group<W, false>(a, b, j, n - j) & low_mask(n - j);
    store_bits(mask, j, word, n - j);
    count += popcount64(word);
  }
  return count;
}

uint64_t change_mask(const uint8_t* a, const uint8_t* b, size_t n, DType dt, uint8_t* mask) {
  switch (dtype_size(dt)) {
    case 8: return change_mask_w<8>(a, b, n, mask);
    case 4: return change_mask_w<4>(a, b, n, mask);
    case 2: return change_mask_w<2>(a, b, n, mask);
    default: return change_mask_w<1>(a, b, n, mask);
  }
}

// Value order of float elements as mask bits: gt = x > y, lt = x < y (false when either is NaN).
template <DType DT> void order(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt);
template <> inline void order<DType::F32>(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt) {
  gt = bits(_mm512_cmp_ps_mask(_mm512_castsi512_ps(x), _mm512_castsi512_ps(y), _CMP_GT_OQ));
  lt = bits(_mm512_cmp_ps_mask(_mm512_castsi512_ps(x), _mm512_castsi512_ps(y), _CMP_LT_OQ));
}
template <> inline void order<DType::F64>(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt) {
  gt = bits(_mm512_cmp_pd_mask(_mm512_castsi512_pd(x), _mm512_castsi512_pd(y), _CMP_GT_OQ));
  lt = bits(_mm512_cmp_pd_mask(_mm512_castsi512_pd(x), _mm512_castsi512_pd(y), _CMP_LT_OQ));
}
// 16-bit floats have no compare instruction: map sign-magnitude bits to a signed integer whose order
// is the value order (+0 and -0 both map to 0) and drop NaNs explicitly.
template <uint16_t kInf>
inline void order16(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt) {
  const __m512i magnitude = _mm512_set1_epi16(0x7fff), inf = _mm512_set1_epi16(short(kInf)), zero = _mm512_setzero_si512();
  const __m512i mx = _mm512_and_si512(x, magnitude), my = _mm512_and_si512(y, magnitude);
  const __m512i kx = _mm512_mask_sub_epi16(mx, _mm512_movepi16_mask(x), zero, mx);
  const __m512i ky = _mm512_mask_sub_epi16(my, _mm512_movepi16_mask(y), zero, my);
  const uint64_t ordered = ~(bits(_mm512_cmpgt_epu16_mask(mx, inf)) | bits(_mm512_cmpgt_epu16_mask(my, inf)));
  gt = bits(_mm512_cmpgt_epi16_mask(kx, ky)) & ordered;
  lt = bits(_mm512_cmplt_epi16_mask(kx, ky)) & ordered;
}
template <> inline void order<DType::F16>(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt) { order16<0x7c00>(x, y, gt, lt); }
template <> inline void order<DType::BF16>(__m512i x, __m512i y, uint64_t& gt, uint64_t& lt) { order16<0x7f80>(x, y, gt, lt); }

// One group of 64 elements: the five masks as 64-bit words.
template <DType DT, bool kFull>
inline void classify_group(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t j, size_t count, uint64_t m[5]) {
  constexpr unsigned W = dtype_size(DT), per = 64 / W;
  m[0] = m[1] = m[2] = m[3] = m[4] = 0;
  for (unsigned v = 0; v < W; v++) {
    const __m512i vo = load_vector<W, kFull>(o, j, v, count), va = load_vector<W, kFull>(a, j, v, count),
                  vb = load_vector<W, kFull>(b, j, v, count);
    const uint64_t ca = neq<W>(va, vo), cb = neq<W>(vb, vo), cab = neq<W>(va, vb);
    const uint64_t conflict = ca & cb & cab;
    uint64_t gt_a, lt_a, gt_b, lt_b;
    order<DT>(va, vo, gt_a, lt_a);
    order<DT>(vb, vo, gt_b, lt_b);
    m[0] |= ca << (v * per);
    m[1] |= cb << (v * per);
    m[2] |= (ca & ~cab) << (v * per);
    m[3] |= conflict << (v * per);
    m[4] |= (conflict & ((gt_a & lt_b) | (lt_a & gt_b))) << (v * per);
  }
}

template <DType DT>
void classify3_t(const uint8_t* o, const uint8_t* a, const uint8_t* b, size_t n, const ClassifyMasks& masks,
                 ClassifyCounts& counts) {
  uint8_t* out[5] = {masks.changed_a, masks.changed_b, masks.same, masks.conflict, masks.sign_conflict};
  uint64_t total[5] = {0, 0, 0, 0, 0}, m[5];
  size_t j = 0;
  for (; j + 64 <= n; j += 64) {
    classify_group<DT, true>(o, a, b, j, 64, m);
    for (int k = 0; k < 5; k++) store_bits(out[k], j, m[k], 64), total[k] += popcount64(m[k]);
  }
  if (j < n) {
    classify_group<DT, false>(o, a, b, j, n - j, m);
    // Lanes past n are zero in all three inputs, so they compare equal; masking keeps that explicit.
    for (int k = 0; k < 5; k++) m[k] &= low_mask(n - j), store_bits(out[k], j, m[k], n - j), total[k] += popcount64(m[k]);
  }
  counts = {total[0], total[1], total[2], total[3], total[4]};
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

// Running sums of diff_stats, in two f64 halves so that the FMA chains of a 16-lane step interleave.
struct StatsAcc {
  __m512d a2[2], b2[2], ab[2], d2[2], max_d[2];
  uint64_t changed = 0, flips = 0, nan_a = 0, nan_b = 0, inf_a = 0, inf_b = 0;
  StatsAcc() {
    for (int h = 0; h < 2; h++) a2[h] = b2[h] = ab[h] = d2[h] = max_d[h] = _mm512_setzero_pd();
  }
  // x and y are finite or zeroed.
  void add(__m512d x, __m512d y, int h) {
    const __m512d d = _mm512_sub_pd(x, y);
    a2[h] = _mm512_fmadd_pd(x, x, a2[h]);
    b2[h] = _mm512_fmadd_pd(y, y, b2[h]);
    ab[h] = _mm512_fmadd_pd(x, y, ab[h]);
    d2[h] = _mm512_fmadd_pd(d, d, d2[h]);
    max_d[h] = _mm512_max_pd(max_d[h], _mm512_abs_pd(d));
  }
  void finish(DiffStats& s) const {
    s.sum_a2 = _mm512_reduce_add_pd(_mm512_add_pd(a2[0], a2[1]));
    s.sum_b2 = _mm512_reduce_add_pd(_mm512_add_pd(b2[0], b2[1]));
    s.sum_ab = _mm512_reduce_add_pd(_mm512_add_pd(ab[0], ab[1]));
    s.sum_d2 = _mm512_reduce_add_pd(_mm512_add_pd(d2[0], d2[1]));
    s.max_abs_diff = _mm512_reduce_max_pd(_mm512_max_pd(max_d[0], max_d[1]));
    s.changed = changed, s.sign_flips = flips, s.nan_a = nan_a, s.nan_b = nan_b, s.inf_a = inf_a, s.inf_b = inf_b;
  }
};

// 16 f32 lanes (converted exactly from F32, F16 or BF16; zero-padded lanes are harmless zeros).
// NaN and Inf are rare, so they are counted (and masked out of the sums) on a branch of their own.
inline void stats_f32(StatsAcc& acc, __m512 x, __m512 y) {
  const __m512i mag = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i mx = _mm512_and_si512(_mm512_castps_si512(x), mag), my = _mm512_and_si512(_mm512_castps_si512(y), mag);
  const __m512 zero = _mm512_setzero_ps();
  acc.flips += popcount64(bits(__mmask16((_mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ) & _mm512_cmp_ps_mask(y, zero, _CMP_LT_OQ)) |
                                         (_mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ) & _mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ)))));
  const __mmask16 special = _mm512_cmpge_epi32_mask(mx, inf) | _mm512_cmpge_epi32_mask(my, inf);
  if (special) {
    acc.nan_a += popcount64(bits(_mm512_cmpgt_epi32_mask(mx, inf)));
    acc.nan_b += popcount64(bits(_mm512_cmpgt_epi32_mask(my, inf)));
    acc.inf_a += popcount64(bits(_mm512_cmpeq_epi32_mask(mx, inf)));
    acc.inf_b += popcount64(bits(_mm512_cmpeq_epi32_mask(my, inf)));
    x = _mm512_maskz_mov_ps(__mmask16(~special), x);
    y = _mm512_maskz_mov_ps(__mmask16(~special), y);
  }
  acc.add(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), _mm512_cvtps_pd(_mm512_castps512_ps256(y)), 0);
  acc.add(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))),
          _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(y), 1))), 1);
}

inline __m512 widen16(__m256i raw, DType dt) {
  return dt == DType::F16 ? _mm512_cvtph_ps(raw)
                          : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

template <DType DT>
void diff_stats_f32(const uint8_t* a, const uint8_t* b, size_t n, DiffStats& s) {
  StatsAcc acc;
  for (size_t j = 0; j < n; j += 16) {
    const __mmask16 m = __mmask16(low_mask(n - j < 16 ? n - j : 16));
    if (DT == DType::F32) {
      const __m512i ra = _mm512_maskz_loadu_epi32(m, a + j * 4), rb = _mm512_maskz_loadu_epi32(m, b + j * 4);
      acc.changed += popcount64(bits(_mm512_cmpneq_epi32_mask(ra, rb)));
      stats_f32(acc, _mm512_castsi512_ps(ra), _mm512_castsi512_ps(rb));
    } else {
      const __m256i ra = _mm256_maskz_loadu_epi16(m, a + j * 2), rb = _mm256_maskz_loadu_epi16(m, b + j * 2);
      acc.changed += popcount64(bits(_mm256_cmpneq_epi16_mask(ra, rb)));
      stats_f32(acc, widen16(ra, DT), widen16(rb, DT));
    }
  }
  acc.finish(s);
}

void diff_stats_f64(const uint8_t* a, const uint8_t* b, size_t n, DiffStats& s) {
  StatsAcc acc;
  const __m512i mag = _mm512_set1_epi64(0x7fffffffffffffffll), inf = _mm512_set1_epi64(0x7ff0000000000000ll);
  const __m512d zero = _mm512_setzero_pd();
  for (size_t j = 0; j < n; j += 8) {
    const __mmask8 m = __mmask8(low_mask(n - j < 8 ? n - j : 8));
    const __m512i ra = _mm512_maskz_loadu_epi64(m, a + j * 8), rb = _mm512_maskz_loadu_epi64(m, b + j * 8);
    acc.changed += popcount64(bits(_mm512_cmpneq_epi64_mask(ra, rb)));
    const __m512i mx = _mm512_and_si512(ra, mag), my = _mm512_and_si512(rb, mag);
    __m512d x = _mm512_castsi512_pd(ra), y = _mm512_castsi512_pd(rb);
    acc.flips += popcount64(bits(__mmask8((_mm512_cmp_pd_mask(x, zero, _CMP_GT_OQ) & _mm512_cmp_pd_mask(y, zero, _CMP_LT_OQ)) |
                                          (_mm512_cmp_pd_mask(x, zero, _CMP_LT_OQ) & _mm512_cmp_pd_mask(y, zero, _CMP_GT_OQ)))));
    const __mmask8 special = _mm512_cmpge_epi64_mask(mx, inf) | _mm512_cmpge_epi64_mask(my, inf);
    if (special) {
      acc.nan_a += popcount64(bits(_mm512_cmpgt_epi64_mask(mx, inf)));
      acc.nan_b += popcount64(bits(_mm512_cmpgt_epi64_mask(my, inf)));
      acc.inf_a += popcount64(bits(_mm512_cmpeq_epi64_mask(mx, inf)));
      acc.inf_b += popcount64(bits(_mm512_cmpeq_epi64_mask(my, inf)));
      x = _mm512_maskz_mov_pd(__mmask8(~special), x);
      y = _mm512_maskz_mov_pd(__mmask8(~special), y);
    }
    acc.add(x, y, (j >> 3) & 1);
  }
  acc.finish(s);
}

void diff_stats(const uint8_t* a, const uint8_t* b, size_t n, DType dt, DiffStats& s) {
  switch (dt) {
    case DType::F32: return diff_stats_f32<DType::F32>(a, b, n, s);
    case DType::F16: return diff_stats_f32<DType::F16>(a, b, n, s);
    case DType::BF16: return diff_stats_f32<DType::BF16>(a, b, n, s);
    case DType::F64: return diff_stats_f64(a, b, n, s);
    default: return scalar::table().diff_stats(a, b, n, dt, s);
  }
}

void to_f32(const uint8_t* src, size_t n, DType dt, float* dst) {
  switch (dt) {
    case DType::F16:
    case DType::BF16:
      for (size_t j = 0; j < n; j += 16) {
        const __mmask16 m = __mmask16(low_mask(n - j < 16 ? n - j : 16));
        _mm512_mask_storeu_ps(dst + j, m, widen16(_mm256_maskz_loadu_epi16(m, src + j * 2), dt));
      }
      return;
    case DType::F64:
      for (size_t j = 0; j < n; j += 8) {
        const __mmask8 m = __mmask8(low_mask(n - j < 8 ? n - j : 8));
        _mm256_mask_storeu_ps(dst + j, m, _mm512_cvtpd_ps(_mm512_maskz_loadu_pd(m, src + j * 8)));
      }
      return;
    default: return scalar::table().to_f32(src, n, dt, dst);
  }
}

void from_f32(const float* src, size_t n, DType dt, uint8_t* dst) {
  switch (dt) {
    case DType::F16:
      for (size_t j = 0; j < n; j += 16) {
        const __mmask16 m = __mmask16(low_mask(n - j < 16 ? n - j : 16));
        const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(dst + j * 2, m, h);
      }
      return;
    case DType::BF16: {
      const __m512i mag = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
      const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
      for (size_t j = 0; j < n; j += 16) {
        const __mmask16 m = __mmask16(low_mask(n - j < 16 ? n - j : 16));
        const __m512i x = _mm512_maskz_loadu_epi32(m, src + j);
        const __m512i high = _mm512_srli_epi32(x, 16);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(bias, _mm512_and_si512(high, one))), 16);
        r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, mag), inf), _mm512_or_si512(high, quiet));
        _mm256_mask_storeu_epi16(dst + j * 2, m, _mm512_cvtepi32_epi16(r));
      }
      return;
    }
    case DType::F64:
      for (size_t j = 0; j < n; j += 8) {
        const __mmask8 m = __mmask8(low_mask(n - j < 8 ? n - j : 8));
        _mm512_mask_storeu_pd(dst + j * 8, m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, src + j)));
      }
      return;
    default: return scalar::table().from_f32(src, n, dt, dst);
  }
}

// out = mask ? b : a: the mask bytes are the blend's mask register as they are.
template <unsigned W>
void select_w(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n, uint8_t* out) {
  constexpr size_t per = 64 / W;
  for (size_t j = 0; j < n; j += per) {
    const size_t count = n - j < per ? n - j : per;
    uint64_t word = 0;
    std::memcpy(&word, mask + j / 8, (count + 7) / 8);
    const __mmask64 lanes = low_mask(count * W);
    const __m512i x = _mm512_maskz_loadu_epi8(lanes, a + j * W), y = _mm512_maskz_loadu_epi8(lanes, b + j * W);
    __m512i r;
    if (W == 1) r = _mm512_mask_blend_epi8(word, x, y);
    else if (W == 2) r = _mm512_mask_blend_epi16(__mmask32(word), x, y);
    else if (W == 4) r = _mm512_mask_blend_epi32(__mmask16(word), x, y);
    else r = _mm512_mask_blend_epi64(__mmask8(word), x, y);
    _mm512_mask_storeu_epi8(out + j * W, lanes, r);
  }
}

void select(const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n, DType dt, uint8_t* out) {
  switch (dtype_size(dt)) {
    case 8: return select_w<8>(a, b, mask, n, out);
    case 4: return select_w<4>(a, b, mask, n, out);
    case 2: return select_w<2>(a, b, mask, n, out);
    default: return select_w<1>(a, b, mask, n, out);
  }
}

// ---- matmul ----

// Transposes 16 rows of 16 floats in registers (unpack, then 4x4 blocks, then 128-bit lanes).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// Packs columns [c0, c0 + nc) of W over inputs [k0, k0 + kc) as pack[k * 64 + j] = W[c0 + j][k0 + k]
// (kMatmulTileCols = 64), columns past nc as zeros: the micro-kernel then reads W as whole vectors of
// consecutive output columns, from one 32 KiB panel that stays in L1 while every row strip uses it.
// 16 x 16 blocks go through a register transpose: with few rows (one probe, the LM head on 100 last
// tokens) the packing would otherwise cost as much as the multiply-adds. F16/BF16 elements of W are
// widened as they are loaded (masked-off lanes are zeros either way).
template <DType WT>
inline __m512 load_w16(const void* w, size_t at, __mmask16 km) {
  if constexpr (WT == DType::F32) return _mm512_maskz_loadu_ps(km, static_cast<const float*>(w) + at);
  else return widen16(_mm256_maskz_loadu_epi16(km, static_cast<const uint16_t*>(w) + at), WT);
}

template <DType WT>
void pack_panel_t(const MatmulArgs& a, size_t c0, size_t nc, size_t k0, size_t kc, float* pack) {
  for (size_t g = 0; g < kMatmulTileCols; g += 16) {
    for (size_t kb = 0; kb < kc; kb += 16) {
      const size_t kn = std::min<size_t>(16, kc - kb);
      const __mmask16 km = __mmask16((1u << kn) - 1);
      __m512 r[16];
      for (size_t j = 0; j < 16; j++)
        r[j] = g + j < nc ? load_w16<WT>(a.w, (c0 + g + j) * a.in + k0 + kb, km) : _mm512_setzero_ps();
      transpose16(r);
      for (size_t k = 0; k < kn; k++) _mm512_store_ps(pack + (kb + k) * kMatmulTileCols + g, r[k]);
    }
  }
}

void pack_panel(const MatmulArgs& a, size_t c0, size_t nc, size_t k0, size_t kc, float* pack) {
  switch (a.w_type) {
    case DType::F16: return pack_panel_t<DType::F16>(a, c0, nc, k0, kc, pack);
    case DType::BF16: return pack_panel_t<DType::BF16>(a, c0, nc, k0, kc, pack);
    default: return pack_panel_t<DType::F32>(a, c0, nc, k0, kc, pack);
  }
}

// An M x 64 tile of y (M <= 6): 24 accumulators, 4 loads of W and M broadcasts of x per input, so the
// loop is bound by the two FMA ports rather than by loads. `first`: start from the bias (or zero),
// otherwise add to what the previous input block stored.
template <int M>
inline void matmul_tile(const float* x, size_t ldx, const float* pack, size_t kc, float* y, size_t ldy,
                        const __mmask16* mask, const float* bias, bool first) {
  __m512 acc[M][4];
  for (int i = 0; i < M; i++)
    for (int j = 0; j < 4; j++)
      acc[i][j] = first ? (bias ? _mm512_maskz_loadu_ps(mask[j], bias + 16 * j) : _mm512_setzero_ps())
                        : _mm512_maskz_loadu_ps(mask[j], y + i * ldy + 16 * j);
  for (size_t k = 0; k < kc; k++) {
    const float* p = pack + k * kMatmulTileCols;
    const __m512 b0 = _mm512_load_ps(p), b1 = _mm512_load_ps(p + 16), b2 = _mm512_load_ps(p + 32),
                 b3 = _mm512_load_ps(p + 48);
    for (int i = 0; i < M; i++) {
      const __m512 xi = _mm512_set1_ps(x[i * ldx + k]);
      acc[i][0] = _mm512_fmadd_ps(xi, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(xi, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(xi, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(xi, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < M; i++)
    for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(y + i * ldy + 16 * j, mask[j], acc[i][j]);
}

// Rows [r0, r0 + nr) of one 64-column panel over inputs [k0, k0 + kc).
void matmul_panel(const MatmulArgs& a, size_t r0, size_t nr, size_t c0, size_t nc, size_t k0, size_t kc, float* pack) {
  __mmask16 mask[4];
  for (size_t j = 0; j < 4; j++) {
    const size_t n = nc > 16 * j ? std::min<size_t>(16, nc - 16 * j) : 0;
    mask[j] = __mmask16((1u << n) - 1);
  }
  const float* bias = a.bias ? a.bias + c0 : nullptr;
  pack_panel(a, c0, nc, k0, kc, pack);
  const bool first = k0 == 0;
  const float* x = a.x + r0 * a.in + k0;
  float* y = a.y + r0 * a.out + c0;
  size_t r = 0;
  for (; r + 6 <= nr; r += 6) matmul_tile<6>(x + r * a.in, a.in, pack, kc, y + r * a.out, a.out, mask, bias, first);
  const float* xr = x + r * a.in;
  float* yr = y + r * a.out;
  switch (nr - r) {
    case 5: matmul_tile<5>(xr, a.in, pack, kc, yr, a.out, mask, bias, first); break;
    case 4: matmul_tile<4>(xr, a.in, pack, kc, yr, a.out, mask, bias, first); break;
    case 3: matmul_tile<3>(xr, a.in, pack, kc, yr, a.out, mask, bias, first); break;
    case 2: matmul_tile<2>(xr, a.in, pack, kc, yr, a.out, mask, bias, first); break;
    case 1: matmul_tile<1>(xr, a.in, pack, kc, yr, a.out, mask, bias, first); break;
    default: break;
  }
}

// Input blocks outermost: the block's slice of x (nr x kMatmulDepth floats) stays in L2 while every
// panel of the column range uses it.
void matmul(const MatmulArgs& a, size_t r0, size_t nr, size_t c0, size_t nc, float* pack) {
  for (size_t k0 = 0; k0 < a.in; k0 += kMatmulDepth) {
    const size_t kc = std::min(kMatmulDepth, a.in - k0);
    for (size_t c = c0; c < c0 + nc; c += kMatmulTileCols)
      matmul_panel(a, r0, nr, c, std::min(kMatmulTileCols, c0 + nc - c), k0, kc, pack);
  }
}

}  // namespace

#define GT_OWN_SELECT
#include "generic.inc"

const KernelTable& table() {
  static const KernelTable t = {"avx512", change_mask, classify3, diff_stats, to_f32, from_f32, select,
                                combine, ties_histogram, ties_signs, ties_merge, matvec, matmul, activation, attention, norm};
  return t;
}

}  // namespace avx512
}  // namespace gt

#endif
