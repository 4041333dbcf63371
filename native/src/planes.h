// The float-aware chunk transforms of store encodings 3 and 4 (docs/store.md): byte planes, the sign
// rotated to the bottom bit, and the zigzag integer delta against a base chunk. src/store/encoding.ts
// holds the TypeScript reference of the same transforms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace gt {

template <typename U>
inline U load(const uint8_t* p) {
  U x;
  std::memcpy(&x, p, sizeof(U));
  return x;
}

template <typename U>
inline void store_le(uint8_t* p, U x) {
  std::memcpy(p, &x, sizeof(U));
}

// Element i of n goes to out[b * n + i] for each byte b. With `base`, the element is first replaced by
// zigzag(x - base[i]); else, with `rotate`, rotated left by one bit (the sign moves to the bottom).
template <typename U>
void to_planes(const uint8_t* src, const uint8_t* base, bool rotate, size_t n, uint8_t* out) {
  using S = std::make_signed_t<U>;
  constexpr int kBits = 8 * sizeof(U);
  for (size_t i = 0; i < n; i++) {
    U x = load<U>(src + i * sizeof(U));
    if (base) {
      const U d = static_cast<U>(x - load<U>(base + i * sizeof(U)));
      x = static_cast<U>((d << 1) ^ static_cast<U>(static_cast<S>(d) >> (kBits - 1)));
    } else if (rotate) {
      x = static_cast<U>((x << 1) | (x >> (kBits - 1)));
    }
    for (size_t b = 0; b < sizeof(U); b++) out[b * n + i] = static_cast<uint8_t>(x >> (8 * b));
  }
}

// Inverse of to_planes with the same `base` and `rotate`.
template <typename U>
void from_planes(const uint8_t* planes, const uint8_t* base, bool rotate, size_t n, uint8_t* out) {
  constexpr int kBits = 8 * sizeof(U);
  for (size_t i = 0; i < n; i++) {
    U x = 0;
    for (size_t b = 0; b < sizeof(U); b++) x |= static_cast<U>(static_cast<U>(planes[b * n + i]) << (8 * b));
    if (base) {
      const U d = static_cast<U>((x >> 1) ^ static_cast<U>(0 - (x & 1)));
      x = static_cast<U>(load<U>(base + i * sizeof(U)) + d);
    } else if (rotate) {
      x = static_cast<U>((x >> 1) | (x << (kBits - 1)));
    }
    store_le<U>(out + i * sizeof(U), x);
  }
}

inline void planes_by_width(size_t width, bool inverse, const uint8_t* src, const uint8_t* base, bool rotate, size_t n, uint8_t* out) {
  switch (width) {
    // 1-byte elements have no sign to move (as in encoding.ts, where width 1 is the identity)
    case 1: inverse ? from_planes<uint8_t>(src, base, false, n, out) : to_planes<uint8_t>(src, base, false, n, out); break;
    case 2: inverse ? from_planes<uint16_t>(src, base, rotate, n, out) : to_planes<uint16_t>(src, base, rotate, n, out); break;
    case 4: inverse ? from_planes<uint32_t>(src, base, rotate, n, out) : to_planes<uint32_t>(src, base, rotate, n, out); break;
    case 8: inverse ? from_planes<uint64_t>(src, base, rotate, n, out) : to_planes<uint64_t>(src, base, rotate, n, out); break;
    default: break;
  }
}

}  // namespace gt
