// LayerNorm's backward over the last dim, on the CPU, fp32.
//
// aten's CPU kernel sums each thread's weight and bias gradients into adjacent rows of one
// buffer, (2, threads, C): where C floats are not a whole number of 64-byte cache lines (the
// word layers' 12, 24 and 40 channels), two threads write the same lines at every input row,
// and those lines travel between the cores. At 25088 x 24 (TNT-S, batch 8) its backward takes
// 0.5-2.2 ms with two threads, by where they run, and 0.36 ms with one. Here each task sums
// its rows into its own cache-line-aligned row of the buffer, and the rows are added at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <tuple>

#include "vec_math.h"

namespace tnt_backbone {
namespace {

constexpr int64_t kLineFloats = 16;  // floats per 64-byte cache line
constexpr int64_t kGrainRows = 1024;

inline float lane_sum(Vec v) {
  float s = 0.f;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

// Rows [begin, end): dx, and the rows' weight and bias gradients added to dgamma and dbeta.
// With xh = (x - mean) * rstd and g = dy * gamma, per row:
//   dx = rstd * (g - mean_k(g) - xh * mean_k(g * xh)),  dgamma += dy * xh,  dbeta += dy.
void backward_rows(const float* dy, const float* x, const float* mean, const float* rstd,
                   const float* gamma, float* dx, float* dgamma, float* dbeta, int64_t begin,
                   int64_t end, int64_t C) {
  const int64_t full = C / kLanes * kLanes;
  const float inv_c = 1.f / static_cast<float>(C);
  for (int64_t i = begin; i < end; ++i) {
    const float* dy_i = dy + i * C;
    const float* x_i = x + i * C;
    float* dx_i = dx + i * C;
    const float r = rstd[i], shift = -mean[i] * r;
    Vec sum_g = {}, sum_gxh = {};
    for (int64_t k = 0; k < full; k += kLanes) {
      const Vec d = load(dy_i + k), xh = load(x_i + k) * r + shift, g = d * load(gamma + k);
      sum_g += g;
      sum_gxh += g * xh;
      store(dgamma + k, load(dgamma + k) + d * xh);
      store(dbeta + k, load(dbeta + k) + d);
    }
    float a = lane_sum(sum_g), b = lane_sum(sum_gxh);
    for (int64_t k = full; k < C; ++k) {
      const float d = dy_i[k], xh = x_i[k] * r + shift, g = d * gamma[k];
      a += g;
      b += g * xh;
      dgamma[k] += d * xh;
      dbeta[k] += d;
    }
    a *= inv_c;
    b *= inv_c;
    for (int64_t k = 0; k < full; k += kLanes) {
      const Vec xh = load(x_i + k) * r + shift, g = load(dy_i + k) * load(gamma + k);
      store(dx_i + k, r * (g - a - xh * b));
    }
    for (int64_t k = full; k < C; ++k) {
      const float xh = x_i[k] * r + shift, g = dy_i[k] * gamma[k];
      dx_i[k] = r * (g - a - xh * b);
    }
  }
}

// grad, x: (..., C); mean, rstd: one per row, as native_layer_norm returns them; weight: (C).
// Returns the gradients of x, weight and bias.
std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_backward(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& mean_in,
    const at::Tensor& rstd_in, const at::Tensor& weight_in) {
  for (const at::Tensor* t : {&grad_in, &x_in, &mean_in, &rstd_in, &weight_in})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat,
                "layer_norm_backward takes float32 CPU tensors, got ", t->scalar_type(), " on ",
                t->device());
  const int64_t C = weight_in.numel();
  TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) == C && grad_in.sizes() == x_in.sizes() &&
                  mean_in.numel() * C == x_in.numel() && rstd_in.numel() == mean_in.numel(),
              "layer_norm_backward: grad ", grad_in.sizes(), ", x ", x_in.sizes(), ", mean ",
              mean_in.sizes(), ", rstd ", rstd_in.sizes(), " and weight ", weight_in.sizes(),
              " do not match");
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(),
                   mean = mean_in.contiguous(), rstd = rstd_in.contiguous(),
                   weight = weight_in.contiguous();
  const int64_t M = mean.numel();
  const int64_t tasks = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), (M + kGrainRows - 1) / kGrainRows));
  const int64_t stride = (C + kLineFloats - 1) / kLineFloats * kLineFloats;
  // per task: its weight gradient, then its bias gradient, each from a cache line's start
  at::Tensor sums = at::zeros({tasks, 2, stride}, x.options());
  at::Tensor dx = at::empty_like(x);
  const float *dy_p = grad.const_data_ptr<float>(), *x_p = x.const_data_ptr<float>(),
              *mean_p = mean.const_data_ptr<float>(), *rstd_p = rstd.const_data_ptr<float>(),
              *w_p = weight.const_data_ptr<float>();
  float *dx_p = dx.mutable_data_ptr<float>(), *sums_p = sums.mutable_data_ptr<float>();
  at::parallel_for(0, tasks, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) {
      float* own = sums_p + t * 2 * stride;
      backward_rows(dy_p, x_p, mean_p, rstd_p, w_p, dx_p, own, own + stride, M * t / tasks,
                    M * (t + 1) / tasks, C);
    }
  });
  at::Tensor totals = sums.sum(0).narrow(1, 0, C);
  return {dx, totals[0].view(weight_in.sizes()), totals[1].view(weight_in.sizes())};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tnt_backbone, m) {
  m.def("layer_norm_backward(Tensor grad, Tensor x, Tensor mean, Tensor rstd, Tensor weight) "
        "-> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(tnt_backbone, CPU, m) { m.impl("layer_norm_backward", &layer_norm_backward); }

}  // namespace tnt_backbone
