#pragma once
/// torch layers that also count their multiply-accumulates while a MacCounter is active.
/// Parameter names and behaviour are those of the torch modules they extend.
#include <ATen/autocast_mode.h>

#include "core/collective.hpp"
#include "models/fused.hpp"
#include "models/model.hpp"

namespace ventral::nn {

/// Synchronised batch norm (train.sync_bn). While a collective is set, every nn::BatchNorm2d in
/// training mode normalises with the mean and variance of the whole global batch (its statistics
/// summed across processes by the collective, forward and backward), as PyTorch's
/// SyncBatchNorm does; nullptr (the default) restores per-process statistics. Eval mode is
/// unaffected. Set by the trainer for the length of a run.
void set_batch_norm_collective(Collective* collective);
Collective* batch_norm_collective();

/// Batch norm over whole-batch statistics gathered through `collective` (exposed for tests).
torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor& running_mean, torch::Tensor& running_var, double eps, double momentum,
                              Collective& collective);

/// torch's BatchNorm2d (same parameters and buffers, same names), synchronised across processes
/// while a batch-norm collective is set. Every batch norm of every model is one of these, so
/// train.sync_bn reaches them all (the trainer checks that none is a plain torch one).
class BatchNorm2dImpl : public torch::nn::BatchNorm2dImpl {
 public:
  using torch::nn::BatchNorm2dImpl::BatchNorm2dImpl;
  torch::Tensor forward(const torch::Tensor& x) {
    Collective* c = batch_norm_collective();
    if (!c || !is_training()) return torch::nn::BatchNorm2dImpl::forward(x);
    // The running-average factor as torch's batch norm derives it (momentum: None is the
    // cumulative average over the batches seen).
    double factor = 0;
    if (options.track_running_stats() && num_batches_tracked.defined()) {
      torch::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
      factor = options.momentum() ? *options.momentum() : 1.0 / num_batches_tracked.item<double>();
    }
    return sync_batch_norm(x, weight, bias, running_mean, running_var, options.eps(), factor, *c);
  }
};
TORCH_MODULE(BatchNorm2d);

/// MACs of a convolution per image: every output element reduces Cin/groups × kh × kw inputs.
inline void count_conv_macs(const torch::Tensor& y, const torch::Tensor& weight) {
  MacCounter::add(y.numel() / y.size(0) * (weight.numel() / weight.size(0)));
}

class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = strided_pointwise()     ? pointwise_on_subsampled(x)
                      : bf16_gradient_wrong(x) ? in_fp32(x)
                                               : torch::nn::Conv2dImpl::forward(x);
    count_conv_macs(y, weight);
    return y;
  }

 private:
  // LibTorch 1.13's oneDNN computes wrong bf16 gradients (weights and input; often NaN, else
  // garbage) for a convolution whose input is smaller than its stride along a side, i.e. whose
  // output is one pixel there: measured on an Intel Xeon with amx_bf16, every such shape with
  // kernel 3 to 7 and stride 2 to 4 was wrong, in both memory formats, and no other shape of
  // 2,640 (Python's torch too; fp32 is right). CORnet-R's IT area on 16-px images is one. Such a
  // convolution is computed in fp32: its output is a single pixel, so the island costs little
  // (tests/test_models.cpp Bf16GradientsOfAConvolutionWithAStrideAboveItsInputAreRight).
  bool bf16_gradient_wrong(const torch::Tensor& x) const {
    if (!torch::GradMode::is_enabled() || x.dim() != 4) return false;
    bool bf16 = x.scalar_type() == torch::kBFloat16 ||
                (at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == torch::kBFloat16);
    const auto& s = *options.stride();
    return bf16 && (x.size(2) < s[0] || x.size(3) < s[1]);
  }
  torch::Tensor in_fp32(const torch::Tensor& x) {
    AutocastGuard fp32(Precision::FP32);
    return torch::nn::Conv2dImpl::forward(x.to(torch::kFloat));
  }
  // A 1×1 convolution with stride s reads every s-th pixel: it is the stride-1 convolution of
  // the input subsampled first, the same products and sums. ventral computes it that way because
  // LibTorch 1.13's oneDNN backward of the strided 1×1 kernel corrupts the heap on channels-last
  // input with 2 to 8 input channels and sides from 48 px (a ResNet's projection shortcut at
  // model.width 4 or 8: SIGSEGV / "double free"; reproduced in Python with Debian's torch too;
  // tests/test_models.cpp StridedPointwiseConvolutionTrainsWhereLibTorchCrashed).
  bool strided_pointwise() const {
    const auto& o = options;
    const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
    return (*o.kernel_size())[0] == 1 && (*o.kernel_size())[1] == 1 && pad && (**pad)[0] == 0 && (**pad)[1] == 0 &&
           ((*o.stride())[0] > 1 || (*o.stride())[1] > 1) && o.groups() == 1;
  }
  torch::Tensor pointwise_on_subsampled(const torch::Tensor& x) {
    using torch::indexing::Slice;
    const auto& s = *options.stride();
    const torch::Tensor sub = x.index({Slice(), Slice(), Slice(0, torch::indexing::None, s[0]),
                                       Slice(0, torch::indexing::None, s[1])});
    const std::vector<int64_t> one = {1, 1}, zero = {0, 0};
    return torch::conv2d(sub.contiguous(x.suggest_memory_format()), weight, bias, torch::IntArrayRef(one),
                         torch::IntArrayRef(zero), torch::IntArrayRef(one), 1);
  }
};
TORCH_MODULE(Conv2d);

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::nn::LinearImpl::forward(x);
    MacCounter::add(weight.numel());
    return y;
  }
};
TORCH_MODULE(Linear);

