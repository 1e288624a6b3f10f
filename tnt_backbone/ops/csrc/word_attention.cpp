// Multi-head self-attention over the 16 visual words of every sentence, on the CPU.
//
// The inner transformer runs attention on (B * Hp * Wp) sequences of 16 words with head dim
// 6-10: a few thousand flops per (sentence, head) pair. Batched matmuls spend most of their
// time on per-matrix overhead and layout copies at that size, so here one thread solves a whole
// pair in L1, reading q, k, v straight from the qkv projection's (T, 16, 3C) output and writing
// the (T, 16, C) result that the output projection reads. The softmax is recomputed in backward
// instead of stored.
//
// Every buffer is laid out with the query or key index last, so that each inner loop runs over
// 16 contiguous values with no reduction and the compiler vectorises it.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <Python.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tnt_backbone {
namespace {

constexpr int kWords = 16;
constexpr int kMaxHeadDim = 64;

// exp(x) for x <= 0, branch-free so that the loops calling it vectorise (libm's expf is a call
// per element): the Cephes expf polynomial, relative error ~1e-7.
inline float exp_nonpositive(float x) {
  x = x < -87.f ? -87.f : x;
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof(two_n));
  return p * two_n;
}

// One (sentence, head) pair. Buffers named *t are (head dim, word); p_t is (key, query).
template <typename scalar_t>
struct WordHead {
  static constexpr int N = kWords;

  int hd;
  float q_t[kMaxHeadDim * N], k_t[kMaxHeadDim * N], v_t[kMaxHeadDim * N];
  float p_t[N * N];

  // rows: this head's q of word 0 in a (N, 3C) block; k and v are C and 2C further on.
  void load(const scalar_t* __restrict rows, int64_t C) {
    for (int i = 0; i < N; ++i) {
      const scalar_t* r = rows + i * 3 * C;
      for (int d = 0; d < hd; ++d) {
        q_t[d * N + i] = static_cast<float>(r[d]);
        k_t[d * N + i] = static_cast<float>(r[C + d]);
        v_t[d * N + i] = static_cast<float>(r[2 * C + d]);
      }
    }
  }

  // p_t[j, i] = softmax over keys j of scale * q_i . k_j
  void attend(float scale) {
    #pragma omp simd
    for (int x = 0; x < N * N; ++x) p_t[x] = 0;
    for (int j = 0; j < N; ++j)
      for (int d = 0; d < hd; ++d) {
        const float k = k_t[d * N + j] * scale;
        #pragma omp simd
        for (int i = 0; i < N; ++i) p_t[j * N + i] += k * q_t[d * N + i];
      }
    float max[N], sum[N];
    #pragma omp simd
    for (int i = 0; i < N; ++i) max[i] = p_t[i];
    for (int j = 1; j < N; ++j) {
      #pragma omp simd
      for (int i = 0; i < N; ++i) max[i] = p_t[j * N + i] > max[i] ? p_t[j * N + i] : max[i];
    }
    #pragma omp simd
    for (int i = 0; i < N; ++i) sum[i] = 0;
    for (int j = 0; j < N; ++j) {
      #pragma omp simd
      for (int i = 0; i < N; ++i) {
        p_t[j * N + i] = exp_nonpositive(p_t[j * N + i] - max[i]);
        sum[i] += p_t[j * N + i];
      }
    }
    #pragma omp simd
    for (int i = 0; i < N; ++i) sum[i] = 1 / sum[i];
    for (int j = 0; j < N; ++j) {
      #pragma omp simd
      for (int i = 0; i < N; ++i) p_t[j * N + i] *= sum[i];
    }
  }
};

// out_t[d, i] = sum_j a_t[d, j] * b[j, i] for a (hd, N) a_t and an (N, N) b.
inline void mix(float* __restrict out_t, const float* __restrict a_t,
                const float* __restrict b, int hd) {
  constexpr int N = kWords;
  for (int d = 0; d < hd; ++d) {
    float* o = out_t + d * N;
    #pragma omp simd
    for (int i = 0; i < N; ++i) o[i] = 0;
    for (int j = 0; j < N; ++j) {
      const float a = a_t[d * N + j];
      #pragma omp simd
      for (int i = 0; i < N; ++i) o[i] += a * b[j * N + i];
    }
  }
}

