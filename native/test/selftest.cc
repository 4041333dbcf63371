// Standalone check of every compiled kernel implementation against the scalar one, without Node:
// the way to test an ISA on a machine that cannot run the addon tests, e.g. NEON under qemu-user:
//
//   aarch64-linux-gnu-g++ -std=c++17 -O2 -ffp-contract=off -static -pthread native/test/selftest.cc \
//     native/src/dispatch.cc native/src/ops.cc native/kernels/{scalar,neon,avx2,avx512}.cc -o selftest
//   qemu-aarch64 ./selftest
//
// (On x86-64, compile avx2.cc and avx512.cc with the flags of native/CMakeLists.txt.) Same rules as
// test/native: bitwise kernels and merges exactly (NaN payloads aside), reductions within 1e-9.
#include <cstdio>
#include <cstring>
#include <cmath>
#include <random>
#include <vector>
#include "../src/dispatch.h"
#include "../src/ops.h"
using namespace gt;
static std::mt19937_64 rng(42);
static const uint32_t sp32[] = {0,0x80000000u,0x7f800000u,0xff800000u,0x7fc00000u,0xffc00001u,0x7f800001u,1,0x807fffffu,0x00800000u,0x7f7fffffu,0x3f800000u,0xbf800000u};
static const uint16_t sp16[] = {0,0x8000,0x7c00,0xfc00,0x7e00,0xfe01,0x7c01,1,0x83ff,0x0400,0x7bff,0x3c00,0xbc00,0x7f80,0xff80,0x7fc0,0x7f81};
static const uint64_t sp64[] = {0,0x8000000000000000ull,0x7ff0000000000000ull,0xfff0000000000000ull,0x7ff8000000000000ull,0x7ff0000000000001ull,1,0x3ff0000000000000ull};
std::vector<uint8_t> tensor(DType dt, size_t n, double special) {
  size_t w = dtype_size(dt); std::vector<uint8_t> v(n * w);
  std::normal_distribution<float> g(0, 1); std::uniform_real_distribution<double> u(0, 1);
  for (size_t j = 0; j < n; j++) {
    uint8_t* p = v.data() + j * w;
    bool s = u(rng) < special;
    if (dt == DType::F32) { uint32_t b; float f = g(rng); memcpy(&b, &f, 4); if (s) b = sp32[rng() % 13]; memcpy(p, &b, 4); }
    else if (dt == DType::F64) { uint64_t b; double f = g(rng); memcpy(&b, &f, 8); if (s) b = sp64[rng() % 8]; memcpy(p, &b, 8); }
    else if (dt == DType::F16 || dt == DType::BF16) { float f = g(rng); uint32_t b; memcpy(&b, &f, 4); uint16_t h = dt == DType::BF16 ? uint16_t(b >> 16) : uint16_t((b >> 16 & 0x8000) | (0x3c00 + (rng() % 0x800))); if (s) h = sp16[rng() % 17]; memcpy(p, &h, 2); }
    else for (size_t k = 0; k < w; k++) p[k] = uint8_t(rng());
  }
  return v;
}
void mix(std::vector<uint8_t>& dst, const std::vector<uint8_t>& src, size_t w, double p) {
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t j = 0; j < dst.size() / w; j++) if (u(rng) < p) memcpy(&dst[j * w], &src[j * w], w);
}
int bad = 0;
#define CHECK(c, ...) do { if (!(c)) { bad++; if (bad < 30) { printf(__VA_ARGS__); printf("\n"); } } } while (0)
bool close(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)) || (!std::isfinite(a) && !std::isfinite(b)) || std::fabs(a - b) <= 1e-9 * std::fabs(b) + 1e-300; }
bool same_nan(const std::vector<uint8_t>& x, const std::vector<uint8_t>& y, DType dt) {
  size_t w = dtype_size(dt);
  for (size_t j = 0; j < x.size() / w; j++) {
    if (!memcmp(&x[j*w], &y[j*w], w)) continue;
    float fx[1], fy[1]; const KernelTable& s = scalar::table(); s.to_f32(&x[j*w], 1, dt, fx); s.to_f32(&y[j*w], 1, dt, fy);
    if (std::isnan(fx[0]) && std::isnan(fy[0])) continue;
    return false;
  }
  return true;
}
int main() {
  const KernelTable& S = scalar::table();
  const DType dts[] = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::U8, DType::I64};
  for (const Implementation& impl : implementations()) {
    printf("%s supported=%d\n", impl.name, impl.supported);
    if (!impl.supported || !strcmp(impl.name, "scalar")) continue;
    const KernelTable& K = *impl.table;
    for (DType dt : dts) {
      size_t w = dtype_size(dt); bool fl = dtype_is_float(dt);
      for (size_t n : {0, 1, 5, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 257, 1000, 300000}) {
        auto o = tensor(dt, n, 0.2), a = o, b = o;
        auto r1 = tensor(dt, n, 0.2), r2 = tensor(dt, n, 0.2);
        mix(a, r1, w, 0.5); mix(b, r2, w, 0.5); mix(b, a, w, 0.3);
        size_t mb = (n + 7) / 8 + 8;
        std::vector<uint8_t> m1(mb, 0xAA), m2(mb, 0xAA);
        uint64_t c1 = ops::change_mask(K, 2, a.data(), b.data(), n, dt, m1.data()), c2 = ops::change_mask(S, 1, a.data(), b.data(), n, dt, m2.data());
        CHECK(c1 == c2 && m1 == m2, "%s change_mask dt=%d n=%zu", impl.name, int(dt), n);
        std::vector<std::vector<uint8_t>> M1(5, std::vector<uint8_t>(mb)), M2(5, std::vector<uint8_t>(mb));
        ClassifyMasks cm1{M1[0].data(), M1[1].data(), M1[2].data(), M1[3].data(), M1[4].data()}, cm2{M2[0].data(), M2[1].data(), M2[2].data(), M2[3].data(), M2[4].data()};
        ClassifyCounts k1 = ops::classify3(K, 2, o.data(), a.data(), b.data(), n, dt, cm1), k2 = ops::classify3(S, 1, o.data(), a.data(), b.data(), n, dt, cm2);
        CHECK(!memcmp(&k1, &k2, sizeof k1) && M1 == M2, "%s classify3 dt=%d n=%zu counts %llu/%llu %llu/%llu %llu/%llu %llu/%llu %llu/%llu", impl.name, int(dt), n,
          (unsigned long long)k1.changed_a, (unsigned long long)k2.changed_a, (unsigned long long)k1.changed_b, (unsigned long long)k2.changed_b, (unsigned long long)k1.same, (unsigned long long)k2.same, (unsigned long long)k1.conflict, (unsigned long long)k2.conflict, (unsigned long long)k1.sign_conflict, (unsigned long long)k2.sign_conflict);
        DiffStats s1 = ops::diff_stats(K, 2, a.data(), b.data(), n, dt), s2 = ops::diff_stats(S, 1, a.data(), b.data(), n, dt);
        CHECK(s1.changed == s2.changed && s1.sign_flips == s2.sign_flips && s1.nan_a == s2.nan_a && s1.nan_b == s2.nan_b && s1.inf_a == s2.inf_a && s1.inf_b == s2.inf_b && s1.max_abs_diff == s2.max_abs_diff, "%s stats counts dt=%d n=%zu", impl.name, int(dt), n);
        CHECK(close(s1.sum_a2, s2.sum_a2) && close(s1.sum_b2, s2.sum_b2) && close(s1.sum_ab, s2.sum_ab) && close(s1.sum_d2, s2.sum_d2), "%s stats sums dt=%d n=%zu %g %g", impl.name, int(dt), n, s1.sum_ab, s2.sum_ab);
        std::vector<uint8_t> sel1(n * w), sel2(n * w);
        ops::select(K, 2, a.data(), b.data(), m1.data(), n, dt, sel1.data()); ops::select(S, 1, a.data(), b.data(), m1.data(), n, dt, sel2.data());
        CHECK(sel1 == sel2, "%s select dt=%d n=%zu", impl.name, int(dt), n);
        if (!fl) continue;
        std::vector<float> f1(n), f2(n);
        ops::to_f32(K, 2, a.data(), n, dt, f1.data()); ops::to_f32(S, 1, a.data(), n, dt, f2.data());
        CHECK(!memcmp(f1.data(), f2.data(), n * 4), "%s to_f32 dt=%d n=%zu", impl.name, int(dt), n);
        std::vector<uint32_t> bits(n); for (auto& x : bits) x = uint32_t(rng());
        std::vector<uint8_t> n1(n * w), n2(n * w);
        ops::from_f32(K, 2, reinterpret_cast<float*>(bits.data()), n, dt, n1.data()); ops::from_f32(S, 1, reinterpret_cast<float*>(bits.data()), n, dt, n2.data());
        CHECK(n1 == n2, "%s from_f32 dt=%d n=%zu", impl.name, int(dt), n);
        const uint8_t* models[2] = {a.data(), b.data()}; double coeffs[2] = {0.7, -0.4};
        for (CombineMode mode : {CombineMode::Linear, CombineMode::Task, CombineMode::Dare}) {
          CombineArgs args{mode, dt, o.data(), models, coeffs, 2, 12345, uint64_t(0.3 * 9007199254740992.0), 0};
          std::vector<uint8_t> x1(n * w), x2(n * w);
          ops::combine(K, 2, args, n, x1.data()); ops::combine(S, 1, args, n, x2.data());
          CHECK(same_nan(x1, x2, dt), "%s combine %d dt=%d n=%zu", impl.name, int(mode), int(dt), n);
        }
        auto o2 = tensor(dt, n, 0), a2 = o2, b2 = o2; auto q1 = tensor(dt, n, 0), q2 = tensor(dt, n, 0); mix(a2, q1, w, 0.6); mix(b2, q2, w, 0.6);
        const uint8_t* tm[2] = {a2.data(), b2.data()};
        uint64_t keep[2] = {n / 3, n / 5}, th1[2], th2[2];
        TiesArgs targs{dt, o2.data(), tm, 2, nullptr, 0.8, 1};
        std::vector<uint8_t> t1(n * w), t2(n * w);
        ops::ties(K, 2, targs, keep, th1, n, t1.data()); ops::ties(S, 1, targs, keep, th2, n, t2.data());
        CHECK(same_nan(t1, t2, dt) && th1[0] == th2[0] && th1[1] == th2[1], "%s ties dt=%d n=%zu", impl.name, int(dt), n);
      }
      if (fl) {
        size_t rows = 37, cols = 1001; auto m = tensor(dt, rows * cols, 0);
        std::vector<double> x(cols), xt(rows), y1(rows), y2(rows), z1(cols), z2(cols);
        for (auto& v : x) v = double(rng() % 1000) / 1000 - 0.5; for (auto& v : xt) v = double(rng() % 1000) / 1000 - 0.5;
        ops::matvec(K, 2, m.data(), rows, cols, dt, x.data(), y1.data(), false); ops::matvec(S, 1, m.data(), rows, cols, dt, x.data(), y2.data(), false);
        ops::matvec(K, 2, m.data(), rows, cols, dt, xt.data(), z1.data(), true); ops::matvec(S, 1, m.data(), rows, cols, dt, xt.data(), z2.data(), true);
        for (size_t i = 0; i < rows; i++) CHECK(std::fabs(y1[i] - y2[i]) < 1e-9 * 1000, "%s matvec", impl.name);
        for (size_t i = 0; i < cols; i++) CHECK(std::fabs(z1[i] - z2[i]) < 1e-9 * 100, "%s matvec T", impl.name);
      }
    }
  }
  printf("bad=%d\n", bad);
  return bad != 0;
}
