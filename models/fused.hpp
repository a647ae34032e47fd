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

/// Training: relu(batch_norm(x) [+ residual]) of a training-mode batch norm (statistics of the
/// batch, running statistics updated) as one autograd operation of two passes forward and two
/// backward (models/fused_bn.cpp), where LibTorch runs four or five each way; closer to float64
/// than LibTorch's fp32 path. Off by default: it measured slower inside a whole training step at
/// 2 threads (bench/RESULTS.md); `ventral bench --fused-training on` measures it, tests run it.
bool fused_training_enabled();
void set_fused_training(bool on);
/// Batch norms run by the fused training path since the program started (for tests: it was taken).
int64_t fused_batch_norms();

/// Whether batch_norm_relu() takes x (and the residual; undefined: none): on, CPU, fp32,
/// channels-last, 4-D, 16, 32, 64, 128, 256 or 512 channels, the element count a multiple of 64,
/// more than one value per channel; the residual of x's shape, fp32 channels-last.
/// Everything else (bf16 under autocast, NCHW, CORnet's widths) takes LibTorch's path.
bool batch_norm_relu_fusable(const torch::Tensor& x, const torch::Tensor& residual);

/// relu(batch_norm(x; weight, bias) [+ residual]) over the batch's statistics, moving
/// running_mean/var by `factor` (torch's exponential_average_factor); x must be fusable.
torch::Tensor batch_norm_relu(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              const torch::Tensor& residual, torch::Tensor& running_mean, torch::Tensor& running_var,
                              double factor, double eps);

}  // namespace ventral::nn
