// Multi-head self-attention over the 16 visual words of every sentence, on the CPU.
//
// The word layer runs attention on (B * Hp * Wp) sequences of 16 words with head dim
// 6-10: a few thousand flops per (sentence, head) pair. Batched matmuls spend most of their
// time on per-matrix overhead and layout copies at that size, so here one thread solves a whole
// pair in L1, reading q, k, v straight from the qkv projection's (T, 16, 3C) output and writing
// the (T, 16, C) result that the output projection reads. The softmax is recomputed in backward
// instead of stored.
//
// Every buffer is a stack of rows of 16 values (one per query or key), held as two 8-float
// vectors (GCC/Clang vector extensions: one AVX register each, or two SSE ones), so that all
// the arithmetic is row-wise vector code whatever the head dim.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <Python.h>
#include <torch/library.h>

#include <cstdint>

#include "vec_math.h"

namespace tnt_backbone {
namespace {

constexpr int kWords = 16;
constexpr int kMaxHeadDim = 64;

// A row of kWords values.
struct Row {
  Vec lo, hi;

  float& operator[](int i) { return reinterpret_cast<float*>(this)[i]; }
  float operator[](int i) const { return reinterpret_cast<const float*>(this)[i]; }
};
static_assert(kWords == 2 * kLanes, "a Row holds two vectors");

// out[m] = sum_k a[m, k] * b[k] for a row-major (M, K) matrix a and K rows b.
inline void combine_rows(Row* __restrict out, const float* __restrict a,
                         const Row* __restrict b, int M, int K) {
  for (int m = 0; m < M; ++m) {
    Vec lo = {}, hi = {};
    for (int k = 0; k < K; ++k) {
      const float x = a[m * K + k];
      lo += x * b[k].lo;
      hi += x * b[k].hi;
    }
    out[m] = {lo, hi};
  }
}

inline void transpose(Row* __restrict dst, const Row* __restrict src) {
  for (int j = 0; j < kWords; ++j)
    for (int i = 0; i < kWords; ++i) dst[i][j] = src[j][i];
}

// One (sentence, head) pair. Rows indexed by a head-dim channel (q_t, k_t, v_t: (hd, N)) hold
// its value for each word; k and v also come word-major, (N, hd); p_t is (key, query).
template <typename scalar_t>
struct WordHead {
  static constexpr int N = kWords;

  int hd;
  Row q_t[kMaxHeadDim], k_t[kMaxHeadDim], v_t[kMaxHeadDim];
  float k[N * kMaxHeadDim], v[N * kMaxHeadDim];
  Row p_t[N];

  // rows: this head's q of word 0 in a (N, 3C) block; k and v are C and 2C further on.
  // The forward reads q_t, k and v_t; only the backward also needs k_t and v.
  template <bool kForBackward>
  void load(const scalar_t* __restrict rows, int64_t C, float scale) {
    for (int i = 0; i < N; ++i) {
      const scalar_t* r = rows + i * 3 * C;
      for (int d = 0; d < hd; ++d) {
        q_t[d][i] = static_cast<float>(r[d]) * scale;
        k[i * hd + d] = static_cast<float>(r[C + d]);
        v_t[d][i] = static_cast<float>(r[2 * C + d]);
        if constexpr (kForBackward) {
          k_t[d][i] = k[i * hd + d];
          v[i * hd + d] = v_t[d][i];
        }
      }
    }
  }

