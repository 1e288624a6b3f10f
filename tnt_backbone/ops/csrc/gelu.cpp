// GELU's backward fused with its recomputed forward, on the CPU.
//
// The MLPs keep only the pre-activation h for backward (GeluLinear, models/layers/tnt_block.py),
// which then needs gelu(h) for the second linear's weight gradient and grad_act * gelu'(h) for
// h's. Both come from one evaluation of the normal CDF Phi, in one pass over h and grad_act; the
// gradient overwrites grad_act (the caller's own buffer) instead of a fresh allocation.
//
// gelu(x) = x Phi(x), gelu'(x) = Phi(x) + x phi(x), with Phi(-a) = phi(a) t Q(t) for a = |x|,
// t = 1 / (1 + a / 4) and phi(a) = exp(-a^2 / 2) / sqrt(2 pi): Q is a polynomial fitted to
// relative error 6e-8 for a up to 14 (where Phi(-a) has long underflowed fp32). So Phi(x) keeps
// its relative accuracy in the lower tail (where 1 + erf(x / sqrt(2)) cancels), and erf's exp
// is also phi's.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/MemoryOverlap.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "vec_math.h"

namespace tnt_backbone {
namespace {

// Q(t) / sqrt(2 pi), highest degree first.
constexpr float kTailPoly[] = {2.572337165e-02f, -1.528088003e-01f, 2.961208820e-01f,
                               -2.057822943e-01f, 2.017578036e-01f, 3.292803094e-02f,
                               1.037466750e-01f,  9.851684421e-02f,  9.979747981e-02f};
constexpr int kTailTerms = sizeof(kTailPoly) / sizeof(kTailPoly[0]);
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// act = gelu(x) and slope = gelu'(x), lane by lane.
inline void gelu_and_slope(Vec x, Vec& act, Vec& slope) {
  const Vec zero = {};
  const Vec a = x < zero ? -x : x;
  const Vec e = exp_nonpositive(x * x * -0.5f);  // sqrt(2 pi) phi(x)
  const Vec t = 1.f / (1.f + 0.25f * a);
  Vec q = zero + kTailPoly[0];
  for (int i = 1; i < kTailTerms; ++i) q = q * t + kTailPoly[i];
  const Vec tail = e * t * q;  // Phi(-a)
  const Vec cdf = x < zero ? tail : 1.f - tail;
  act = x * cdf;
  slope = cdf + x * e * kInvSqrt2Pi;
}

// One vector's worth of storage (32 bytes) per step: kLanes floats or 2 * kLanes bf16 values.
template <typename scalar_t>
constexpr int kStep = sizeof(Vec) / sizeof(scalar_t);

using UintVec = uint32_t __attribute__((vector_size(32)));

inline Vec as_float(UintVec bits) {
  Vec v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
}

// v's bf16 (rounded to nearest even) in the upper half of each lane, garbage in the lower one.
inline UintVec bf16_bits(Vec v) {
  UintVec bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return v != v ? UintVec{} + 0x7fc00000u : bits + 0x7fffu + ((bits >> 16) & 1u);
}

// kStep elements: act = gelu(h), grad *= gelu'(h).
inline void gelu_backward_step(const float* h, float* grad, float* act) {
  Vec y, slope;
  gelu_and_slope(load(h), y, slope);
  store(act, y);
  store(grad, load(grad) * slope);
}

// A bf16 is the upper half of a float: each 32-bit lane holds an even-indexed element in its
// lower half and the next one in its upper half, computed as two float vectors. Widening and
// narrowing are then shifts and masks; the compiler's conversions shuffle, which costs more
// than the GELU's arithmetic.
inline void gelu_backward_step(const c10::BFloat16* h, c10::BFloat16* grad, c10::BFloat16* act) {
  constexpr uint32_t kHigh = 0xffff0000u;
  UintVec x, g;
  std::memcpy(&x, h, sizeof(x));
  std::memcpy(&g, grad, sizeof(g));
  Vec y_even, slope_even, y_odd, slope_odd;
  gelu_and_slope(as_float(x << 16), y_even, slope_even);
  gelu_and_slope(as_float(x & kHigh), y_odd, slope_odd);
  const UintVec y = (bf16_bits(y_even) >> 16) | (bf16_bits(y_odd) & kHigh);
  g = (bf16_bits(as_float(g << 16) * slope_even) >> 16) |
      (bf16_bits(as_float(g & kHigh) * slope_odd) & kHigh);
  std::memcpy(act, &y, sizeof(y));
  std::memcpy(grad, &g, sizeof(g));
}

// The same for count < kStep elements, through zero-padded copies.
template <typename scalar_t>
void gelu_backward_tail(const scalar_t* h, scalar_t* grad, scalar_t* act, int count) {
  scalar_t h_step[kStep<scalar_t>] = {}, grad_step[kStep<scalar_t>] = {}, act_step[kStep<scalar_t>];
  std::copy_n(h, count, h_step);
  std::copy_n(grad, count, grad_step);
  gelu_backward_step(h_step, grad_step, act_step);
  std::copy_n(act_step, count, act);
  std::copy_n(grad_step, count, grad);
}

// Whole steps per task: only the last step of h may be partial.
constexpr int64_t kGrainSteps = 4096;

template <typename scalar_t>
void gelu_backward_kernel(const scalar_t* h, scalar_t* grad, scalar_t* act, int64_t n) {
  constexpr int step = kStep<scalar_t>;
  at::parallel_for(0, (n + step - 1) / step, kGrainSteps, [=](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end * step, n);
    int64_t i = begin * step;
    for (; i + step <= stop; i += step) gelu_backward_step(h + i, grad + i, act + i);
    if (i < stop) gelu_backward_tail(h + i, grad + i, act + i, static_cast<int>(stop - i));
  });
}

// Storage dtypes; the arithmetic is float for both.
#define GELU_DTYPES(...)                       \
  AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)    \
  AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__)

// grad: the gradient of gelu(h), overwritten with that of h; returns gelu(h).
at::Tensor gelu_backward_(const at::Tensor& grad, const at::Tensor& h_in) {
  TORCH_CHECK(grad.device().is_cpu() && h_in.device().is_cpu(),
              "gelu_backward_ runs on the CPU, got grad on ", grad.device(), " and h on ",
              h_in.device());
  TORCH_CHECK(grad.sizes() == h_in.sizes() && grad.scalar_type() == h_in.scalar_type(),
              "gelu_backward_: grad (", grad.sizes(), ", ", grad.scalar_type(),
              ") does not match h (", h_in.sizes(), ", ", h_in.scalar_type(), ")");
  TORCH_CHECK(grad.is_contiguous(), "gelu_backward_ overwrites grad, which must be contiguous");
  at::assert_no_overlap(grad, h_in);
  const at::Tensor h = h_in.contiguous();
  at::Tensor act = at::empty_like(h);
  AT_DISPATCH_SWITCH(h.scalar_type(), "gelu_backward_", GELU_DTYPES([&] {
    gelu_backward_kernel(h.const_data_ptr<scalar_t>(), grad.mutable_data_ptr<scalar_t>(),
                         act.mutable_data_ptr<scalar_t>(), h.numel());
  }));
  return act;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tnt_backbone, m) {
  m.def("gelu_backward_(Tensor(a!) grad, Tensor h) -> Tensor");
}

TORCH_LIBRARY_IMPL(tnt_backbone, CPU, m) { m.impl("gelu_backward_", &gelu_backward_); }

}  // namespace tnt_backbone
