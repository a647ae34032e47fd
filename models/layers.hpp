#pragma once
/// torch layers that also count their multiply-accumulates while a MacCounter is active.
/// Parameter names and behaviour are those of the torch modules they extend.
#include "models/model.hpp"

namespace ventral::nn {

class Conv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::nn::Conv2dImpl::forward(x);
    MacCounter::add(y.numel() / y.size(0) * (weight.numel() / weight.size(0)));
    return y;
  }
};
TORCH_MODULE(Conv2d);

class ConvTranspose2dImpl : public torch::nn::ConvTranspose2dImpl {
 public:
  using torch::nn::ConvTranspose2dImpl::ConvTranspose2dImpl;
  torch::Tensor forward(const torch::Tensor& x, at::IntArrayRef output_size) {
    torch::Tensor y = torch::nn::ConvTranspose2dImpl::forward(x, output_size);
    // Every input element is multiplied into Cout/groups × kh × kw outputs.
    MacCounter::add(x.numel() / x.size(0) * (weight.numel() / weight.size(0)));
    return y;
  }
};
TORCH_MODULE(ConvTranspose2d);

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

/// A k×k convolution with "same" padding and no bias (a batch norm follows).
inline Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride = 1, bool bias = false) {
  return Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(bias));
}

/// Global average pool to N × C.
inline torch::Tensor global_pool(const torch::Tensor& x) { return x.mean({2, 3}); }

/// Output side of a convolution / pooling with kernel k, stride s, padding p.
inline int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

}  // namespace ventral::nn
