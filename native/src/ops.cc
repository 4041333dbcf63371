#include "ops.h"

#include "dispatch.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gt {
namespace ops {
namespace {

size_t block_count(size_t n, size_t per_block = kBlockElements) { return (n + per_block - 1) / per_block; }

// Runs fn(block, worker) for every block; workers take blocks from a shared counter. Threads are
// started per call: a call that is worth splitting moves at least a few MiB, next to which starting
// a thread (tens of microseconds) is noise, and there is no pool to share between concurrent calls.
void parallel_blocks(size_t blocks, unsigned threads, const std::function<void(size_t, unsigned)>& fn) {
  const unsigned workers = unsigned(std::max<size_t>(1, std::min<size_t>(threads, blocks)));
  if (workers == 1) {
    for (size_t b = 0; b < blocks; b++) fn(b, 0);
    return;
  }
  std::atomic<size_t> next{0};
  std::mutex failed_lock;
  std::exception_ptr failed;
  auto run = [&](unsigned worker) {
    try {
      for (size_t b; (b = next.fetch_add(1)) < blocks;) fn(b, worker);
    } catch (...) {  // an exception escaping a std::thread would terminate the process
      std::lock_guard<std::mutex> hold(failed_lock);
      if (!failed) failed = std::current_exception();
      next = blocks;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; w++) pool.emplace_back(run, w);
  run(0);
  for (std::thread& t : pool) t.join();
  if (failed) std::rethrow_exception(failed);
}

struct Range {
  size_t first, n;
};

Range block_range(size_t b, size_t n) {
  const size_t first = b * kBlockElements;
  return {first, std::min(kBlockElements, n - first)};
}

}  // namespace

uint64_t change_mask(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, size_t n, DType dt,
                     uint8_t* mask) {
  const size_t w = dtype_size(dt), blocks = block_count(n);
  std::vector<uint64_t> counts(blocks);
  parallel_blocks(blocks, threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    counts[i] = k.change_mask(a + r.first * w, b + r.first * w, r.n, dt, mask + r.first / 8);
  });
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

ClassifyCounts classify3(const KernelTable& k, unsigned threads, const uint8_t* o, const uint8_t* a, const uint8_t* b,
                         size_t n, DType dt, const ClassifyMasks& masks) {
  const size_t w = dtype_size(dt), blocks = block_count(n);
  std::vector<ClassifyCounts> counts(blocks);
  parallel_blocks(blocks, threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    const size_t m = r.first / 8;
    const ClassifyMasks part = {masks.changed_a + m, masks.changed_b + m, masks.same + m, masks.conflict + m,
                                masks.sign_conflict + m};
    k.classify3(o + r.first * w, a + r.first * w, b + r.first * w, r.n, dt, part, counts[i]);
  });
  ClassifyCounts total;
  for (const ClassifyCounts& c : counts) {
    total.changed_a += c.changed_a;
    total.changed_b += c.changed_b;
    total.same += c.same;
    total.conflict += c.conflict;
    total.sign_conflict += c.sign_conflict;
  }
  return total;
}

DiffStats diff_stats(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, size_t n, DType dt) {
  const size_t w = dtype_size(dt), blocks = block_count(n);
  std::vector<DiffStats> parts(blocks);
  parallel_blocks(blocks, threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.diff_stats(a + r.first * w, b + r.first * w, r.n, dt, parts[i]);
  });
  DiffStats total;
  for (const DiffStats& s : parts) add_stats(total, s);
  return total;
}

void to_f32(const KernelTable& k, unsigned threads, const uint8_t* src, size_t n, DType dt, float* dst) {
  const size_t w = dtype_size(dt);
  parallel_blocks(block_count(n), threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.to_f32(src + r.first * w, r.n, dt, dst + r.first);
  });
}

void from_f32(const KernelTable& k, unsigned threads, const float* src, size_t n, DType dt, uint8_t* dst) {
  const size_t w = dtype_size(dt);
  parallel_blocks(block_count(n), threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.from_f32(src + r.first, r.n, dt, dst + r.first * w);
  });
}

void select(const KernelTable& k, unsigned threads, const uint8_t* a, const uint8_t* b, const uint8_t* mask, size_t n,
            DType dt, uint8_t* out) {
  const size_t w = dtype_size(dt);
  parallel_blocks(block_count(n), threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.select(a + r.first * w, b + r.first * w, mask + r.first / 8, r.n, dt, out + r.first * w);
  });
}

void combine(const KernelTable& k, unsigned threads, const CombineArgs& args, size_t n, uint8_t* out) {
  parallel_blocks(block_count(n), threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.combine(args, r.first, r.n, out);
  });
}