/// A convolution followed by a batch norm. In eval mode with no gradient recorded the norm is
/// folded into the convolution (w·γ/σ, (b − μ)·γ/σ + β): one oneDNN pass instead of a
/// convolution plus a normalisation pass over the activations (resnet20 inference 1.2x,
/// `ventral bench`).
///
/// The folded weights are computed afresh on every call, never cached. A cache needs to know
/// when its sources change, and LibTorch 1.13 does not say: `optim::SGD::step()` updates
/// parameters through `.data()` and a train-mode batch norm updates its running statistics
/// inside the kernel, and neither bumps the tensors' version counters. A version-keyed cache
/// therefore served stale folds to every validation after the first (issue 20). Folding costs
/// one pass over the convolution's weights, small against a batch's activations (measured
/// in bench/RESULTS.md).
inline bool foldable(const Conv2dImpl& conv, const BatchNorm2dImpl& bn) {
  return !bn.is_training() && bn.options.affine() && bn.options.track_running_stats() &&
         c10::get_if<torch::ExpandingArray<2>>(&conv.options.padding()) &&
         c10::get_if<torch::enumtype::kZeros>(&conv.options.padding_mode());
}

/// An eval-mode batch norm's per-channel scale γ/σ and shift β − μγ/σ.
inline std::pair<torch::Tensor, torch::Tensor> bn_scale_shift(const BatchNorm2dImpl& bn) {
  torch::Tensor scale = bn.weight * torch::rsqrt(bn.running_var + bn.options.eps());
  return {scale, bn.bias - bn.running_mean * scale};
}

/// The convolution's weights scaled per output channel, in the weights' own strides (channels-last).
inline torch::Tensor scaled_weight(const Conv2dImpl& conv, const torch::Tensor& scale) {
  torch::Tensor weight = torch::empty_like(conv.weight);
  torch::mul_out(weight, conv.weight, scale.view({-1, 1, 1, 1}));
  return weight;
}

inline at::IntArrayRef conv_padding(const Conv2dImpl& conv) {
  return *c10::get<torch::ExpandingArray<2>>(conv.options.padding());
}

/// Whether models/fused.hpp's path can run this convolution on x (inference, fp32, channels-last,
/// plain geometry).
inline bool fusable(const Conv2dImpl& conv, const torch::Tensor& x) {
  const auto& o = conv.options;
  return fusable(x, conv.weight) && o.groups() == 1 && (*o.dilation())[0] == 1 && (*o.dilation())[1] == 1 &&
         c10::get_if<torch::ExpandingArray<2>>(&o.padding()) && c10::get_if<torch::enumtype::kZeros>(&o.padding_mode());
}

