// Decode GEMV kernels (core/nc_gemv.h): bf16 conversion rounding, fast paths (bf16 and fp32
// weights, overwrite and accumulate) vs the references, accuracy against fp32 weights, and
// batch invariance (a vector's result does not depend on the other vectors or the threads).
#include <gtest/gtest.h>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>
extern "C" {
#include "nc_err.h"
#include "nc_gemv.h"
}

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

TEST(Bf16, RoundToNearestEven) {
  float in[] = {1.0f, from_bits(0x3f808000u) /* tie -> even (down) */, from_bits(0x3f818000u) /* tie -> even (up) */,
                from_bits(0x3f808001u) /* above tie -> up */, -2.5f, 0.0f, -0.0f, INFINITY, -INFINITY, 3.0e38f};
  uint16_t out[10];
  nc_f32_to_bf16(in, out, 10);
  EXPECT_EQ(out[0], 0x3f80);
  EXPECT_EQ(out[1], 0x3f80);
  EXPECT_EQ(out[2], 0x3f82);
  EXPECT_EQ(out[3], 0x3f81);
  EXPECT_EQ(out[4], bits(-2.5f) >> 16);
  EXPECT_EQ(out[5], 0x0000);
  EXPECT_EQ(out[6], 0x8000);
  EXPECT_EQ(out[7], 0x7f80);
  EXPECT_EQ(out[8], 0xff80);
  float back[10];
  nc_bf16_to_f32(out, back, 10);
  EXPECT_TRUE(std::isinf(back[9]) || std::fabs(back[9] - 3.0e38f) / 3.0e38f < 1e-2);
  float nan = NAN;
  uint16_t nb;
  nc_f32_to_bf16(&nan, &nb, 1);
  float nback;
  nc_bf16_to_f32(&nb, &nback, 1);
  EXPECT_TRUE(std::isnan(nback));
}

// The vectorised widening (bf16 -> fp32, used by bf16 KV-cache prefill) is exact: every one of
// the 65,536 bit patterns, at every offset of a vector block and in the scalar tail.
TEST(Bf16, WideningIsExactForEveryPattern) {
  std::vector<uint16_t> all(65536 + 5);
  for (size_t i = 0; i < all.size(); i++) all[i] = (uint16_t)(i * 40503u);
  for (int off = 0; off < 8; off++) {
    const size_t n = all.size() - (size_t)off;
    std::vector<float> out(n);
    nc_bf16_to_f32(all.data() + off, out.data(), n);
    for (size_t i = 0; i < n; i++) {
      uint32_t u;
      memcpy(&u, &out[i], 4);
      ASSERT_EQ(u, (uint32_t)all[off + i] << 16) << "offset " << off << " at " << i;
    }
  }
}

TEST(Bf16, RelativeErrorBound) {
  std::mt19937 g(3);
  std::normal_distribution<float> n(0, 10);
  for (int i = 0; i < 10000; i++) {
    float f = n(g);
    uint16_t h;
    float back;
    nc_f32_to_bf16(&f, &h, 1);
    nc_bf16_to_f32(&h, &back, 1);
    EXPECT_LE(std::fabs(back - f), std::ldexp(std::fabs(f), -8)) << f;
  }
}

