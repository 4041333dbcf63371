// Whole-tensor operations: split a tensor into fixed blocks, run a kernel on each block on up to
// `threads` threads, and combine the per-block results in block order. Fixed blocks (not one per
// thread) make reductions independent of the thread count, and keep each piece cache-sized so that
// large tensors stream through once.
#pragma once

#include "../kernels/kernels.h"

namespace gt {
namespace ops {

// Elements per block; a multiple of 64 so that every block starts on a whole mask byte (and word).
constexpr size_t kBlockElements = size_t(1) << 18;

uint64_t change_mask(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, size_t n, DType dt,
                     uint8_t* mask);
ClassifyCounts classify3(const KernelTable& k, unsigned threads, const uint8_t* o, const uint8_t* a, const uint8_t* b,
                         size_t n, DType dt, const ClassifyMasks& masks);
DiffStats diff_stats(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, size_t n, DType dt);
void to_f32(const KernelTable& k, unsigned threads, const uint8_t* src, size_t n, DType dt, float* dst);
void from_f32(const KernelTable& k, unsigned threads, const float* src, size_t n, DType dt, uint8_t* dst);
void select(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n,
            DType dt, uint8_t* out);
void combine(const KernelTable& k, unsigned threads, const CombineArgs& args, size_t n, uint8_t* out);
// keep[i]: how many of model i's deltas TIES keeps (its top-k by magnitude). Fills `thresholds`.
void ties(const KernelTable& k, unsigned threads, TiesArgs args, const uint64_t* keep, uint64_t* thresholds, size_t n,
          uint8_t* out);
// The three passes of ties() on part of a tensor, for a caller that streams a tensor in blocks and
// keeps the per-tensor state (histograms, thresholds, sign counts) itself. ties_histogram adds model
// `model`'s counts into hist[65536]; ties_signs adds the block's positive and negative trimmed sums;
// ties_merge writes the block with args.thresholds and args.majority set.
void ties_histogram(const KernelTable& k, unsigned threads, const TiesArgs& args, uint32_t model, unsigned shift,
                    uint64_t prefix, size_t n, uint64_t* hist);
void ties_signs(const KernelTable& k, unsigned threads, const TiesArgs& args, size_t n, uint64_t& positive,
                uint64_t& negative);
void ties_merge(const KernelTable& k, unsigned threads, const TiesArgs& args, size_t n, uint8_t* out);
void matvec(const KernelTable& k, unsigned threads, const uint8_t* m, size_t rows, size_t cols, DType dt,
            const double* x, double* y, bool transpose);
// y = x W^T + bias (MatmulArgs); kernels without a matmul (CUDA) run the best CPU implementation's.
void matmul(const KernelTable& k, unsigned threads, const MatmulArgs& a);
void activation(const KernelTable& k, unsigned threads, Activation fn, float* x, size_t n);
// seqs: `count` (start, length) pairs of rows; one job per sequence and head.
void attention(const KernelTable& k, unsigned threads, const AttentionArgs& a, const uint32_t* seqs, size_t count);
void norm(const KernelTable& k, unsigned threads, const NormArgs& a, size_t rows);
// The bandwidth baseline for the benchmark: memcpy on the same threads and blocks.
void copy(unsigned threads, const uint8_t* src, size_t bytes, uint8_t* dst);

}  // namespace ops
}  // namespace gt
