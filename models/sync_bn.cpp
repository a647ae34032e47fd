// Synchronised batch norm: the statistics of the global batch, summed across the processes of a
// data-parallel job, in the forward pass (mean, variance) and the backward pass (the sums the
// input gradient needs), as PyTorch's SyncBatchNorm. The weight and bias gradients stay
// per-process: the trainer's gradient all-reduce averages them with every other gradient.
#include <atomic>

#include "models/layers.hpp"

namespace ventral::nn {

namespace {

std::atomic<Collective*> g_collective{nullptr};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const std::vector<int64_t> kReduce = {0, 2, 3};  // every axis but the channels

// Per-channel [C] view as [1, C, 1, 1].
torch::Tensor channels(const torch::Tensor& t) { return t.view({1, -1, 1, 1}); }

struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  // Statistics in fp64 (sums over up to millions of activations), normalisation in fp32; the
  // output takes the input's dtype (bf16 under autocast, as torch's batch norm returns it).
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double eps, double momentum, int64_t collective_address) {
    Collective& collective = *reinterpret_cast<Collective*>(collective_address);
    const torch::Tensor x32 = x.to(torch::kFloat);
    const int64_t C = x.size(1);
    torch::Tensor stats = torch::cat({x32.sum(kReduce, false, torch::kDouble),
                                      x32.square().sum(kReduce, false, torch::kDouble),
                                      torch::full({1}, static_cast<double>(x.numel() / C), torch::kDouble)});
    std::vector<torch::Tensor> reduce{stats};
    collective.all_reduce_sum(reduce);
    stats = reduce[0];
    const double count = stats[2 * C].item<double>();
    const torch::Tensor mean = stats.slice(0, 0, C) / count;
    const torch::Tensor var = (stats.slice(0, C, 2 * C) / count - mean.square()).clamp_min(0);
    const torch::Tensor invstd = (var + eps).rsqrt().to(torch::kFloat);
    const torch::Tensor mean32 = mean.to(torch::kFloat);
    {
      torch::NoGradGuard no_grad;
      if (running_mean.defined()) {
        running_mean.mul_(1 - momentum).add_(mean32, momentum);
        running_var.mul_(1 - momentum).add_((var * (count / std::max(count - 1, 1.0))).to(torch::kFloat), momentum);
      }
    }
    const torch::Tensor xhat = (x32 - channels(mean32)) * channels(invstd);
    torch::Tensor y = weight.defined() ? xhat * channels(weight) + channels(bias) : xhat;
    ctx->save_for_backward({xhat, weight, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["collective"] = collective_address;
    ctx->saved_data["dtype"] = static_cast<int64_t>(x.scalar_type());
    return y.to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_output) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &xhat = saved[0], &weight = saved[1], &invstd = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    const torch::Tensor dy = grad_output[0].to(torch::kFloat);
    const torch::Tensor sum_dy = dy.sum(kReduce), sum_dy_xhat = (dy * xhat).sum(kReduce);
    std::vector<torch::Tensor> reduce{torch::cat({sum_dy, sum_dy_xhat})};
    reinterpret_cast<Collective*>(ctx->saved_data["collective"].toInt())->all_reduce_sum(reduce);
    const int64_t C = xhat.size(1);
    const torch::Tensor mean_dy = reduce[0].slice(0, 0, C) / count, mean_dy_xhat = reduce[0].slice(0, C, 2 * C) / count;
    const torch::Tensor scale = weight.defined() ? invstd * weight : invstd;
    torch::Tensor dx = (dy - channels(mean_dy) - xhat * channels(mean_dy_xhat)) * channels(scale);
    dx = dx.to(static_cast<torch::ScalarType>(ctx->saved_data["dtype"].toInt()));
    torch::Tensor dweight = weight.defined() ? sum_dy_xhat : torch::Tensor();
    torch::Tensor dbias = weight.defined() ? sum_dy : torch::Tensor();
    return {dx, dweight, dbias, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void set_batch_norm_collective(Collective* collective) { g_collective.store(collective); }
Collective* batch_norm_collective() { return g_collective.load(); }

torch::Tensor sync_batch_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor& running_mean, torch::Tensor& running_var, double eps, double momentum,
                              Collective& collective) {
  return SyncBatchNormFunction::apply(x, weight, bias, running_mean, running_var, eps, momentum,
                                      reinterpret_cast<int64_t>(&collective));
}

}  // namespace ventral::nn

// LibTorch 1.13's shared library keeps BatchNormImplBase<2, BatchNorm2dImpl>::pretty_print
// internal (only BatchNorm2dImpl's own vtable, emitted inside the library, refers to it). The
// vtables of a subclass (ventral::nn::BatchNorm2dImpl) refer to it too, so it is defined here,
// printing what LibTorch's prints.
namespace torch::nn {
template <>
void BatchNormImplBase<2, BatchNorm2dImpl>::pretty_print(std::ostream& stream) const {
  stream << "torch::nn::BatchNorm2d(" << this->options.num_features() << ", eps=" << this->options.eps()
         << ", momentum=";
  if (this->options.momentum().has_value()) stream << this->options.momentum().value();
  else stream << "None";
  stream << ", affine=" << this->options.affine() << ", track_running_stats=" << this->options.track_running_stats()
         << ")";
}
}  // namespace torch::nn
