#pragma once
/// Residual blocks shared by the plain ResNets and the weight-shared ResNet.
#include "models/layers.hpp"

namespace ventral {

/// A batch norm per time step: the weight-shared ResNet and the cortical net unroll one set of
/// conv weights but keep normalisation statistics per step (CORnet-S: "need BatchNorm for each
/// time step for training to work well"). Step t beyond the last copy uses the last copy, so
/// a model trained for T steps runs at any step count.
class TimeBatchNormImpl : public torch::nn::Module {
 public:
  TimeBatchNormImpl(int64_t channels, int64_t copies);
  torch::Tensor forward(const torch::Tensor& x, int64_t step);
  int64_t copies() const { return static_cast<int64_t>(norms_->size()); }
  /// The norm used at `step`.
  nn::BatchNorm2dImpl& at(int64_t step);

 private:
  torch::nn::ModuleList norms_;
};
TORCH_MODULE(TimeBatchNorm);

/// torchvision's BasicBlock (two 3×3 convs + identity or projection shortcut). With
/// `norm_copies` > 1 its batch norms become per-step (names bn1.0, bn1.1, ...), which is how
/// the weight-shared ResNet reuses it.
class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  /// shortcut: 'B' projection (1×1 conv + BN, torchvision's `downsample`) or 'A' zero padding
  /// (parameter-free, He et al. CIFAR option A) when shape changes.
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, char shortcut = 'B', int64_t norm_copies = 1);
  torch::Tensor forward(const torch::Tensor& x, int64_t step = 0);

 protected:
  FORWARD_HAS_DEFAULT_ARGS({1, torch::nn::AnyValue(int64_t(0))})

 private:
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  // Exactly one of each pair is set: plain BN (torchvision names) or per-step BN.
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  TimeBatchNorm tbn1{nullptr}, tbn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
  int64_t pad_channels_ = 0, stride_ = 1;
  torch::Tensor shortcut_a(const torch::Tensor& x) const;
};
TORCH_MODULE(BasicBlock);

/// torchvision's Bottleneck (1×1, 3×3 with the stride, 1×1 ×4).
class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

/// torchvision's weight initialisation: Kaiming normal (fan_out) for convs, BN to (1, 0).
void init_resnet_weights(torch::nn::Module& module);

}  // namespace ventral
