// Scalar building blocks shared by every implementation: unaligned loads, F16/BF16 rounding, the
// DARE PRNG. Everything here has internal linkage on purpose: each ISA file is compiled with its own
// -m flags, and an inline function with external linkage could be merged by the linker into a copy
// that uses AVX-512, then run on a machine without it.
#pragma once

#include <cmath>
#include <cstring>

#include "kernels.h"

// Functions marked GT_HD are also compiled for the GPU by native/cuda/kernels.cu.
#ifdef __CUDACC__
#define GT_HD __host__ __device__
#else
#define GT_HD
#endif

namespace gt {
namespace {

template <class T>
GT_HD inline T load(const uint8_t* p, size_t i) {
  T v;
  std::memcpy(&v, p + i * sizeof(T), sizeof(T));
  return v;
}

template <class T>
GT_HD inline void store(uint8_t* p, size_t i, T v) {
  std::memcpy(p + i * sizeof(T), &v, sizeof(T));
}

GT_HD inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
GT_HD inline float bits_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
GT_HD inline uint64_t f64_bits(double f) { uint64_t u; std::memcpy(&u, &f, 8); return u; }
GT_HD inline double bits_f64(uint64_t u) { double f; std::memcpy(&f, &u, 8); return f; }

// Exact. NaNs come back quiet with their payload, as F16C's vcvtph2ps does.
GT_HD inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp == 0) return bits_f32(sign | f32_bits(float(man) * 0x1p-24f));
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (man ? 0x400000u | (man << 13) : 0));
  return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

// Round to nearest, ties to even; overflow goes to infinity; NaNs stay NaN (quiet, payload truncated),
// bit-identical to F16C's vcvtps2ph with imm8 = 0.
GT_HD inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_bits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((mag >> 13) & 0x3ff));
  if (mag >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // >= 65520 rounds past 65504
  if (mag < 0x38800000u) {                                // below 2^-14: F16 subnormal or zero
    const uint32_t shift = 126 - (mag >> 23);             // value * 2^24 = man >> shift
    if (shift > 24) return sign;
    const uint32_t man = (mag & 0x7fffff) | 0x800000;
    uint32_t r = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return uint16_t(sign | r);
  }
  uint32_t h = (mag >> 13) - (112u << 10);
  const uint32_t rem = mag & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return uint16_t(sign | h);
}

GT_HD inline float bf16_to_f32(uint16_t h) { return bits_f32(uint32_t(h) << 16); }

// Round to nearest even; NaNs get the quiet bit so that truncation can never turn them into Inf.
GT_HD inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);
  return uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// Row `row` of a matmul's W over inputs [k0, k0 + kc) as f32: a pointer into W when it is F32, else
// `tmp` (kc floats) holding its F16/BF16 elements widened by `widen` (the calling ISA's to_f32).
template <class Widen>
inline const float* matmul_w_row(const MatmulArgs& a, size_t row, size_t k0, size_t kc, float* tmp, Widen widen) {
  const size_t at = row * a.in + k0;
  if (a.w_type == DType::F32) return static_cast<const float*>(a.w) + at;
  widen(static_cast<const uint8_t*>(a.w) + at * 2, kc, a.w_type, tmp);
  return tmp;
}

// The value of element i of a float tensor, exactly, in f64.
inline double load_value(const uint8_t* p, size_t i, DType dt) {
  switch (dt) {
    case DType::F64: return load<double>(p, i);
    case DType::F32: return load<float>(p, i);
    case DType::F16: return f16_to_f32(load<uint16_t>(p, i));
    case DType::BF16: return bf16_to_f32(load<uint16_t>(p, i));
    case DType::I64: return double(load<int64_t>(p, i));
    case DType::I32: return load<int32_t>(p, i);
    case DType::I16: return load<int16_t>(p, i);
    case DType::I8: return load<int8_t>(p, i);
    case DType::U64: return double(load<uint64_t>(p, i));
    case DType::U32: return load<uint32_t>(p, i);
    case DType::U16: return load<uint16_t>(p, i);
    default: return load<uint8_t>(p, i);
  }
}

// Bit patterns of element i, zero-extended, for the bitwise kernels.
inline uint64_t load_bits(const uint8_t* p, size_t i, unsigned width) {
  switch (width) {
    case 8: return load<uint64_t>(p, i);
    case 4: return load<uint32_t>(p, i);
    case 2: return load<uint16_t>(p, i);
    default: return p[i];
  }
}

// DARE's counter-based PRNG: SplitMix64 (Steele et al. 2014). Model i draws from the stream seeded
// by output i+1 of SplitMix64(seed); element j uses output j+1 of that stream. No state is carried
// between elements, so any block, thread or implementation draws the same numbers.
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

GT_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

GT_HD inline uint64_t dare_stream(uint64_t seed, uint32_t model) { return mix64(seed + kGolden * (uint64_t(model) + 1)); }

GT_HD inline bool dare_keep(uint64_t stream, uint64_t index, uint64_t keep_below) {
  return (mix64(stream + kGolden * (index + 1)) >> 11) < keep_below;
}

inline unsigned popcount64(uint64_t x) { return unsigned(__builtin_popcountll(x)); }

}  // namespace
}  // namespace gt
