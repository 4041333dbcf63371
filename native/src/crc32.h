// CRC-32 as zlib computes it (ISO-HDLC: reflected polynomial 0xEDB88320, inverted before and after),
// for the pack index's payload checksums (src/store/pack.ts).
#pragma once

#include <cstddef>
#include <cstdint>

namespace gt {
// crc32(0, data, size) is zlib's crc32 of `data`; pass the previous result to continue a stream.
uint32_t crc32(uint32_t crc, const uint8_t* data, size_t size);
}  // namespace gt