void ties_histogram(const KernelTable& k, unsigned threads, const TiesArgs& args, uint32_t model, unsigned shift,
                    uint64_t prefix, size_t n, uint64_t* hist) {
  const size_t blocks = block_count(n);
  const unsigned workers = unsigned(std::max<size_t>(1, std::min<size_t>(threads, blocks)));
  std::vector<uint64_t> part(size_t(workers) << 16);
  parallel_blocks(blocks, workers, [&](size_t b, unsigned worker) {
    const Range r = block_range(b, n);
    k.ties_histogram(args, model, r.first, r.n, shift, prefix, part.data() + (size_t(worker) << 16));
  });
  for (unsigned w = 0; w < workers; w++)
    for (size_t bin = 0; bin < 65536; bin++) hist[bin] += part[(size_t(w) << 16) + bin];
}

void ties_signs(const KernelTable& k, unsigned threads, const TiesArgs& args, size_t n, uint64_t& positive,
                uint64_t& negative) {
  const size_t blocks = block_count(n);
  std::vector<uint64_t> pos(blocks), neg(blocks);
  parallel_blocks(blocks, threads, [&](size_t b, unsigned) {
    const Range r = block_range(b, n);
    k.ties_signs(args, r.first, r.n, pos[b], neg[b]);
  });
  for (size_t b = 0; b < blocks; b++) positive += pos[b], negative += neg[b];
}

void ties_merge(const KernelTable& k, unsigned threads, const TiesArgs& args, size_t n, uint8_t* out) {
  parallel_blocks(block_count(n), threads, [&](size_t b, unsigned) {
    const Range r = block_range(b, n);
    k.ties_merge(args, r.first, r.n, out);
  });
}

void ties(const KernelTable& k, unsigned threads, TiesArgs args, const uint64_t* keep, uint64_t* thresholds, size_t n,
          uint8_t* out) {
  const unsigned key_bits = args.dtype == DType::F64 ? 64 : 32;
  std::vector<uint64_t> hist(size_t(1) << 16);
  // The k-th largest magnitude by radix selection, 16 bits a pass: a histogram of the next 16 bits
  // among the keys that share the prefix found so far, then the bin that holds rank k. Linear time,
  // no copy of the tensor, exact (keys are compared as integers).
  for (uint32_t i = 0; i < args.count; i++) {
    if (keep[i] == 0) { thresholds[i] = UINT64_MAX; continue; }
    if (keep[i] >= n) { thresholds[i] = 0; continue; }
    uint64_t prefix = 0, rank = keep[i];
    for (int shift = int(key_bits) - 16; shift >= 0; shift -= 16) {
      std::fill(hist.begin(), hist.end(), 0);
      ties_histogram(k, threads, args, i, unsigned(shift), prefix, n, hist.data());
      size_t bin = 65535;
      for (; bin > 0 && hist[bin] < rank; bin--) rank -= hist[bin];
      prefix = (prefix << 16) | bin;
    }
    thresholds[i] = prefix;
  }
  args.thresholds = thresholds;
  uint64_t pos = 0, neg = 0;
  ties_signs(k, threads, args, n, pos, neg);
  args.majority = pos >= neg ? 1 : -1;
  ties_merge(k, threads, args, n, out);
}

void matvec(const KernelTable& k, unsigned threads, const uint8_t* m, size_t rows, size_t cols, DType dt,
            const double* x, double* y, bool transpose) {
  const size_t w = dtype_size(dt);
  size_t rows_per_block = std::max<size_t>(1, kBlockElements / std::max<size_t>(1, cols));
  // Transposed blocks each keep a partial y of `cols` doubles: at most 64 of them.
  if (transpose) rows_per_block = std::max(rows_per_block, (rows + 63) / 64);
  const size_t blocks = block_count(rows, rows_per_block);
  if (!transpose) {
    parallel_blocks(blocks, threads, [&](size_t b, unsigned) {
      const size_t r0 = b * rows_per_block, nr = std::min(rows_per_block, rows - r0);
      k.matvec(m + r0 * cols * w, nr, cols, dt, x, y + r0, false);
    });
    return;
  }
  // Transposed: each block adds into its own partial y; partials are summed in block order.
  std::vector<double> partial(blocks * cols, 0.0);
  parallel_blocks(blocks, threads, [&](size_t b, unsigned) {
    const size_t r0 = b * rows_per_block, nr = std::min(rows_per_block, rows - r0);
    k.matvec(m + r0 * cols * w, nr, cols, dt, x + r0, partial.data() + b * cols, true);
  });
  for (size_t c = 0; c < cols; c++) y[c] = 0;
  for (size_t b = 0; b < blocks; b++)
    for (size_t c = 0; c < cols; c++) y[c] += partial[b * cols + c];
}

