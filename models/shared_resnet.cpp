// Weight-shared ResNet (Liao & Poggio 2016): each stage is one residual block applied n times,
// h_t = h_{t-1} + K(h_{t-1}) — a recurrent net with an identity skip. Batch norm is
// time-specific (one per unroll index), since "BatchNorm is independent from parameter
// sharing"; for n beyond the trained count the last trained step's BN is reused. The number
// of conv parameters does not depend on n, and n can be changed at evaluation time.
#include "models/registry.hpp"
#include "models/resnet.hpp"

namespace ventral {

namespace {

class SharedResNetImpl : public VisionModelImpl {
 public:
  /// share_all: one block for all stages (constant width); otherwise one block per stage.
  SharedResNetImpl(const ModelOptions& o, bool share_all) : share_all_(share_all) {
    steps_ = o.steps ? o.steps : 3;
    int64_t w = o.width ? o.width : (share_all ? 48 : 16);
    widths_ = share_all ? std::vector<int64_t>{w, w, w} : std::vector<int64_t>{w, 2 * w, 4 * w};
    conv1 = register_module("conv1", nn::conv(o.in_channels, w, 3));
    bn1 = register_module("bn1", nn::BatchNorm2d(w));
    for (size_t s = 1; s < widths_.size(); ++s) {
      // Stage transition: 2×2 average pool + 1×1 projection (cheap, loses no positions).
      transitions_.push_back(register_module(
          "transition" + std::to_string(s + 1),
          torch::nn::Sequential(torch::nn::AvgPool2d(2), nn::conv(widths_[s - 1], widths_[s], 1),
                                nn::BatchNorm2d(widths_[s]))));
    }
    if (share_all) {
      blocks_.push_back(register_module("block", BasicBlock(w, w, 1, 'B', steps_ * 3)));
    } else {
      for (size_t s = 0; s < widths_.size(); ++s)
        blocks_.push_back(register_module("layer" + std::to_string(s + 1),
                                          BasicBlock(widths_[s], widths_[s], 1, 'B', steps_)));
    }
    fc = register_module("fc", nn::Linear(widths_.back(), o.num_classes));
    init_resnet_weights(*this);
  }

  std::vector<torch::Tensor> forward(const torch::Tensor& images, int64_t steps) override {
    TORCH_CHECK(steps >= 1, "shared_resnet: steps must be >= 1, got ", steps);
    torch::Tensor x = nn::conv_bn_relu(*conv1, *bn1, images);
    for (size_t s = 0; s < widths_.size(); ++s) {
      if (s > 0) x = torch::relu(transitions_[s - 1]->forward(x));
      BasicBlock& block = blocks_[share_all_ ? 0 : s];
      for (int64_t t = 0; t < steps; ++t) {
        int64_t norm_step = std::min(t, steps_ - 1) + (share_all_ ? static_cast<int64_t>(s) * steps_ : 0);
        x = block->forward(x, norm_step);
        record("stage" + std::to_string(s + 1), t, x);
      }
    }
    return {fc(nn::global_pool(x))};
  }

  bool recurrent() const override { return true; }
  int64_t default_steps() const override { return steps_; }
  bool reads_out_every_step() const override { return false; }
  std::vector<std::string> areas() const override { return {"stage1", "stage2", "stage3"}; }

 private:
  bool share_all_;
  int64_t steps_;
  std::vector<int64_t> widths_;
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> transitions_;
  std::vector<BasicBlock> blocks_;
  nn::Linear fc{nullptr};
};

}  // namespace

void register_shared_resnet_models(ModelRegistry& registry) {
  registry.add({"shared_resnet", "shared_resnet",
                "weight-shared ResNet (Liao & Poggio 2016): one block per stage unrolled n times, 16/32/64",
                [](const ModelOptions& o) -> ModelPtr { return std::make_shared<SharedResNetImpl>(o, false); },
                {"model.width", "model.steps"}});
  registry.add({"shared_resnet_all", "shared_resnet",
                "weight-shared ResNet with one block shared across all three stages (width 48)",
                [](const ModelOptions& o) -> ModelPtr { return std::make_shared<SharedResNetImpl>(o, true); },
                {"model.width", "model.steps"}});
}

}  // namespace ventral
