// ResNets: CIFAR-style (He et al. 2016: 6n+2 layers, 16/32/64 channels) and ImageNet-style
// (torchvision resnet18/34/50), one class, variants as arguments. Parameter names follow
// torchvision (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, fc).
#include "models/resnet.hpp"

#include "models/registry.hpp"

namespace ventral {

TimeBatchNormImpl::TimeBatchNormImpl(int64_t channels, int64_t copies) {
  norms_ = register_module("norms", torch::nn::ModuleList());
  for (int64_t t = 0; t < copies; ++t) norms_->push_back(nn::BatchNorm2d(channels));
}

torch::Tensor TimeBatchNormImpl::forward(const torch::Tensor& x, int64_t step) { return at(step).forward(x); }

nn::BatchNorm2dImpl& TimeBatchNormImpl::at(int64_t step) {
  return *norms_->ptr<nn::BatchNorm2dImpl>(std::min<int64_t>(step, copies() - 1));
}

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, char shortcut, int64_t norm_copies)
    : stride_(stride) {
  conv1 = register_module("conv1", nn::conv(in, planes, 3, stride));
  conv2 = register_module("conv2", nn::conv(planes, planes, 3));
  if (norm_copies > 1) {
    tbn1 = register_module("bn1", TimeBatchNorm(planes, norm_copies));
    tbn2 = register_module("bn2", TimeBatchNorm(planes, norm_copies));
  } else {
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  }
  if (stride != 1 || in != planes) {
    if (shortcut == 'A') {
      pad_channels_ = planes - in;
    } else {
      downsample = register_module(
          "downsample", torch::nn::Sequential(nn::conv(in, planes, 1, stride), nn::BatchNorm2d(planes)));
    }
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x, int64_t step) {
  // The ReLUs run in place on the batch norms' outputs (batch norm's backward reads its input,
  // not its output), as torchvision's ResNet does in training too; without autograd the residual
  // sum and its ReLU are one pass (ATen's _add_relu). nn::conv_bn_relu chooses (models/layers.hpp).
  nn::BatchNorm2dImpl &norm1 = bn1 ? *bn1 : tbn1->at(step), &norm2 = bn2 ? *bn2 : tbn2->at(step);
  if (torch::Tensor fused = nn::fused_conv_bn(*conv1, norm1, x, {}, true); fused.defined()) {
    // Inference through oneDNN's post-ops: the ReLU, and the residual sum with its ReLU, happen
    // in the convolutions' own passes (models/fused.hpp).
    torch::Tensor identity = x;
    if (downsample) {
      auto& conv = *downsample[0]->as<nn::Conv2dImpl>();
      auto& norm = *downsample[1]->as<nn::BatchNorm2dImpl>();
      identity = nn::fused_conv_bn(conv, norm, x, {}, false);
      if (!identity.defined()) identity = downsample->forward(x);
    } else if (pad_channels_ > 0 || stride_ != 1) {
      identity = shortcut_a(x);
    }
    torch::Tensor out = nn::fused_conv_bn(*conv2, norm2, fused, identity, true);
    if (out.defined()) return out;
    out = nn::conv_bn(*conv2, norm2, fused);
    return at::_add_relu_(out, identity);
  }
  torch::Tensor out = nn::conv_bn_relu(*conv1, norm1, x);
  torch::Tensor identity = x;
  if (downsample) {
    identity = downsample->forward(x);
  } else if (pad_channels_ > 0 || stride_ != 1) {
    identity = shortcut_a(x);
  }
  return nn::conv_bn_relu(*conv2, norm2, out, identity);
}

torch::Tensor BasicBlockImpl::shortcut_a(const torch::Tensor& x) const {
  // Option A: subsample and zero-pad the channels, half on each side.
  using namespace torch::indexing;
  torch::Tensor identity = x.index({Slice(), Slice(), Slice(None, None, stride_), Slice(None, None, stride_)});
  return torch::constant_pad_nd(identity, {0, 0, 0, 0, pad_channels_ / 2, pad_channels_ - pad_channels_ / 2});
}

BottleneckImpl::BottleneckImpl(int64_t in, int64_t planes, int64_t stride) {
  conv1 = register_module("conv1", nn::conv(in, planes, 1));
  bn1 = register_module("bn1", nn::BatchNorm2d(planes));
  conv2 = register_module("conv2", nn::conv(planes, planes, 3, stride));
  bn2 = register_module("bn2", nn::BatchNorm2d(planes));
  conv3 = register_module("conv3", nn::conv(planes, planes * expansion, 1));
  bn3 = register_module("bn3", nn::BatchNorm2d(planes * expansion));
  if (stride != 1 || in != planes * expansion)
    downsample = register_module("downsample", torch::nn::Sequential(nn::conv(in, planes * expansion, 1, stride),
                                                                     nn::BatchNorm2d(planes * expansion)));
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = torch::relu(bn1(conv1(x)));
  out = torch::relu(bn2(conv2(out)));
  out = bn3(conv3(out));
  return torch::relu(out + (downsample ? downsample->forward(x) : x));
}

void init_resnet_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2dImpl>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    } else if (auto* gn = m->as<torch::nn::GroupNormImpl>()) {
      gn->weight.fill_(1.0);
      gn->bias.zero_();
    }
  }
}