inline void transpose(float* __restrict dst, const float* __restrict src) {
  constexpr int N = kWords;
  for (int j = 0; j < N; ++j)
    #pragma omp simd
    for (int i = 0; i < N; ++i) dst[i * N + j] = src[j * N + i];
}

// Writes a (hd, N) buffer to the rows of a (N, row_len) block.
template <typename scalar_t>
inline void store(scalar_t* __restrict rows, int64_t row_len, const float* __restrict buf_t,
                  int hd) {
  for (int i = 0; i < kWords; ++i)
    for (int d = 0; d < hd; ++d)
      rows[i * row_len + d] = static_cast<scalar_t>(buf_t[d * kWords + i]);
}

// One (sentence, head) pair forward: the head's (16, hd) output into its columns of out.
template <typename scalar_t>
void forward_pair(WordHead<scalar_t>& h, const scalar_t* qkv, scalar_t* out, int64_t C,
                  float scale) {
  float o_t[kMaxHeadDim * kWords];
  h.load(qkv, C);
  h.attend(scale);
  mix(o_t, h.v_t, h.p_t, h.hd);
  store(out, C, o_t, h.hd);
}

// One (sentence, head) pair backward: grad_out's columns of this head -> its q, k, v columns
// of grad_qkv.
template <typename scalar_t>
void backward_pair(WordHead<scalar_t>& h, const scalar_t* qkv, const scalar_t* grad_out,
                   scalar_t* grad_qkv, int64_t C, float scale) {
  constexpr int N = kWords;
  const int hd = h.hd;
  float go_t[kMaxHeadDim * N], dq_t[kMaxHeadDim * N], dk_t[kMaxHeadDim * N],
      dv_t[kMaxHeadDim * N];
  float p[N * N], ds_t[N * N], ds[N * N], dot[N];
  h.load(qkv, C);
  h.attend(scale);
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < hd; ++d) go_t[d * N + i] = static_cast<float>(grad_out[i * C + d]);
  transpose(p, h.p_t);     // p[i, j]
  mix(dv_t, go_t, p, hd);  // dv[j, d] = sum_i p[i, j] dout[i, d]
  // ds_t[j, i] = dp[i, j] = dout_i . v_j, then the softmax backward, times scale.
  for (int x = 0; x < N * N; ++x) ds_t[x] = 0;
  for (int j = 0; j < N; ++j)
    for (int d = 0; d < hd; ++d) {
      const float v = h.v_t[d * N + j];
#pragma omp simd
      for (int i = 0; i < N; ++i) ds_t[j * N + i] += v * go_t[d * N + i];
    }
  for (int i = 0; i < N; ++i) dot[i] = 0;
  for (int j = 0; j < N; ++j)
#pragma omp simd
    for (int i = 0; i < N; ++i) dot[i] += h.p_t[j * N + i] * ds_t[j * N + i];
  for (int j = 0; j < N; ++j)
#pragma omp simd
    for (int i = 0; i < N; ++i)
      ds_t[j * N + i] = h.p_t[j * N + i] * (ds_t[j * N + i] - dot[i]) * scale;
  mix(dq_t, h.k_t, ds_t, hd);  // dq[i, d] = sum_j ds[i, j] k[j, d]
  transpose(ds, ds_t);
  mix(dk_t, h.q_t, ds, hd);    // dk[j, d] = sum_i ds[i, j] q[i, d]
  store(grad_qkv, 3 * C, dq_t, hd);
  store(grad_qkv + C, 3 * C, dk_t, hd);
  store(grad_qkv + 2 * C, 3 * C, dv_t, hd);
}