static void check_case(int O, int K, int B, int threads, std::mt19937 &g) {
  std::normal_distribution<float> n(0, 1);
  std::vector<float> wf((size_t)O * K), x((size_t)B * (K + 3));
  for (auto &v : wf) v = n(g) * 0.05f;
  for (auto &v : x) v = n(g);
  std::vector<uint16_t> w(wf.size());
  nc_f32_to_bf16(wf.data(), w.data(), wf.size());
  const int ldx = K + 3, ldy = O + 5;
  std::vector<float> y((size_t)B * ldy, -7.0f), yr((size_t)B * ldy, -7.0f);
  ASSERT_EQ(nc_gemv_bf16(w.data(), O, K, x.data(), ldx, B, y.data(), ldy, threads), NC_OK);
  ASSERT_EQ(nc_gemv_bf16_ref(w.data(), O, K, x.data(), ldx, B, yr.data(), ldy), NC_OK);
  for (int b = 0; b < B; b++) {
    for (int o = 0; o < O; o++) {
      float a = y[(size_t)b * ldy + o], r = yr[(size_t)b * ldy + o];
      // same math, different summation order
      ASSERT_NEAR(a, r, 1e-4f * (1.0f + std::sqrt((float)K))) << O << "x" << K << " B=" << B << " b=" << b << " o=" << o;
      // and against fp32 weights: bf16 rounding of weights only (loose bound)
      double exact = 0;
      for (int k = 0; k < K; k++) exact += (double)x[(size_t)b * ldx + k] * wf[(size_t)o * K + k];
      double scale = 0;
      for (int k = 0; k < K; k++) scale += std::fabs((double)x[(size_t)b * ldx + k] * wf[(size_t)o * K + k]);
      ASSERT_LE(std::fabs(a - exact), scale * 0.01 + 1e-4);
    }
    for (int o = O; o < ldy; o++) ASSERT_EQ(y[(size_t)b * ldy + o], -7.0f) << "wrote past O";
  }
}

TEST(Gemv, FastMatchesReferenceManyShapes) {
  std::mt19937 g(11);
  int shapes[][2] = {{1, 1}, {3, 5}, {4, 16}, {7, 33}, {64, 64}, {130, 257}, {512, 512}, {1000, 384}, {2048, 512}};
  for (auto &s : shapes)
    for (int B : {1, 2, 3, 8, 17})
      for (int th : {1, 2}) check_case(s[0], s[1], B, th, g);
}

TEST(Gemv, LargestBatch) {
  std::mt19937 g(5);
  check_case(96, 200, NC_GEMV_MAX_B, 2, g);
}