  // p_t[j, i] = softmax over keys j of q_i . k_j (q_t holds scale * q).
  void attend() {
    combine_rows(p_t, k, q_t, N, hd);
    Row max = p_t[0];
    for (int j = 1; j < N; ++j) {
      max.lo = p_t[j].lo > max.lo ? p_t[j].lo : max.lo;
      max.hi = p_t[j].hi > max.hi ? p_t[j].hi : max.hi;
    }
    Vec sum_lo = {}, sum_hi = {};
    for (int j = 0; j < N; ++j) {
      p_t[j].lo = exp_nonpositive(p_t[j].lo - max.lo);
      p_t[j].hi = exp_nonpositive(p_t[j].hi - max.hi);
      sum_lo += p_t[j].lo;
      sum_hi += p_t[j].hi;
    }
    sum_lo = 1.f / sum_lo;
    sum_hi = 1.f / sum_hi;
    for (int j = 0; j < N; ++j) {
      p_t[j].lo *= sum_lo;
      p_t[j].hi *= sum_hi;
    }
  }
};

// Writes hd rows (one per channel) to the columns of a (N, row_len) block.
template <typename scalar_t>
inline void store(scalar_t* __restrict block, int64_t row_len, const Row* __restrict rows,
                  int hd) {
  for (int i = 0; i < kWords; ++i)
    for (int d = 0; d < hd; ++d) block[i * row_len + d] = static_cast<scalar_t>(rows[d][i]);
}

// One (sentence, head) pair forward: the head's (16, hd) output into its columns of out.
template <typename scalar_t>
void forward_pair(WordHead<scalar_t>& h, const scalar_t* qkv, scalar_t* out, int64_t C,
                  float scale) {
  Row o_t[kMaxHeadDim];
  h.template load<false>(qkv, C, scale);
  h.attend();
  combine_rows(o_t, reinterpret_cast<const float*>(h.v_t), h.p_t, h.hd, kWords);
  store(out, C, o_t, h.hd);
}

// One (sentence, head) pair backward: grad_out's columns of this head -> its q, k, v columns
// of grad_qkv.
template <typename scalar_t>
void backward_pair(WordHead<scalar_t>& h, const scalar_t* qkv, const scalar_t* grad_out,
                   scalar_t* grad_qkv, int64_t C, float scale) {
  constexpr int N = kWords;
  const int hd = h.hd;
  Row go_t[kMaxHeadDim], dq_t[kMaxHeadDim], dk_t[kMaxHeadDim], dv_t[kMaxHeadDim];
  Row p[N], ds_t[N], ds[N];
  h.template load<true>(qkv, C, scale);
  h.attend();
  for (int i = 0; i < N; ++i)
    for (int d = 0; d < hd; ++d) go_t[d][i] = static_cast<float>(grad_out[i * C + d]);
  const float* go_rows = reinterpret_cast<const float*>(go_t);
  transpose(p, h.p_t);
  combine_rows(dv_t, go_rows, p, hd, N);  // dv[j, d] = sum_i p[i, j] dout[i, d]
  combine_rows(ds_t, h.v, go_t, N, hd);   // ds_t[j, i] = dp[i, j] = dout_i . v_j
  // Softmax backward: ds = p * (dp - sum_j p dp), the gradient of the scaled scores.
  Vec dot_lo = {}, dot_hi = {};
  for (int j = 0; j < N; ++j) {
    dot_lo += h.p_t[j].lo * ds_t[j].lo;
    dot_hi += h.p_t[j].hi * ds_t[j].hi;
  }
  for (int j = 0; j < N; ++j) {
    ds_t[j].lo = h.p_t[j].lo * (ds_t[j].lo - dot_lo);
    ds_t[j].hi = h.p_t[j].hi * (ds_t[j].hi - dot_hi);
  }
  transpose(ds, ds_t);
  // dk[j, d] = sum_i ds[i, j] (scale * q)[i, d]
  combine_rows(dk_t, reinterpret_cast<const float*>(h.q_t), ds, hd, N);
  for (int j = 0; j < N; ++j) {
    ds_t[j].lo *= scale;
    ds_t[j].hi *= scale;
  }
  // dq[i, d] = sum_j scale * ds[i, j] k[j, d]
  combine_rows(dq_t, reinterpret_cast<const float*>(h.k_t), ds_t, hd, N);
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
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ext", nullptr, -1, nullptr,
                                      nullptr, nullptr, nullptr, nullptr};
  return PyModule_Create(&module);
}