void check_qkv(const at::Tensor& qkv, int64_t heads) {
  TORCH_CHECK(qkv.device().is_cpu(), "word_attention runs on the CPU, got ", qkv.device());
  TORCH_CHECK(qkv.dim() == 3 && qkv.size(1) == kWords,
              "word_attention expects qkv of shape (T, 16, 3C), got ", qkv.sizes());
  TORCH_CHECK(heads > 0 && qkv.size(2) % (3 * heads) == 0, "qkv width ", qkv.size(2),
              " is not 3 * heads * head_dim for ", heads, " heads");
  TORCH_CHECK(qkv.size(2) / (3 * heads) <= kMaxHeadDim,
              "word_attention supports head dims up to ", kMaxHeadDim);
}

// Storage dtypes; the arithmetic is float for all of them.
#define PAIR_DTYPES(...)                         \
  AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)      \
  AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__)   \
  AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__)

// Runs fn(pair, sentence, column offset) for every (sentence, head) pair, in parallel.
template <typename scalar_t, typename Fn>
void for_each_pair(int64_t T, int64_t heads, int64_t hd, const Fn& fn) {
  at::parallel_for(0, T * heads, 16, [&](int64_t begin, int64_t end) {
    WordHead<scalar_t> h;
    h.hd = hd;
    for (int64_t th = begin; th < end; ++th) fn(h, th / heads, th % heads * hd);
  });
}

// qkv: (T, 16, 3C) -> (T, 16, C)
at::Tensor word_attention(const at::Tensor& qkv_in, int64_t heads, double scale) {
  check_qkv(qkv_in, heads);
  const at::Tensor qkv = qkv_in.contiguous();
  const int64_t T = qkv.size(0), C = qkv.size(2) / 3, hd = C / heads;
  at::Tensor out = at::empty({T, kWords, C}, qkv.options());
  AT_DISPATCH_SWITCH(qkv.scalar_type(), "word_attention", PAIR_DTYPES([&] {
    const scalar_t* src = qkv.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    for_each_pair<scalar_t>(T, heads, hd, [&](WordHead<scalar_t>& h, int64_t t, int64_t off) {
      forward_pair(h, src + t * kWords * 3 * C + off, dst + t * kWords * C + off, C,
                   static_cast<float>(scale));
    });
  }));
  return out;
}

// grad: (T, 16, C), qkv: (T, 16, 3C) -> grad of qkv, (T, 16, 3C)
at::Tensor word_attention_backward(const at::Tensor& grad_in, const at::Tensor& qkv_in,
                                   int64_t heads, double scale) {
  check_qkv(qkv_in, heads);
  const at::Tensor qkv = qkv_in.contiguous();
  const at::Tensor grad = grad_in.to(qkv.scalar_type()).contiguous();
  const int64_t T = qkv.size(0), C = qkv.size(2) / 3, hd = C / heads;
  TORCH_CHECK(grad.sizes() == at::IntArrayRef({T, kWords, C}), "word_attention_backward: grad ",
              grad.sizes(), " does not match qkv ", qkv.sizes());
  at::Tensor grad_qkv = at::empty_like(qkv);
  AT_DISPATCH_SWITCH(qkv.scalar_type(), "word_attention_backward", PAIR_DTYPES([&] {
    const scalar_t* src = qkv.const_data_ptr<scalar_t>();
    const scalar_t* g = grad.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_qkv.mutable_data_ptr<scalar_t>();
    for_each_pair<scalar_t>(T, heads, hd, [&](WordHead<scalar_t>& h, int64_t t, int64_t off) {
      backward_pair(h, src + t * kWords * 3 * C + off, g + t * kWords * C + off,
                    dst + t * kWords * 3 * C + off, C, static_cast<float>(scale));
    });
  }));
  return grad_qkv;
}

}  // namespace

TORCH_LIBRARY(tnt_backbone, m) {
  m.def("word_attention(Tensor qkv, int heads, float scale) -> Tensor");
  m.def("word_attention_backward(Tensor grad, Tensor qkv, int heads, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(tnt_backbone, CPU, m) {
  m.impl("word_attention", &word_attention);
  m.impl("word_attention_backward", &word_attention_backward);
}

}  // namespace tnt_backbone

// Importing the module (tnt_backbone._ext) loads the library, which registers the operators
// above under torch.ops.tnt_backbone; the module itself has no Python functions.
PyMODINIT_FUNC PyInit__ext(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
