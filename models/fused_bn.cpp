// Training batch norm + (residual +) ReLU as one autograd operation over channels-last fp32
// activations (models/fused.hpp). LibTorch runs it as four passes forward (two for the
// statistics, the normalisation, the ReLU; five with a residual sum) and five backward (the
// ReLU's gradient, then the batch norm's reduction and its input gradient, plus the
// gradients' sum); here it is two and two. The kernels see the activations as one flat float
// array whose channel repeats with period C and work in units of P = max(C, 64) floats: each
// unit's per-channel parameters and accumulators are NV = P / 16 vectors, a compile-time
// constant, so the accumulators stay in registers (with them in memory, the reductions ran at
// a third of this speed: bench/RESULTS.md).
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "models/fused.hpp"

namespace ventral::nn {

namespace {

// Off by default: on a 2-core AMD EPYC it ran resnet20 training at 0.95x at 2 threads (1.12x at
// 1 thread), although each of its passes is faster than LibTorch's in isolation
// (bench/RESULTS.md, "Fused training batch norm").
std::atomic<bool> enabled{false};
std::atomic<int64_t> runs{0};

// 16 floats, whatever the instruction set (one AVX-512 register, two AVX2 ones, four SSE ones), read
// and written at any float's alignment. Passing one by value changes ABI between instruction sets
// (GCC's -Wpsabi note), which is harmless here: every function taking one is inlined.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v16 __attribute__((vector_size(64), aligned(4)));

// One version per instruction set, chosen when the program loads (no -march needed).
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define INLINE static inline __attribute__((always_inline))

INLINE v16 ld(const float* p) { return *reinterpret_cast<const v16*>(p); }
INLINE void st(float* p, v16 v) { *reinterpret_cast<v16*>(p) = v; }

// Units summed in float before the sums move into double: float error stays that of 32 terms.
constexpr int64_t kFlush = 32;

// s1 += Σ(x − pivot), s2 += Σ(x − pivot)² over units [u0, u1) (the pivot, a value of each
// channel, keeps E[d²] − E[d]² from cancelling when the mean is large against the spread).
template <int NV>
INLINE void stats_t(const float* x, int64_t u0, int64_t u1, const float* pivot, double* s1, double* s2) {
  v16 p[NV], a[NV], b[NV];
  // Double sums on this thread's stack, added to the caller's once: slots of two threads
  // written at every flush would share a cache line (3x slower with 2 threads, measured).
  double t1[NV * 16] = {}, t2[NV * 16] = {};
  for (int k = 0; k < NV; ++k) p[k] = ld(pivot + 16 * k);
  for (int64_t u = u0; u < u1;) {
    const int64_t end = std::min(u1, u + kFlush);
    for (int k = 0; k < NV; ++k) a[k] = b[k] = v16{};
    for (; u < end; ++u) {
      const float* q = x + u * NV * 16;
      for (int k = 0; k < NV; ++k) {
        const v16 d = ld(q + 16 * k) - p[k];
        a[k] += d;
        b[k] += d * d;
      }
    }
    for (int k = 0; k < NV; ++k)
      for (int j = 0; j < 16; ++j) t1[16 * k + j] += a[k][j], t2[16 * k + j] += b[k][j];
  }
  for (int i = 0; i < NV * 16; ++i) s1[i] += t1[i], s2[i] += t2[i];
}

// The ReLU's input from d = x − mean: d·scale + β [+ res] (scale = γ/σ). Forward and backward
// both compute it through this one function, so the backward's mask is the forward's, bit for
// bit. (x·scale + (β − mean·scale), one operation fewer, loses the small values to cancellation
// when the mean is large against σ.)
INLINE v16 pre_relu(v16 d, v16 scale, v16 beta, const float* res, int64_t o) {
  v16 v = d * scale + beta;
  if (res) v += ld(res + o);
  return v;
}

// y = max(0, (x − mean)·scale + β [+ res]).
template <int NV>
INLINE void apply_t(const float* x, const float* res, float* y, int64_t u0, int64_t u1, const float* mean,
                    const float* scale, const float* beta) {
  v16 m[NV], sc[NV], be[NV];
  for (int k = 0; k < NV; ++k) m[k] = ld(mean + 16 * k), sc[k] = ld(scale + 16 * k), be[k] = ld(beta + 16 * k);
  const v16 zero{};
  for (int64_t u = u0; u < u1; ++u) {
    for (int k = 0; k < NV; ++k) {
      const int64_t o = (u * NV + k) * 16;
      const v16 v = pre_relu(ld(x + o) - m[k], sc[k], be[k], res, o);
      st(y + o, v > zero ? v : zero);
    }
  }
}

// gm = g where the ReLU passed, else 0 (the mask recomputed from x, not read from a saved
// output): sg += Σ gm, sgx += Σ gm·(x − mean); gm written to gres (the residual's gradient)
// when given.
template <int NV>
INLINE void grad_stats_t(const float* g, const float* x, const float* res, float* gres, int64_t u0, int64_t u1,
                         const float* mean, const float* scale, const float* beta, double* sg, double* sgx) {
  v16 m[NV], sc[NV], be[NV], a[NV], b[NV];
  double t1[NV * 16] = {}, t2[NV * 16] = {};  // as in stats_t
  for (int k = 0; k < NV; ++k) m[k] = ld(mean + 16 * k), sc[k] = ld(scale + 16 * k), be[k] = ld(beta + 16 * k);
  const v16 zero{};
  for (int64_t u = u0; u < u1;) {
    const int64_t end = std::min(u1, u + kFlush);
    for (int k = 0; k < NV; ++k) a[k] = b[k] = v16{};
    for (; u < end; ++u) {
      for (int k = 0; k < NV; ++k) {
        const int64_t o = (u * NV + k) * 16;
        const v16 d = ld(x + o) - m[k];
        const v16 gm = pre_relu(d, sc[k], be[k], res, o) > zero ? ld(g + o) : zero;
        a[k] += gm;
        b[k] += gm * d;
        if (gres) st(gres + o, gm);
      }
    }
    for (int k = 0; k < NV; ++k)
      for (int j = 0; j < 16; ++j) t1[16 * k + j] += a[k][j], t2[16 * k + j] += b[k][j];
  }
  for (int i = 0; i < NV * 16; ++i) sg[i] += t1[i], sgx[i] += t2[i];
}

// dx = k1·gm − k2 − k3·(x − mean), gm as in grad_stats_t (read back from gres when given).
template <int NV>
INLINE void grad_apply_t(const float* g, const float* x, const float* res, const float* gres, float* dx, int64_t u0,
                         int64_t u1, const float* mean, const float* scale, const float* beta, const float* k1,
                         const float* k2, const float* k3) {
  v16 m[NV], sc[NV], be[NV], a[NV], b[NV], c[NV];
  for (int k = 0; k < NV; ++k) {
    m[k] = ld(mean + 16 * k), sc[k] = ld(scale + 16 * k), be[k] = ld(beta + 16 * k);
    a[k] = ld(k1 + 16 * k), b[k] = ld(k2 + 16 * k), c[k] = ld(k3 + 16 * k);
  }
  const v16 zero{};
  for (int64_t u = u0; u < u1; ++u) {
    for (int k = 0; k < NV; ++k) {
      const int64_t o = (u * NV + k) * 16;
      const v16 d = ld(x + o) - m[k];
      const v16 gm = gres ? ld(gres + o) : pre_relu(d, sc[k], be[k], res, o) > zero ? ld(g + o) : zero;
      st(dx + o, a[k] * gm - b[k] - c[k] * d);
    }
  }
}

// A unit of nv vectors: 4 (16, 32 or 64 channels), 8, 16 or 32 (128, 256, 512 channels); no
// other channel count reaches the kernels (batch_norm_relu_fusable).
#define VENTRAL_BY_NV(nv, CALL) \
  switch (nv) {                 \
    case 4: CALL(4); break;     \
    case 8: CALL(8); break;     \
    case 16: CALL(16); break;   \
    case 32: CALL(32); break;   \
  }

CLONES void stats_pass(int nv, const float* x, int64_t u0, int64_t u1, const float* pivot, double* s1, double* s2) {
#define VENTRAL_CALL(N) stats_t<N>(x, u0, u1, pivot, s1, s2)
  VENTRAL_BY_NV(nv, VENTRAL_CALL)
#undef VENTRAL_CALL
}
CLONES void apply_pass(int nv, const float* x, const float* res, float* y, int64_t u0, int64_t u1, const float* mean,
                       const float* scale, const float* beta) {
#define VENTRAL_CALL(N) apply_t<N>(x, res, y, u0, u1, mean, scale, beta)
  VENTRAL_BY_NV(nv, VENTRAL_CALL)
#undef VENTRAL_CALL
}
CLONES void grad_stats_pass(int nv, const float* g, const float* x, const float* res, float* gres, int64_t u0, int64_t u1,
                       const float* mean, const float* scale, const float* beta, double* sg, double* sgx) {
#define VENTRAL_CALL(N) grad_stats_t<N>(g, x, res, gres, u0, u1, mean, scale, beta, sg, sgx)
  VENTRAL_BY_NV(nv, VENTRAL_CALL)
#undef VENTRAL_CALL
}
CLONES void grad_apply_pass(int nv, const float* g, const float* x, const float* res, const float* gres, float* dx,
                       int64_t u0, int64_t u1, const float* mean, const float* scale, const float* beta,
                       const float* k1, const float* k2, const float* k3) {
#define VENTRAL_CALL(N) grad_apply_t<N>(g, x, res, gres, dx, u0, u1, mean, scale, beta, k1, k2, k3)
  VENTRAL_BY_NV(nv, VENTRAL_CALL)
#undef VENTRAL_CALL
}

// The geometry of one call: C channels, P floats per unit, U units.
struct Shape {
  int64_t C, P, U;
  int nv() const { return static_cast<int>(P / 16); }
};

// Units split into at most one chunk per thread (at least 64 units each); chunk i's partial sums
// go to slot i and are added in slot order, so the result depends on the thread count only, as
// LibTorch's own reductions do.
template <class F>
int64_t chunked(int64_t U, F f) {
  const int64_t n = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), U / 64));
  const int64_t per = (U + n - 1) / n;
  at::parallel_for(0, n, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) f(i, i * per, std::min(U, (i + 1) * per));
  });
  return n;
}

