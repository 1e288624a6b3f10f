// 8-float vectors (GCC/Clang vector extensions: one AVX register each, or two SSE ones) and the
// math on them that the CPU kernels share.
#pragma once

#include <cstdint>
#include <cstring>

namespace tnt_backbone {

// may_alias (as for __m256): vectors are also read and written float by float.
using Vec = float __attribute__((vector_size(32), __may_alias__));
using IntVec = int32_t __attribute__((vector_size(32)));
constexpr int kLanes = 8;

// A vector from, or to, kLanes floats anywhere in memory (no alignment needed).
inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }

// exp(x) for x <= 0 (Cephes expf polynomial, relative error ~1e-7), on a whole vector.
inline Vec exp_nonpositive(Vec x) {
  const Vec lowest = Vec{} - 87.f;
  x = x < lowest ? lowest : x;
  const Vec n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  const Vec r = x - n * 0.693359375f + n * 2.12194440e-4f;
  Vec p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const IntVec two_n_bits = (__builtin_convertvector(n, IntVec) + 127) << 23;
  Vec two_n;
  std::memcpy(&two_n, &two_n_bits, sizeof(two_n));
  return p * two_n;
}

}  // namespace tnt_backbone