TEST(Gemv, BadArguments) {
  uint16_t w[4] = {0};
  float x[4] = {0}, y[4] = {0};
  EXPECT_EQ(nc_gemv_bf16(nullptr, 2, 2, x, 2, 1, y, 2, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16(w, 2, 2, x, 1, 1, y, 2, 1), NC_EINVAL);  // ldx < K
  EXPECT_EQ(nc_gemv_bf16(w, 2, 2, x, 2, 0, y, 2, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16(w, 2, 2, x, 2, NC_GEMV_MAX_B + 1, y, 2, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16(w, 2, 2, x, 2, 1, y, 1, 1), NC_EINVAL);  // ldy < O
}

TEST(Gemv, F32FastMatchesReferenceAndAccumulates) {
  std::mt19937 g(17);
  std::normal_distribution<float> n(0, 1);
  int shapes[][2] = {{1, 1}, {5, 7}, {9, 40}, {130, 257}, {1024, 512}};
  for (auto &s : shapes)
    for (int B : {1, 2, 5, 9})
      for (int th : {1, 2}) {
        const int O = s[0], K = s[1], ldx = K + 1, ldy = O + 2;
        std::vector<float> w((size_t)O * K), x((size_t)B * ldx), y0((size_t)B * ldy);
        for (auto &v : w) v = n(g) * 0.05f;
        for (auto &v : x) v = n(g);
        for (auto &v : y0) v = n(g);
        std::vector<float> y = y0, ya = y0, yr((size_t)B * ldy, 0.0f);
        ASSERT_EQ(nc_gemv_f32_ex(w.data(), O, K, x.data(), ldx, B, y.data(), ldy, 0, th), NC_OK);
        ASSERT_EQ(nc_gemv_f32_ex(w.data(), O, K, x.data(), ldx, B, ya.data(), ldy, NC_GEMV_ACCUMULATE, th), NC_OK);
        ASSERT_EQ(nc_gemv_f32_ref(w.data(), O, K, x.data(), ldx, B, yr.data(), ldy), NC_OK);
        for (int b = 0; b < B; b++) {
          for (int o = 0; o < O; o++) {
            size_t i = (size_t)b * ldy + o;
            ASSERT_NEAR(y[i], yr[i], 1e-5f * (1.0f + std::sqrt((float)K))) << O << "x" << K << " B=" << B;
            ASSERT_NEAR(ya[i], y0[i] + yr[i], 1e-5f * (2.0f + std::sqrt((float)K)));
          }
          for (int o = O; o < ldy; o++) {
            ASSERT_EQ(y[(size_t)b * ldy + o], y0[(size_t)b * ldy + o]) << "wrote past O";
            ASSERT_EQ(ya[(size_t)b * ldy + o], y0[(size_t)b * ldy + o]);
          }
        }
      }
}

TEST(Gemv, Bf16AccumulateAddsToY) {
  std::mt19937 g(19);
  std::normal_distribution<float> n(0, 1);
  const int O = 77, K = 150, B = 6;
  std::vector<float> wf((size_t)O * K), x((size_t)B * K), y0((size_t)B * O);
  for (auto &v : wf) v = n(g) * 0.05f;
  for (auto &v : x) v = n(g);
  for (auto &v : y0) v = n(g);
  std::vector<uint16_t> w(wf.size());
  nc_f32_to_bf16(wf.data(), w.data(), wf.size());
  std::vector<float> y = y0, yr((size_t)B * O);
  ASSERT_EQ(nc_gemv_bf16_ex(w.data(), O, K, x.data(), K, B, y.data(), O, NC_GEMV_ACCUMULATE, 1), NC_OK);
  ASSERT_EQ(nc_gemv_bf16_ref(w.data(), O, K, x.data(), K, B, yr.data(), O), NC_OK);
  for (size_t i = 0; i < y.size(); i++) ASSERT_NEAR(y[i], y0[i] + yr[i], 1e-4f * 14);
}

// The property the engine's "batched == alone" guarantee rests on: bit-identical outputs for a
// vector whatever else is in the batch, its position in it, and the thread count.
TEST(Gemv, BatchInvariantBitExact) {
  std::mt19937 g(23);
  std::normal_distribution<float> n(0, 1);
  for (int K : {37, 64, 200, 512}) {
    const int O = 203;
    std::vector<float> wf((size_t)O * K);
    for (auto &v : wf) v = n(g) * 0.05f;
    std::vector<uint16_t> w(wf.size());
    nc_f32_to_bf16(wf.data(), w.data(), wf.size());
    std::vector<float> x((size_t)NC_GEMV_MAX_B * K);
    for (auto &v : x) v = n(g);
    std::vector<float> one(O), onef(O);
    // vector 0 alone, single thread
    ASSERT_EQ(nc_gemv_bf16_ex(w.data(), O, K, x.data(), K, 1, one.data(), O, 0, 1), NC_OK);
    ASSERT_EQ(nc_gemv_f32_ex(wf.data(), O, K, x.data(), K, 1, onef.data(), O, 0, 1), NC_OK);
    for (int B : {2, 3, 4, 5, 8, 13, NC_GEMV_MAX_B})
      for (int th : {1, 2, 3}) {
        // place vector 0 at every position p of a batch of B
        for (int p = 0; p < B; p += (B > 8 ? 5 : 1)) {
          std::vector<float> xb((size_t)B * K);
          for (int b = 0; b < B; b++)
            memcpy(&xb[(size_t)b * K], &x[(size_t)((b == p) ? 0 : (b + 1) % NC_GEMV_MAX_B) * K], sizeof(float) * K);
          std::vector<float> y((size_t)B * O), yf((size_t)B * O);
          ASSERT_EQ(nc_gemv_bf16_ex(w.data(), O, K, xb.data(), K, B, y.data(), O, 0, th), NC_OK);
          ASSERT_EQ(nc_gemv_f32_ex(wf.data(), O, K, xb.data(), K, B, yf.data(), O, 0, th), NC_OK);
          ASSERT_EQ(0, memcmp(&y[(size_t)p * O], one.data(), sizeof(float) * O)) << "K=" << K << " B=" << B << " p=" << p << " th=" << th;
          ASSERT_EQ(0, memcmp(&yf[(size_t)p * O], onef.data(), sizeof(float) * O)) << "K=" << K << " B=" << B << " p=" << p;
        }
      }
  }
}

TEST(Gemv, BadFlagsAndF32Arguments) {
  float w[4] = {0}, x[4] = {0}, y[4] = {0};
  uint16_t wb[4] = {0};
  EXPECT_EQ(nc_gemv_bf16_ex(wb, 2, 2, x, 2, 1, y, 2, 4, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ex(w, 2, 2, x, 2, 1, y, 2, 2, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ex(nullptr, 2, 2, x, 2, 1, y, 2, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ex(w, 0, 2, x, 2, 1, y, 2, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ex(w, 2, 2, x, 2, NC_GEMV_MAX_B + 1, y, 2, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ref(w, 2, 2, x, 1, 1, y, 2), NC_EINVAL);
  EXPECT_EQ(nc_gemv_f32_ex(w, 2, 2, x, 2, 1, y, 2, NC_GEMV_ACCUMULATE, 1), NC_OK);
}

// Packed bf16 layout: pack is the layout documented in the header, the fast kernels match the
// reference, accumulate adds, rows beyond O are never written.
TEST(GemvPacked, PackLayoutAndFastMatchesReference) {
  std::mt19937 g(31);
  std::normal_distribution<float> n(0, 1);
  int shapes[][2] = {{1, 8}, {7, 16}, {8, 64}, {13, 40}, {130, 256}, {1024, 512}};
  for (auto &s : shapes) {
    const int O = s[0], K = s[1];
    std::vector<float> wf((size_t)O * K);
    for (auto &v : wf) v = n(g) * 0.05f;
    std::vector<uint16_t> wp(nc_gemv_bf16_packed_size(O, K), 0xffff), wb(wf.size());
    ASSERT_EQ(wp.size(), (size_t)((O + 7) / 8) * 8 * K);
    ASSERT_EQ(nc_gemv_bf16_pack(wf.data(), O, K, wp.data()), NC_OK);
    nc_f32_to_bf16(wf.data(), wb.data(), wf.size());
    for (int o = 0; o < (O + 7) / 8 * 8; o++)
      for (int k = 0; k < K; k++) {
        size_t at = (((size_t)(o / 8) * (K / 8) + k / 8) * 8 + o % 8) * 8 + k % 8;
        ASSERT_EQ(wp[at], o < O ? wb[(size_t)o * K + k] : 0) << o << "," << k;
      }
    for (int B : {1, 2, 3, 4, 5, 9, 17})
      for (int th : {1, 2}) {
        const int ldx = K + 3, ldy = O + 2;
        std::vector<float> x((size_t)B * ldx), y0((size_t)B * ldy);
        for (auto &v : x) v = n(g);
        for (auto &v : y0) v = n(g);
        std::vector<float> y = y0, ya = y0, yr((size_t)B * ldy), yu((size_t)B * ldy);
        ASSERT_EQ(nc_gemv_bf16_packed(wp.data(), O, K, x.data(), ldx, B, y.data(), ldy, 0, th), NC_OK);
        ASSERT_EQ(nc_gemv_bf16_packed(wp.data(), O, K, x.data(), ldx, B, ya.data(), ldy, NC_GEMV_ACCUMULATE, th), NC_OK);
        ASSERT_EQ(nc_gemv_bf16_packed_ref(wp.data(), O, K, x.data(), ldx, B, yr.data(), ldy), NC_OK);
        ASSERT_EQ(nc_gemv_bf16_ref(wb.data(), O, K, x.data(), ldx, B, yu.data(), ldy), NC_OK);
        for (int b = 0; b < B; b++) {
          for (int o = 0; o < O; o++) {
            size_t i = (size_t)b * ldy + o;
            ASSERT_NEAR(y[i], yr[i], 1e-4f * (1.0f + std::sqrt((float)K))) << O << "x" << K << " B=" << B;
            ASSERT_EQ(yr[i], yu[i]);  // same weights, same order: the references agree exactly
            ASSERT_NEAR(ya[i], y0[i] + yr[i], 1e-4f * (2.0f + std::sqrt((float)K)));
          }
          for (int o = O; o < ldy; o++) {
            ASSERT_EQ(y[(size_t)b * ldy + o], y0[(size_t)b * ldy + o]) << "wrote past O";
            ASSERT_EQ(ya[(size_t)b * ldy + o], y0[(size_t)b * ldy + o]);
          }
        }
      }
  }
}

// Bit-exact batch invariance of the packed kernels, across every kernel family the CPU has
// (B == 1 always runs AVX2; B >= 2 runs AVX-512 where available: they must agree bit for bit).
TEST(GemvPacked, BatchInvariantAcrossBatchThreadsAndIsa) {
  std::mt19937 g(37);
  std::normal_distribution<float> n(0, 1);
  const int O = 203, K = 192;
  std::vector<float> wf((size_t)O * K), x((size_t)NC_GEMV_MAX_B * K);
  for (auto &v : wf) v = n(g) * 0.05f;
  for (auto &v : x) v = n(g);
  std::vector<uint16_t> wp(nc_gemv_bf16_packed_size(O, K));
  ASSERT_EQ(nc_gemv_bf16_pack(wf.data(), O, K, wp.data()), NC_OK);
  std::vector<float> one(O);
  ASSERT_EQ(nc_gemv_force_isa(NC_GEMV_ISA_AVX2), nc_gemv_has_avx2() ? NC_OK : NC_ENOTSUP);
  ASSERT_EQ(nc_gemv_bf16_packed(wp.data(), O, K, x.data(), K, 1, one.data(), O, 0, 1), NC_OK);
  int tested = 0;
  for (int isa : {NC_GEMV_ISA_AVX2, NC_GEMV_ISA_AVX512}) {
    if (nc_gemv_force_isa(isa) != NC_OK) continue;
    tested++;
    for (int B : {1, 2, 3, 4, 7, 16, NC_GEMV_MAX_B})
      for (int th : {1, 2, 3})
        for (int p = 0; p < B; p += (B > 8 ? 7 : 1)) {
          std::vector<float> xb((size_t)B * K), y((size_t)B * O);
          for (int b = 0; b < B; b++)
            memcpy(&xb[(size_t)b * K], &x[(size_t)(b == p ? 0 : (b + 1) % NC_GEMV_MAX_B) * K], sizeof(float) * K);
          ASSERT_EQ(nc_gemv_bf16_packed(wp.data(), O, K, xb.data(), K, B, y.data(), O, 0, th), NC_OK);
          ASSERT_EQ(0, memcmp(&y[(size_t)p * O], one.data(), sizeof(float) * O))
              << "isa " << isa << " B=" << B << " p=" << p << " th=" << th;
        }
  }
  EXPECT_EQ(nc_gemv_force_isa(NC_GEMV_ISA_AUTO), NC_OK);
  EXPECT_GE(tested, nc_gemv_has_avx2() ? 1 : 0);
  // the scalar family computes the same function (another order: close, not bit-exact)
  ASSERT_EQ(nc_gemv_force_isa(NC_GEMV_ISA_SCALAR), NC_OK);
  std::vector<float> ys(O);
  ASSERT_EQ(nc_gemv_bf16_packed(wp.data(), O, K, x.data(), K, 1, ys.data(), O, 0, 1), NC_OK);
  for (int o = 0; o < O; o++) ASSERT_NEAR(ys[o], one[o], 1e-4f * 15);
  EXPECT_EQ(nc_gemv_force_isa(NC_GEMV_ISA_AUTO), NC_OK);
}

TEST(GemvPacked, BadArguments) {
  float w[16] = {0}, x[16] = {0}, y[16] = {0};
  uint16_t wp[64] = {0};
  EXPECT_EQ(nc_gemv_bf16_pack(w, 2, 12, wp), NC_EINVAL);  // K % 8
  EXPECT_EQ(nc_gemv_bf16_pack(w, 0, 8, wp), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16_pack(nullptr, 1, 8, wp), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16_packed_size(0, 8), 0u);
  EXPECT_EQ(nc_gemv_bf16_packed(wp, 1, 12, x, 12, 1, y, 1, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16_packed(wp, 1, 8, x, 8, 1, y, 1, 8, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16_packed_ref(wp, 1, 8, x, 4, 1, y, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_force_isa(9), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16_packed(wp, 1, 8, x, 8, 1, y, 1, 0, 1), NC_OK);
}

// The vectorised fp32 -> bf16 conversion is bit-identical to the scalar rule (round to nearest
// even; NaN stays a quiet NaN) for every kind of bit pattern, at every length and alignment.
static uint16_t ref_bf16(float f) {
  uint32_t u = bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

TEST(Bf16, VectorConversionMatchesScalarRule) {
  std::mt19937 g(41);
  std::vector<float> v;
  for (int i = 0; i < 20000; i++) v.push_back(from_bits((uint32_t)g()));
  uint32_t special[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x00000001u,
                        0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x00000000u, 0x80000000u};
  for (uint32_t u : special) v.push_back(from_bits(u));
  for (size_t off : {0, 1, 3}) {
    size_t n = v.size() - off;
    std::vector<uint16_t> out(n);
    nc_f32_to_bf16(v.data() + off, out.data(), n);
    for (size_t i = 0; i < n; i++) ASSERT_EQ(out[i], ref_bf16(v[off + i])) << std::hex << bits(v[off + i]);
  }
  for (size_t n : {1, 7, 15, 16, 17, 33}) {
    std::vector<uint16_t> out(n + 1, 0xabcd);
    nc_f32_to_bf16(v.data(), out.data(), n);
    ASSERT_EQ(out[n], 0xabcd) << "wrote past n";
  }
}

// A random packed bf16 matrix (O x K, N(0, 0.05)) and NC_GEMV_MAX_B bf16 activation rows of
// ldx (N(0, 1)) for the dot-product tests.
struct DotCase {
  std::vector<uint16_t> wp, xb;
  DotCase(std::mt19937 &g, int O, int K, int ldx) : wp(nc_gemv_bf16_packed_size(O, K)) {
    std::normal_distribution<float> n(0, 1);
    std::vector<float> wf((size_t)O * K), xf((size_t)NC_GEMV_MAX_B * ldx);
    for (auto &v : wf) v = n(g) * 0.05f;
    for (auto &v : xf) v = n(g);
    EXPECT_EQ(nc_gemv_bf16_pack(wf.data(), O, K, wp.data()), NC_OK);
    xb.resize(xf.size());
    nc_f32_to_bf16(xf.data(), xb.data(), xf.size());
  }
};

// bf16 x bf16 dot products (AVX512_BF16): against the double reference, accumulate, no writes
// past O, and bit-exact batch invariance. Skipped where the CPU lacks the instruction.
TEST(GemvBf16Dot, MatchesReferenceAndIsBatchInvariant) {
  if (!nc_gemv_bf16dp_available()) {
    uint16_t w[64] = {0}, x[8] = {0};
    float y[8];
    EXPECT_EQ(nc_gemv_bf16dp_packed(w, 1, 8, x, 8, 1, y, 1, 0, 1), NC_ENOTSUP);
    GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  }
  std::mt19937 g(43);
  std::normal_distribution<float> n(0, 1);
  int shapes[][2] = {{1, 8}, {13, 40}, {130, 256}, {1024, 512}};
  for (auto &s : shapes) {
    const int O = s[0], K = s[1];
    const int ldx = K + 8, ldy = O + 3;
    DotCase dc(g, O, K, ldx);
    const std::vector<uint16_t> &wp = dc.wp, &xb = dc.xb;
    std::vector<float> one(ldy, -3.0f);
    ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data(), ldx, 1, one.data(), ldy, 0, 1), NC_OK);
    for (int B : {1, 2, 3, 5, 8, 9, 16, NC_GEMV_MAX_B})
      for (int th : {1, 2}) {
        std::vector<float> y((size_t)B * ldy, -3.0f), yr((size_t)B * ldy), ya((size_t)B * ldy, 1.0f);
        ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data(), ldx, B, y.data(), ldy, 0, th), NC_OK);
        ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data(), ldx, B, ya.data(), ldy, NC_GEMV_ACCUMULATE, th), NC_OK);
        ASSERT_EQ(nc_gemv_bf16dp_packed_ref(wp.data(), O, K, xb.data(), ldx, B, yr.data(), ldy), NC_OK);
        for (int b = 0; b < B; b++) {
          for (int o = 0; o < O; o++) {
            size_t i = (size_t)b * ldy + o;
            ASSERT_NEAR(y[i], yr[i], 1e-4f * (1.0f + std::sqrt((float)K))) << O << "x" << K << " B=" << B;
            ASSERT_NEAR(ya[i], 1.0f + y[i], 1e-5f * (1.0f + std::fabs(y[i])));
          }
          for (int o = O; o < ldy; o++) ASSERT_EQ(y[(size_t)b * ldy + o], -3.0f) << "wrote past O";
        }
        ASSERT_EQ(0, memcmp(y.data(), one.data(), sizeof(float) * O)) << "row 0 differs in a batch of " << B;
      }
  }
  // against fp32 weights and activations: only the two bf16 roundings (loose bound)
  const int O = 64, K = 256;
  std::vector<float> wf((size_t)O * K), xf(K);
  for (auto &v : wf) v = n(g) * 0.05f;
  for (auto &v : xf) v = n(g);
  std::vector<uint16_t> wp(nc_gemv_bf16_packed_size(O, K)), xb(K);
  nc_gemv_bf16_pack(wf.data(), O, K, wp.data());
  nc_f32_to_bf16(xf.data(), xb.data(), K);
  std::vector<float> y(O);
  ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data(), K, 1, y.data(), O, 0, 1), NC_OK);
  for (int o = 0; o < O; o++) {
    double exact = 0, scale = 0;
    for (int k = 0; k < K; k++) {
      exact += (double)xf[k] * wf[(size_t)o * K + k];
      scale += std::fabs((double)xf[k] * wf[(size_t)o * K + k]);
    }
    ASSERT_LE(std::fabs(y[o] - exact), scale * 0.02 + 1e-4);
  }
  uint16_t w8[64] = {0}, x8[8] = {0};
  float y8[8];
  EXPECT_EQ(nc_gemv_bf16dp_packed(w8, 1, 12, x8, 12, 1, y8, 1, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16dp_packed(w8, 1, 8, nullptr, 8, 1, y8, 1, 0, 1), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16dp_packed_ref(w8, 1, 8, x8, 4, 1, y8, 1), NC_EINVAL);
}

// The tiled dot-product kernel (8/4/2/1 vectors per weight pass, vector reductions, dynamic
// split over threads) equals the plain one-vector-at-a-time kernel bit for bit, overwriting and
// accumulating, for every batch size and thread count; every row of a batch equals that row
// alone; nothing past O is written.
TEST(GemvBf16Dot, TiledEqualsPlainBitExact) {
  if (!nc_gemv_bf16dp_available()) {
    uint16_t w[64] = {0}, x[8] = {0};
    float y[8];
    EXPECT_EQ(nc_gemv_bf16dp_packed_plain(w, 1, 8, x, 8, 1, y, 1, 0), NC_ENOTSUP);
    GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  }
  std::mt19937 g(44);
  std::normal_distribution<float> n(0, 1);
  int shapes[][2] = {{5, 16}, {61, 136}, {300, 512}, {2051, 64}};
  for (auto &s : shapes) {
    const int O = s[0], K = s[1];
    const int ldx = K + 16, ldy = O + 5;
    DotCase dc(g, O, K, ldx);
    const std::vector<uint16_t> &wp = dc.wp, &xb = dc.xb;
    std::vector<float> y0((size_t)NC_GEMV_MAX_B * ldy);
    for (auto &v : y0) v = n(g);
    for (int fl : {0, NC_GEMV_ACCUMULATE}) {
      std::vector<float> plain(y0);
      ASSERT_EQ(nc_gemv_bf16dp_packed_plain(wp.data(), O, K, xb.data(), ldx, NC_GEMV_MAX_B,
                                            plain.data(), ldy, fl), NC_OK);
      for (int B : {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, NC_GEMV_MAX_B})
        for (int th : {1, 2, 3}) {
          std::vector<float> y(y0);
          ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data(), ldx, B, y.data(), ldy, fl, th), NC_OK);
          ASSERT_EQ(0, memcmp(y.data(), plain.data(), sizeof(float) * (size_t)B * ldy))
              << O << "x" << K << " B=" << B << " threads " << th << " flags " << fl;
          ASSERT_EQ(0, memcmp(y.data() + (size_t)B * ldy, y0.data() + (size_t)B * ldy,
                              sizeof(float) * (size_t)(NC_GEMV_MAX_B - B) * ldy)) << "rows past B";
        }
      for (int b = 0; b < NC_GEMV_MAX_B; b += 9) { // row b alone (B = 1) == row b of the batch
        std::vector<float> one(y0.begin() + (size_t)b * ldy, y0.begin() + (size_t)(b + 1) * ldy);
        ASSERT_EQ(nc_gemv_bf16dp_packed(wp.data(), O, K, xb.data() + (size_t)b * ldx, ldx, 1,
                                        one.data(), ldy, fl, 2), NC_OK);
        ASSERT_EQ(0, memcmp(one.data(), plain.data() + (size_t)b * ldy, sizeof(float) * ldy)) << "row " << b;
      }
    }
  }
  // the plain kernel is checked against the double reference too (it is what the tiles equal)
  const int O = 40, K = 96;
  std::vector<float> wf((size_t)O * K), xf(K);
  for (auto &v : wf) v = n(g) * 0.05f;
  for (auto &v : xf) v = n(g);
  std::vector<uint16_t> wp(nc_gemv_bf16_packed_size(O, K)), xb(K);
  nc_gemv_bf16_pack(wf.data(), O, K, wp.data());
  nc_f32_to_bf16(xf.data(), xb.data(), K);
  std::vector<float> y(O), yr(O);
  ASSERT_EQ(nc_gemv_bf16dp_packed_plain(wp.data(), O, K, xb.data(), K, 1, y.data(), O, 0), NC_OK);
  ASSERT_EQ(nc_gemv_bf16dp_packed_ref(wp.data(), O, K, xb.data(), K, 1, yr.data(), O), NC_OK);
  for (int o = 0; o < O; o++) ASSERT_NEAR(y[o], yr[o], 1e-4f * (1.0f + std::sqrt((float)K)));
  uint16_t w8[64] = {0}, x8[8] = {0};
  float y8[8];
  EXPECT_EQ(nc_gemv_bf16dp_packed_plain(w8, 1, 12, x8, 12, 1, y8, 1, 0), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16dp_packed_plain(w8, 1, 8, nullptr, 8, 1, y8, 1, 0), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16dp_packed_plain(w8, 1, 8, x8, 8, 1, y8, 1, 4), NC_EINVAL);
  EXPECT_EQ(nc_gemv_bf16dp_packed_plain(w8, 1, 8, x8, 8, NC_GEMV_MAX_B + 1, y8, 1, 0), NC_EINVAL);
}
