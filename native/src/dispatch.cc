#include "dispatch.h"

#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define GT_X86 1
#endif

namespace gt {
namespace {

enum Feature : unsigned {
  kAvx2 = 1u << 0,     // AVX2 + FMA + F16C + BMI2, with the OS saving YMM state
  kAvx512 = 1u << 1,   // AVX-512 F/BW/VL/DQ, with the OS saving opmask and ZMM state
  kNeon = 1u << 2,     // AArch64 Advanced SIMD (architecturally always present)
  kCuda = 1u << 3,     // the CUDA addon sees a GPU
};

#if GT_X86
// XCR0 says which register files the OS saves on a context switch; without that, using the
// registers corrupts them across preemption even when CPUID lists the instructions.
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

unsigned detect_features() {
  unsigned features = 0;
#if GT_X86
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  const bool osxsave = ecx & bit_OSXSAVE, fma = ecx & bit_FMA, f16c = ecx & bit_F16C;
  if (!osxsave) return 0;
  const unsigned long long xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
  const bool avx2 = ebx & bit_AVX2, bmi2 = ebx & bit_BMI2;
  const bool avx512 = (ebx & bit_AVX512F) && (ebx & bit_AVX512BW) && (ebx & bit_AVX512VL) && (ebx & bit_AVX512DQ);
  if (os_ymm && avx2 && fma && f16c && bmi2) features |= kAvx2;
  if ((features & kAvx2) && os_zmm && avx512) features |= kAvx512;
#elif defined(__aarch64__)
  features |= kNeon;
#endif
#ifdef GT_WITH_CUDA
  if (cuda::available()) features |= kCuda;
#endif
  return features;
}

struct Candidate {
  const char* name;
  unsigned required;
  const KernelTable* (*table)();
  bool by_default;  // false: used only when asked for by name
};

#if GT_X86
const KernelTable* avx512_table() { return &avx512::table(); }
const KernelTable* avx2_table() { return &avx2::table(); }
#endif
#if defined(__aarch64__)
const KernelTable* neon_table() { return &neon::table(); }
#endif
#ifdef GT_WITH_CUDA
const KernelTable* cuda_table() { return &cuda::table(); }
#endif
const KernelTable* scalar_table() { return &scalar::table(); }

std::vector<Implementation> build() {
  const Candidate candidates[] = {
#if GT_X86
      {"avx512", kAvx512, avx512_table, true},
      {"avx2", kAvx2, avx2_table, true},
#endif
#if defined(__aarch64__)
      {"neon", kNeon, neon_table, true},
#endif
#ifdef GT_WITH_CUDA
      // Host-resident tensors make the GPU a loss for these memory-bound kernels: opt-in only.
      {"cuda", kCuda, cuda_table, false},
#endif
      {"scalar", 0, scalar_table, true},
  };
  const unsigned have = detect_features();
  std::vector<Implementation> list;
  for (const Candidate& c : candidates) {
    const bool ok = (have & c.required) == c.required;
    list.push_back({c.name, ok, c.by_default, ok ? c.table() : nullptr});
  }
  return list;
}

}  // namespace

const std::vector<Implementation>& implementations() {
  static const std::vector<Implementation> list = build();
  return list;
}

const KernelTable& best_implementation() {
  for (const Implementation& impl : implementations())
    if (impl.supported && impl.by_default) return *impl.table;
  return scalar::table();
}

const KernelTable* find_implementation(const char* name) {
  for (const Implementation& impl : implementations())
    if (impl.supported && std::strcmp(impl.name, name) == 0) return impl.table;
  return nullptr;
}

}  // namespace gt