// Jobs are (row block, column chunk) pairs, row block major, so that one worker's consecutive jobs
// reuse the same rows of x from its L2 while each job streams its own columns of W once per row
// block. Row blocks of at most kMatmulBlockRows rows keep a block's x slice (rows x kMatmulDepth
// floats, 384 KiB) in L2 while the kernel runs it past every panel of the chunk. Chunks are whole
// 64-column panels, up to kMatmulChunkPanels of them, fewer when that leaves too few jobs to balance
// the threads. Splitting over columns means no two threads write the same element, and the result does
// not depend on the thread count (each element's sum runs in the same order whatever the chunking).
constexpr size_t kMatmulBlockRows = 768;
constexpr size_t kMatmulChunkPanels = 8;
// Below this many multiply-adds one thread finishes before a second one would have started.
constexpr size_t kMatmulThreadWork = size_t(1) << 21;

void matmul(const KernelTable& k, unsigned threads, const MatmulArgs& a) {
  if (a.rows == 0 || a.out == 0) return;
  if (a.in == 0) {
    for (size_t r = 0; r < a.rows; r++)
      for (size_t c = 0; c < a.out; c++) a.y[r * a.out + c] = a.bias ? a.bias[c] : 0.0f;
    return;
  }
  const KernelTable& kernel = k.matmul ? k : best_implementation();
  const size_t panels = block_count(a.out, kMatmulTileCols);
  const size_t row_blocks = block_count(a.rows, kMatmulBlockRows);
  // Equal row blocks, in whole 6-row strips where possible (the micro-kernels' height).
  const size_t block_rows = (block_count(a.rows, row_blocks) + 5) / 6 * 6;
  if (a.rows * a.in * a.out < kMatmulThreadWork) threads = 1;
  // At least four jobs per thread where the panels allow, so that uneven jobs still balance.
  const size_t per_chunk = std::max<size_t>(1, std::min(kMatmulChunkPanels, panels * row_blocks / (4 * size_t(threads))));
  const size_t chunks = block_count(panels, per_chunk);
  const unsigned workers = unsigned(std::max<size_t>(1, std::min<size_t>(threads, chunks * row_blocks)));
  // 64-byte-aligned scratch per worker for the packed panel of W.
  std::vector<float> scratch(size_t(workers) * kMatmulPackFloats + 16);
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t(63));
  parallel_blocks(chunks * row_blocks, workers, [&](size_t job, unsigned worker) {
    const size_t rb = job / chunks, chunk = job % chunks;
    const size_t r0 = rb * block_rows;
    if (r0 >= a.rows) return;
    const size_t c0 = chunk * per_chunk * kMatmulTileCols;
    kernel.matmul(a, r0, std::min(block_rows, a.rows - r0), c0, std::min(per_chunk * kMatmulTileCols, a.out - c0),
                  base + size_t(worker) * kMatmulPackFloats);
  });
}

void activation(const KernelTable& k, unsigned threads, Activation fn, float* x, size_t n) {
  parallel_blocks(block_count(n), threads, [&](size_t i, unsigned) {
    const Range r = block_range(i, n);
    k.activation(fn, x + r.first, r.n);
  });
}

void attention(const KernelTable& k, unsigned threads, const AttentionArgs& a, const uint32_t* seqs, size_t count) {
  size_t longest = 0, work = 0;
  for (size_t s = 0; s < count; s++) {
    longest = std::max<size_t>(longest, seqs[2 * s + 1]);
    work += size_t(seqs[2 * s + 1]) * seqs[2 * s + 1];
  }
  // Below about a million multiply-adds a second thread costs more than it saves.
  if (work * a.heads * a.head_dim < (size_t(1) << 20)) threads = 1;
  const size_t jobs = count * a.heads;
  const unsigned workers = unsigned(std::max<size_t>(1, std::min<size_t>(threads, jobs)));
  std::vector<float> scores(size_t(workers) * std::max<size_t>(1, longest));
  parallel_blocks(jobs, workers, [&](size_t job, unsigned worker) {
    const size_t s = job / a.heads, h = job % a.heads;
    k.attention(a, seqs[2 * s], seqs[2 * s + 1], h, scores.data() + size_t(worker) * longest);
  });
}

void norm(const KernelTable& k, unsigned threads, const NormArgs& a, size_t rows) {
  const size_t per_block = std::max<size_t>(1, kBlockElements / 16 / std::max<size_t>(1, a.dim));
  parallel_blocks(block_count(rows, per_block), threads, [&](size_t b, unsigned) {
    const size_t r0 = b * per_block;
    k.norm(a, r0, std::min(per_block, rows - r0));
  });
}

void copy(unsigned threads, const uint8_t* src, size_t bytes, uint8_t* dst) {
  const size_t per = kBlockElements * 4;
  parallel_blocks(block_count(bytes, per), threads, [&](size_t b, unsigned) {
    const size_t first = b * per;
    std::memcpy(dst + first, src + first, std::min(per, bytes - first));
  });
}

}  // namespace ops
}  // namespace gt
