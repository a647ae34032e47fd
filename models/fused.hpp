#pragma once
/// Inference convolutions with the element-wise work after them fused in, through oneDNN (the
/// library LibTorch's convolutions run on) called directly: a residual sum, a drive summed over
/// several convolutions and the ReLU become post-ops of the convolution's own pass over its
/// output, where LibTorch runs one more pass over the activations for each.
///
/// Only where nothing needs them separately: no autograd, CPU, channels-last tensors (what
/// `memory_format: auto` gives the models that use this), dilation 1, one group; fp32, or bf16
/// under bf16 autocast (the convolution and its post-ops in bf16 with fp32 accumulation, as
/// LibTorch's bf16 convolution, where oneDNN runs bf16 on this CPU). Everywhere else
/// callers take LibTorch's path, which is also the reference the fused path is tested against
/// (tests/test_models.cpp, after real training steps).
#include <torch/torch.h>

namespace ventral::nn {

/// Whether fused inference is on (the default). Off, every model runs LibTorch's operations
/// one by one: for tests and benchmarks comparing the two.
bool fused_inference_enabled();
void set_fused_inference(bool on);
/// Convolutions run by the fused path since the program started (for tests: it was taken).
int64_t fused_convolutions();

/// Whether oneDNN runs bf16 convolutions on this CPU (natively, or emulated on AVX-512 cores):
/// without them, bf16 inference takes LibTorch's path.
bool fused_bf16_supported();

/// Whether a convolution of `x` with `weight` can take the fused path (see above).
bool fusable(const torch::Tensor& x, const torch::Tensor& weight);

/// relu?(conv(x, weight, bias) + add) in one pass, into a new channels-last tensor (fp32, or bf16
/// under bf16 autocast). `bias` and `add` may be undefined (none); `add` has the output's shape.
torch::Tensor fused_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, const torch::Tensor& add, bool relu);

/// out = relu?(out + conv(x, weight)) in place: one more term of a sum of convolutions, in the
/// convolution's pass. `out` is a channels-last tensor of the output's shape, in the type
/// fused_conv() gives.
void fused_conv_into(torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& weight, at::IntArrayRef stride,
                     at::IntArrayRef padding, bool relu);

}  // namespace ventral::nn