namespace {

struct ResNetSpec {
  bool bottleneck = false;
  std::vector<int64_t> blocks;  ///< blocks per stage
  std::vector<int64_t> widths;  ///< planes per stage
  bool cifar = false;           ///< CIFAR stem (3×3, no pool) and shortcut option
};

class ResNetImpl : public VisionModelImpl {
 public:
  ResNetImpl(const ResNetSpec& spec, const ModelOptions& o) {
    int64_t w0 = spec.widths[0];
    small_stem_ = spec.cifar || o.stem == "small" || (o.stem == "auto" && o.image_size < 64);
    conv1 = register_module("conv1", small_stem_ ? nn::conv(o.in_channels, w0, 3)
                                                 : nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, w0, 7)
                                                                  .stride(2).padding(3).bias(false)));
    bn1 = register_module("bn1", nn::BatchNorm2d(w0));
    char shortcut = spec.cifar ? o.shortcut.at(0) : 'B';
    int64_t in = w0;
    for (size_t s = 0; s < spec.blocks.size(); ++s) {
      auto layer = torch::nn::Sequential();
      for (int64_t b = 0; b < spec.blocks[s]; ++b) {
        int64_t stride = (b == 0 && s > 0) ? 2 : 1;
        if (spec.bottleneck) {
          layer->push_back(Bottleneck(in, spec.widths[s], stride));
          in = spec.widths[s] * BottleneckImpl::expansion;
        } else {
          layer->push_back(BasicBlock(in, spec.widths[s], stride, shortcut));
          in = spec.widths[s];
        }
      }
      layers_.push_back(register_module("layer" + std::to_string(s + 1), layer));
    }
    fc = register_module("fc", nn::Linear(in, o.num_classes));
    init_resnet_weights(*this);
  }

  std::vector<torch::Tensor> forward(const torch::Tensor& images, int64_t) override {
    torch::Tensor x = nn::fused_conv_bn(*conv1, *bn1, images, {}, true);
    if (!x.defined()) x = nn::conv_bn_relu(*conv1, *bn1, images);
    if (!small_stem_) x = torch::max_pool2d(x, 3, 2, 1);
    record("stem", 0, x);
    for (size_t s = 0; s < layers_.size(); ++s) {
      x = layers_[s]->forward(x);
      record("layer" + std::to_string(s + 1), 0, x);
    }
    return {fc(nn::global_pool(x))};
  }

  std::vector<std::string> areas() const override {
    std::vector<std::string> a = {"stem"};
    for (size_t s = 0; s < layers_.size(); ++s) a.push_back("layer" + std::to_string(s + 1));
    return a;
  }

 private:
  bool small_stem_ = false;
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers_;
  nn::Linear fc{nullptr};
};

}  // namespace

void register_resnet_models(ModelRegistry& registry) {
  for (int64_t depth : {20, 32, 44, 56, 110}) {
    int64_t n = (depth - 2) / 6;
    registry.add({"resnet" + std::to_string(depth), "resnet",
                  "CIFAR ResNet-" + std::to_string(depth) + " (He et al. 2016), 16/32/64 channels x" +
                      std::to_string(n) + " blocks",
                  [n](const ModelOptions& o) -> ModelPtr {
                    int64_t w = o.width ? o.width : 16;
                    return std::make_shared<ResNetImpl>(ResNetSpec{false, {n, n, n}, {w, 2 * w, 4 * w}, true}, o);
                  },
                  {"model.width", "model.shortcut"}});
  }
  struct Imagenet {
    const char* name;
    bool bottleneck;
    std::vector<int64_t> blocks;
  };
  for (const auto& m : {Imagenet{"resnet18", false, {2, 2, 2, 2}}, Imagenet{"resnet34", false, {3, 4, 6, 3}},
                        Imagenet{"resnet50", true, {3, 4, 6, 3}}}) {
    registry.add({m.name, "resnet",
                  std::string("torchvision ") + m.name + " (small-image stem below 64 px)",
                  [m](const ModelOptions& o) -> ModelPtr {
                    int64_t w = o.width ? o.width : 64;
                    return std::make_shared<ResNetImpl>(
                        ResNetSpec{m.bottleneck, m.blocks, {w, 2 * w, 4 * w, 8 * w}, false}, o);
                  },
                  {"model.width", "model.stem"}});
  }
}

}  // namespace ventral