inline torch::Tensor conv_bn(Conv2dImpl& conv, BatchNorm2dImpl& bn, const torch::Tensor& x) {
  if (torch::GradMode::is_enabled() || !foldable(conv, bn)) return bn.forward(conv.forward(x));
  auto [scale, shift] = bn_scale_shift(bn);
  torch::Tensor weight = scaled_weight(conv, scale);
  torch::Tensor bias = conv.bias.defined() ? conv.bias * scale + shift : shift;
  const auto& o = conv.options;
  torch::Tensor y = torch::conv2d(x, weight, bias, *o.stride(), conv_padding(conv), *o.dilation(), o.groups());
  count_conv_macs(y, weight);
  return y;
}

/// relu?(conv_bn(x) + add) (`add` undefined: none) as one oneDNN pass, where models/fused.hpp's
/// path takes it; an undefined tensor otherwise, and the caller runs its own operations.
inline torch::Tensor fused_conv_bn(Conv2dImpl& conv, BatchNorm2dImpl& bn, const torch::Tensor& x,
                                   const torch::Tensor& add, bool relu) {
  if (!foldable(conv, bn) || !fusable(conv, x)) return {};
  auto [scale, shift] = bn_scale_shift(bn);
  torch::Tensor weight = scaled_weight(conv, scale);
  torch::Tensor bias = conv.bias.defined() ? conv.bias * scale + shift : shift;
  torch::Tensor y = fused_conv(x, weight, bias, *conv.options.stride(), conv_padding(conv), add, relu);
  count_conv_macs(y, weight);
  return y;
}

/// relu(y [+ residual]), in place on y where its type allows; without autograd the sum and the
/// ReLU are ATen's one fused pass (fp32; _add_relu has no backward and no bf16 kernel).
inline torch::Tensor add_relu(torch::Tensor y, const torch::Tensor& residual) {
  if (!residual.defined()) return y.relu_();
  // Under bf16 autocast the residual can be fp32, and y + residual is then fp32.
  if (y.scalar_type() != residual.scalar_type()) return torch::relu(y + residual);
  if (!torch::GradMode::is_enabled() && y.scalar_type() == torch::kFloat) return at::_add_relu_(y, residual);
  return y.add_(residual).relu_();
}

/// relu(bn(x) [+ residual]) (`residual` undefined: none). With fused training on
/// (models/fused.hpp; off by default), a training-mode batch norm over channels-last fp32
/// activations runs as one operation; everything else runs LibTorch's operations. Both are
/// tested against float64 after real training steps (tests/test_models.cpp).
inline torch::Tensor bn_relu(BatchNorm2dImpl& bn, const torch::Tensor& x, const torch::Tensor& residual = {}) {
  const auto& o = bn.options;
  if (!fused_training_enabled() || !bn.is_training() || !o.affine() || !o.track_running_stats() ||
      !bn.num_batches_tracked.defined() || batch_norm_collective() || !batch_norm_relu_fusable(x, residual))
    return add_relu(bn.forward(x), residual);
  // The running-average factor as torch's BatchNorm2d derives it (momentum None: the cumulative
  // average over the batches seen).
  double factor;
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
    factor = o.momentum() ? *o.momentum() : 1.0 / bn.num_batches_tracked.item<double>();
  }
  return batch_norm_relu(x, bn.weight, bn.bias, residual, bn.running_mean, bn.running_var, factor, o.eps());
}

/// relu(bn(conv(x)) [+ residual]): the batch norm fused with the ReLU in training (bn_relu), folded
/// into the convolution in eval mode without autograd (conv_bn).
inline torch::Tensor conv_bn_relu(Conv2dImpl& conv, BatchNorm2dImpl& bn, const torch::Tensor& x,
                                  const torch::Tensor& residual = {}) {
  if (bn.is_training()) return bn_relu(bn, conv.forward(x), residual);
  return add_relu(conv_bn(conv, bn, x), residual);
}

/// A k×k convolution with "same" padding and no bias (a batch norm follows).
inline Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, bool bias = false) {
  return Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(bias));
}

/// Global average pool to N × C.
inline torch::Tensor global_pool(const torch::Tensor& x) { return x.mean({2, 3}); }

/// Output side of a convolution / pooling with kernel k, stride s, padding p.
inline int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

}  // namespace ventral::nn
