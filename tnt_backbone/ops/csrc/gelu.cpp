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

// kLanes values of h's storage dtype, to and from floats; bf16 by bit shifts, as the compiler
// does not vectorise c10::BFloat16's scalar conversions.
using Uint16Vec = uint16_t __attribute__((vector_size(16)));
using UintVec = uint32_t __attribute__((vector_size(32)));

inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline Vec load(const c10::BFloat16* p) {
  Uint16Vec bits;
  std::memcpy(&bits, p, sizeof(bits));
  const UintVec wide = __builtin_convertvector(bits, UintVec) << 16;
  Vec v;
  std::memcpy(&v, &wide, sizeof(v));
  return v;
}

inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof(v)); }

inline void store(c10::BFloat16* p, Vec v) {
  UintVec bits;
  std::memcpy(&bits, &v, sizeof(bits));
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;  // round to nearest even
  bits = v != v ? UintVec{} + 0x7fc0u : bits;           // NaN stays NaN
  const Uint16Vec narrow = __builtin_convertvector(bits, Uint16Vec);
  std::memcpy(p, &narrow, sizeof(narrow));
}

// kLanes elements: act = gelu(h), grad *= gelu'(h).
template <typename scalar_t>
inline void gelu_backward_lanes(const scalar_t* h, scalar_t* grad, scalar_t* act) {
  Vec y, slope;
  gelu_and_slope(load(h), y, slope);
  store(act, y);
  store(grad, load(grad) * slope);
}

// The same for count < kLanes elements, through zero-padded copies.
template <typename scalar_t>
void gelu_backward_tail(const scalar_t* h, scalar_t* grad, scalar_t* act, int count) {
  scalar_t h_lanes[kLanes] = {}, grad_lanes[kLanes] = {}, act_lanes[kLanes];
  std::copy_n(h, count, h_lanes);
  std::copy_n(grad, count, grad_lanes);
  gelu_backward_lanes(h_lanes, grad_lanes, act_lanes);
  std::copy_n(act_lanes, count, act);
  std::copy_n(grad_lanes, count, grad);
}

// Whole vectors per task: only the last vector of h may be partial.
constexpr int64_t kGrainVectors = 4096;

template <typename scalar_t>
void gelu_backward_kernel(const scalar_t* h, scalar_t* grad, scalar_t* act, int64_t n) {
  at::parallel_for(0, (n + kLanes - 1) / kLanes, kGrainVectors, [=](int64_t begin, int64_t end) {
    const int64_t stop = std::min(end * kLanes, n);
    int64_t i = begin * kLanes;
    for (; i + kLanes <= stop; i += kLanes) gelu_backward_lanes(h + i, grad + i, act + i);
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