// Per-channel values replicated to a unit's P floats.
std::vector<float> per_unit(const std::vector<double>& channel, int64_t P) {
  std::vector<float> out(P);
  for (int64_t i = 0; i < P; ++i) out[i] = static_cast<float>(channel[i % channel.size()]);
  return out;
}

// Sums over the P slots of `n` chunks folded to C channels.
std::vector<double> per_channel(const std::vector<double>& slots, int64_t n, const Shape& s) {
  std::vector<double> out(s.C, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < s.P; ++j) out[j % s.C] += slots[i * s.P + j];
  return out;
}

torch::Tensor vector_tensor(const std::vector<float>& v) { return torch::tensor(v); }
float* fp(const torch::Tensor& t) { return t.data_ptr<float>(); }

class BatchNormRelu : public torch::autograd::Function<BatchNormRelu> {
 public:
  // Inputs: x, γ, β, the residual (an empty tensor: none); the running mean and variance (C
  // floats each) move towards the batch's by `factor`, as torch's batch norm moves them (the
  // variance unbiased). They are buffers, not inputs: autograd has nothing to do with them.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& gamma,
                               const torch::Tensor& beta, const torch::Tensor& residual, float* rm, float* rv,
                               double factor, double eps) {
    const int64_t C = x.size(1), M = x.numel() / C, P = std::max<int64_t>(C, 64);
    const Shape s{C, P, M * C / P};
    const float* xp = fp(x);
    const float* rp = residual.numel() ? fp(residual) : nullptr;
    const std::vector<double> pivot_c(xp, xp + C);
    const std::vector<float> pivot = per_unit(pivot_c, P);
    std::vector<double> s1(at::get_num_threads() * P, 0.0), s2(s1.size(), 0.0);
    const int64_t n = chunked(s.U, [&](int64_t i, int64_t u0, int64_t u1) {
      stats_pass(s.nv(), xp, u0, u1, pivot.data(), &s1[i * P], &s2[i * P]);
    });
    const std::vector<double> sum1 = per_channel(s1, n, s), sum2 = per_channel(s2, n, s);
    std::vector<double> mean(C), invstd(C), scale(C);
    const float* g = fp(gamma);
    for (int64_t c = 0; c < C; ++c) {
      const double d = sum1[c] / M, var = std::max(0.0, sum2[c] / M - d * d);
      mean[c] = pivot_c[c] + d;
      invstd[c] = 1.0 / std::sqrt(var + eps);
      scale[c] = g[c] * invstd[c];
      rm[c] = static_cast<float>((1 - factor) * rm[c] + factor * mean[c]);
      rv[c] = static_cast<float>((1 - factor) * rv[c] + factor * var * M / (M - 1));
    }
    // Per unit: mean, scale and β, the three vectors both directions read.
    std::vector<double> beta_c(fp(beta), fp(beta) + C);
    const torch::Tensor mean_u = vector_tensor(per_unit(mean, P)), scale_u = vector_tensor(per_unit(scale, P)),
                        beta_u = vector_tensor(per_unit(beta_c, P));
    torch::Tensor y = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
    float* yp = fp(y);
    chunked(s.U, [&](int64_t, int64_t u0, int64_t u1) {
      apply_pass(s.nv(), xp, rp, yp, u0, u1, fp(mean_u), fp(scale_u), fp(beta_u));
    });
    ctx->save_for_backward({x, residual, gamma, mean_u, scale_u, beta_u,
                            vector_tensor(std::vector<float>(invstd.begin(), invstd.end()))});
    ++runs;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &residual = saved[1], &gamma = saved[2], &mean_u = saved[3],
                        &scale_u = saved[4], &beta_u = saved[5], &invstd = saved[6];
    const torch::Tensor g = grad_out[0].contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t C = x.size(1), M = x.numel() / C, P = std::max<int64_t>(C, 64);
    const Shape s{C, P, M * C / P};
    const bool has_residual = residual.numel() > 0;
    const float *gp = fp(g), *xp = fp(x), *rp = has_residual ? fp(residual) : nullptr;
    torch::Tensor grad_residual = has_residual ? torch::empty_like(x, at::MemoryFormat::ChannelsLast) : torch::Tensor();
    float* grp = has_residual ? fp(grad_residual) : nullptr;
    std::vector<double> sg(at::get_num_threads() * P, 0.0), sgx(sg.size(), 0.0);
    const int64_t n = chunked(s.U, [&](int64_t i, int64_t u0, int64_t u1) {
      grad_stats_pass(s.nv(), gp, xp, rp, grp, u0, u1, fp(mean_u), fp(scale_u), fp(beta_u), &sg[i * P], &sgx[i * P]);
    });
    const std::vector<double> sum_g = per_channel(sg, n, s), sum_gx = per_channel(sgx, n, s);
    // dx = γσ⁻¹·(gm − mean(gm) − x̂·mean(gm·x̂)), x̂ = (x − μ)σ⁻¹: k1·gm − k2 − k3·(x − μ).
    std::vector<double> k1(C), k2(C), k3(C);
    torch::Tensor grad_gamma = torch::empty({C}, torch::kFloat), grad_beta = torch::empty({C}, torch::kFloat);
    for (int64_t c = 0; c < C; ++c) {
      const double is = fp(invstd)[c], gm = fp(gamma)[c];
      fp(grad_beta)[c] = static_cast<float>(sum_g[c]);
      fp(grad_gamma)[c] = static_cast<float>(sum_gx[c] * is);
      k1[c] = gm * is;
      k2[c] = gm * is * sum_g[c] / M;
      k3[c] = gm * is * is * is * sum_gx[c] / M;
    }
    const std::vector<float> k1u = per_unit(k1, P), k2u = per_unit(k2, P), k3u = per_unit(k3, P);
    torch::Tensor dx = torch::empty_like(x, at::MemoryFormat::ChannelsLast);
    float* dxp = fp(dx);
    chunked(s.U, [&](int64_t, int64_t u0, int64_t u1) {
      grad_apply_pass(s.nv(), gp, xp, rp, grp, dxp, u0, u1, fp(mean_u), fp(scale_u), fp(beta_u), k1u.data(), k2u.data(),
                      k3u.data());
    });
    return {dx, grad_gamma, grad_beta, grad_residual, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

bool channels_last_fp32(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

bool fused_training_enabled() { return enabled.load(); }
void set_fused_training(bool on) { enabled.store(on); }
int64_t fused_batch_norms() { return runs.load(); }

bool batch_norm_relu_fusable(const torch::Tensor& x, const torch::Tensor& residual) {
  if (!enabled.load() || x.dim() != 4 || !channels_last_fp32(x)) return false;
  const int64_t C = x.size(1), M = C ? x.numel() / C : 0, P = std::max<int64_t>(C, 64);
  // The channel counts the kernels are instantiated for (a unit of 4, 8, 16 or 32 vectors);
  // whole units; more than one value per channel (LibTorch's own path reports that error).
  if ((C != 16 && C != 32 && C != 64 && C != 128 && C != 256 && C != 512) || M < 2 || (M * C) % P != 0) return false;
  return !residual.defined() || (channels_last_fp32(residual) && residual.sizes() == x.sizes());
}

torch::Tensor batch_norm_relu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              const torch::Tensor& residual, torch::Tensor& running_mean, torch::Tensor& running_var,
                              double factor, double eps) {
  const int64_t C = x.size(1);
  TORCH_CHECK(batch_norm_relu_fusable(x, residual), "batch_norm_relu: input outside the fused path");
  for (const torch::Tensor* t : std::initializer_list<const torch::Tensor*>{&weight, &bias, &running_mean, &running_var})
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == torch::kFloat && t->is_contiguous() && t->dim() == 1 &&
                    t->size(0) == C,
                "batch_norm_relu: parameters and running statistics must be ", C, " contiguous floats");
  // Undefined tensors cannot be an autograd function's inputs: an empty one stands for none.
  return BatchNormRelu::apply(x, weight, bias, residual.defined() ? residual : torch::empty({0}), fp(running_mean),
                              fp(running_var), factor, eps);
}

}  // namespace ventral::nn
