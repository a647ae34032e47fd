// The 4-level V1 → V2 → V4 → IT network (Spoerer et al. 2017 B/BL/BT/BLT; Liao & Poggio's
// multi-state recurrent net). Each area's state at step t is
//   h_k(t) = ReLU(BN_k,t(bottom-up + lateral + top-down)),
// bottom-up: 3×3 conv of the 2×2-max-pooled area below (the image for V1);
// lateral:   3×3 conv of h_k(t−1);
// top-down:  3×3 conv of h_{k+1}(t−1) upsampled (nearest) to exactly area k's size
//            (28→14→7→3 and 32→16→8→4 both work). CPU transposed convolutions are ~2×
//            slower per step than upsampling + a regular conv here (`ventral bench`);
// BLT+ adds long-range feedback IT → V1 (bilinear upsampling + 1×1 conv).
// A global-average-pool + linear readout, shared across steps, reads IT at every step.
#include "models/registry.hpp"
#include "models/resnet.hpp"

namespace ventral {

namespace {

const std::vector<std::string> kAreas = {"V1", "V2", "V4", "IT"};

struct CorticalSpec {
  bool lateral = false, topdown = false, long_range = false;
  bool synchronous = false;       ///< every area reads step t−1 (else bottom-up within a step)
  bool input_every_step = true;
  bool cumulative_readout = false;
  int64_t steps = 4;
  std::vector<int64_t> widths;    ///< V1, V2, V4, IT channels
  std::vector<int64_t> kernels;   ///< bottom-up kernel per area
  int64_t in_channels = 1, num_classes = 10;
};

/// One visual area: the convolutions that feed it and its per-step batch norm.
class AreaImpl : public torch::nn::Module {
 public:
  AreaImpl(int64_t in, int64_t width, int64_t kernel, int64_t above, const CorticalSpec& s) {
    bottom_up = register_module("bottom_up", nn::conv(in, width, kernel));
    if (s.lateral) lateral = register_module("lateral", nn::conv(width, width, 3));
    if (s.topdown && above > 0) top_down = register_module("top_down", nn::conv(above, width, 3));
    norm = register_module("norm", TimeBatchNorm(width, s.steps));
  }
  nn::Conv2d bottom_up{nullptr}, lateral{nullptr}, top_down{nullptr};
  TimeBatchNorm norm{nullptr};
};
TORCH_MODULE(Area);

class CorticalNetImpl : public VisionModelImpl {
 public:
  explicit CorticalNetImpl(CorticalSpec spec) : spec_(std::move(spec)) {
    for (size_t k = 0; k < kAreas.size(); ++k) {
      int64_t in = k == 0 ? spec_.in_channels : spec_.widths[k - 1];
      int64_t above = k + 1 < kAreas.size() ? spec_.widths[k + 1] : 0;
      areas_.push_back(register_module(kAreas[k], Area(in, spec_.widths[k], spec_.kernels[k], above, spec_)));
    }
    if (spec_.long_range)
      long_range = register_module("long_range", nn::conv(spec_.widths[3], spec_.widths[0], 1));
    readout = register_module("readout", nn::Linear(spec_.widths[3], spec_.num_classes));
    init_resnet_weights(*this);
  }

  std::vector<torch::Tensor> forward(const torch::Tensor& images, int64_t steps) override {
    TORCH_CHECK(steps >= 1, "cortical: steps must be >= 1, got ", steps);
    const int64_t n = images.size(0);
    std::vector<std::vector<int64_t>> sizes;  // H, W per area
    int64_t h = images.size(2), w = images.size(3);
    for (size_t k = 0; k < kAreas.size(); ++k) {
      sizes.push_back({h, w});
      h /= 2, w /= 2;  // 2×2 max pooling, floor
    }
    std::vector<torch::Tensor> prev(kAreas.size()), cur(kAreas.size());
    std::vector<torch::Tensor> logits;
    torch::Tensor pooled_sum, input_drive, drive_input;
    const bool fuse = nn::fusable(*areas_[0]->bottom_up, images);
    for (int64_t t = 0; t < steps; ++t) {
      for (size_t k = 0; k < kAreas.size(); ++k) {
        Area& area = areas_[k];
        if (fuse) {  // inference: the area's convolutions, batch norm and ReLU as oneDNN passes
          std::vector<std::pair<torch::Tensor, nn::Conv2dImpl*>> terms;
          if (k == 0 && (t == 0 || spec_.input_every_step)) terms.emplace_back(step_input(t, images), area->bottom_up.get());
          const torch::Tensor& below = k == 0 ? torch::Tensor() : spec_.synchronous ? prev[k - 1] : cur[k - 1];
          if (below.defined()) terms.emplace_back(torch::max_pool2d(below, 2), area->bottom_up.get());
          if (t > 0 && area->lateral) terms.emplace_back(prev[k], area->lateral.get());
          if (t > 0 && area->top_down)
            terms.emplace_back(torch::upsample_nearest2d(prev[k + 1], sizes[k]), area->top_down.get());
          if (t > 0 && k == 0 && long_range)
            terms.emplace_back(torch::upsample_bilinear2d(prev.back(), sizes[0], /*align_corners=*/false), long_range.get());
          if (torch::Tensor h = fused_area(area->norm->at(t), terms); h.defined()) {
            cur[k] = h;
            record(kAreas[k], t, cur[k]);
            continue;
          }
        }
        // The drive is summed in place once it is a tensor of this area's own (a convolution's
        // output: its backward reads its input, not its output), never into the reused V1 drive.
        torch::Tensor drive;
        bool owned = false;
        auto add = [&](const torch::Tensor& x, bool fresh = true) {
          if (!drive.defined()) drive = x, owned = fresh;
          else if (owned && at::result_type(drive, x) == drive.scalar_type()) drive.add_(x);  // (an fp32 island under bf16 promotes)
          else drive = drive + x, owned = true;
        };
        if (k == 0) {
          if (t == 0 || spec_.input_every_step) {
            // The same image at every step gives the same bottom-up drive: computed once and
            // reused (autograd sums its gradients), still counted as work at every step.
            const torch::Tensor& input = step_input(t, images);
            if (input_drive.defined() && input.is_same(drive_input)) {
              nn::count_conv_macs(input_drive, area->bottom_up->weight);
            } else {
              input_drive = area->bottom_up(input), drive_input = input;
            }
            add(input_drive, /*fresh=*/false);
          }
        } else {
          // Synchronous: the area below as it was at t−1; sequential: as it is now.
          const torch::Tensor& below = spec_.synchronous ? prev[k - 1] : cur[k - 1];
          if (below.defined()) add(area->bottom_up(torch::max_pool2d(below, 2)));
        }
        if (t > 0 && area->lateral) add(area->lateral(prev[k]));
        if (t > 0 && area->top_down)
          add(area->top_down(torch::upsample_nearest2d(prev[k + 1], sizes[k])));
        if (t > 0 && k == 0 && long_range)
          add(long_range(torch::upsample_bilinear2d(prev.back(), sizes[0], /*align_corners=*/false)));
        if (!drive.defined())  // nothing has reached this area yet
          drive = torch::zeros({n, spec_.widths[k], sizes[k][0], sizes[k][1]}, images.options());
        cur[k] = nn::bn_relu(area->norm->at(t), drive);
        record(kAreas[k], t, cur[k]);
      }
      torch::Tensor pooled = nn::global_pool(cur.back());
      if (spec_.cumulative_readout) {
        pooled_sum = pooled_sum.defined() ? pooled_sum + pooled : pooled;
        pooled = pooled_sum / static_cast<double>(t + 1);
      }
      logits.push_back(readout(pooled));
      prev = cur;
    }
    return logits;
  }

  // ReLU(BN(Σ conv_i(x_i))) = ReLU(Σ conv_i(x_i; W_i·s) + shift): the batch norm's scale s folded
  // into every convolution, its shift into the first's bias, the sum and the ReLU into their
  // passes (models/fused.hpp). Undefined where the fused path does not take the terms.
  static torch::Tensor fused_area(nn::BatchNorm2dImpl& norm, std::vector<std::pair<torch::Tensor, nn::Conv2dImpl*>>& terms) {
    if (terms.empty() || norm.is_training() || !norm.options.affine() || !norm.options.track_running_stats()) return {};
    for (auto& [x, conv] : terms) {
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
      if (!nn::fusable(*conv, x)) return {};
    }
    auto [scale, bias] = nn::bn_scale_shift(norm);
    for (auto& term : terms)
      if (term.second->bias.defined()) bias = bias + term.second->bias * scale;
    torch::Tensor h;
    for (size_t i = 0; i < terms.size(); ++i) {
      const auto& [x, conv] = terms[i];
      const torch::Tensor weight = nn::scaled_weight(*conv, scale);
      const bool last = i + 1 == terms.size();
      if (i == 0) h = nn::fused_conv(x, weight, bias, *conv->options.stride(), nn::conv_padding(*conv), {}, last);
      else nn::fused_conv_into(h, x, weight, *conv->options.stride(), nn::conv_padding(*conv), last);
      nn::count_conv_macs(h, weight);
    }
    return h;
  }

  bool recurrent() const override { return spec_.lateral || spec_.topdown || spec_.long_range; }
  bool takes_input_every_step() const override { return recurrent() && spec_.input_every_step; }
  int64_t default_steps() const override { return recurrent() ? spec_.steps : 1; }
  std::vector<std::string> areas() const override { return kAreas; }

 private:
  CorticalSpec spec_;
  std::vector<Area> areas_;
  nn::Conv2d long_range{nullptr};
  nn::Linear readout{nullptr};
};

CorticalSpec base_spec(const ModelOptions& o, const std::string& connections) {
  CorticalSpec s;
  s.lateral = connections.find('L') != std::string::npos;
  s.topdown = connections.find('T') != std::string::npos;
  s.long_range = connections.find('+') != std::string::npos;
  bool recurrent = s.lateral || s.topdown;
  s.synchronous = o.unroll == "synchronous";
  s.input_every_step = o.input_every_step;
  s.cumulative_readout = o.cumulative_readout;
  s.steps = recurrent ? (o.steps ? o.steps : 4) : 1;
  int64_t w = o.width ? o.width : 16;
  s.widths = {w, 2 * w, 4 * w, 8 * w};
  s.kernels = {3, 3, 3, 3};
  s.in_channels = o.in_channels;
  s.num_classes = o.num_classes;
  return s;
}

int64_t params_of(const CorticalSpec& s) { return count_parameters(CorticalNetImpl(s)); }

// B-K: the feed-forward net with larger bottom-up kernels, chosen per area (odd, 3–9) so that
// its parameter count is closest to BLT's.
CorticalSpec larger_kernels(const ModelOptions& o) {
  int64_t target = params_of(base_spec(o, "BLT"));
  CorticalSpec s = base_spec(o, "B");
  int64_t base = params_of(s);
  std::vector<int64_t> fan(4);  // c_in × c_out per area: params grow by fan × (k² − 9)
  for (int k = 0; k < 4; ++k) fan[k] = (k == 0 ? s.in_channels : s.widths[k - 1]) * s.widths[k];
  int64_t best = INT64_MAX;
  for (int64_t a : {3, 5, 7, 9})
    for (int64_t b : {3, 5, 7, 9})
      for (int64_t c : {3, 5, 7, 9})
        for (int64_t d : {3, 5, 7, 9}) {
          std::vector<int64_t> ks = {a, b, c, d};
          int64_t p = base;
          for (int k = 0; k < 4; ++k) p += fan[k] * (ks[k] * ks[k] - 9);
          if (std::llabs(p - target) < best) best = std::llabs(p - target), s.kernels = ks;
        }
  return s;
}

// B-F: the feed-forward net with every width scaled by one factor, chosen by bisection so
// that its parameter count is closest to BLT's.
CorticalSpec more_features(const ModelOptions& o) {
  int64_t target = params_of(base_spec(o, "BLT"));
  CorticalSpec s = base_spec(o, "B");
  std::vector<int64_t> base_widths = s.widths;
  auto scaled = [&](double f) {
    CorticalSpec c = s;
    for (int k = 0; k < 4; ++k) c.widths[k] = std::max<int64_t>(1, std::llround(base_widths[k] * f));
    return c;
  };
  double lo = 1, hi = 8;
  for (int i = 0; i < 30; ++i) {
    double mid = (lo + hi) / 2;
    (params_of(scaled(mid)) < target ? lo : hi) = mid;
  }
  return scaled(hi);
}

}  // namespace

void register_cortical_models(ModelRegistry& registry) {
  struct Variant {
    const char* name;
    const char* connections;
    const char* text;
  };
  for (const auto& v : {Variant{"cortical_b", "B", "bottom-up only (feed-forward)"},
                        Variant{"cortical_bl", "BL", "bottom-up + lateral"},
                        Variant{"cortical_bt", "BT", "bottom-up + top-down"},
                        Variant{"cortical_blt", "BLT", "bottom-up + lateral + top-down"},
                        Variant{"cortical_blt_plus", "BLT+", "BLT + long-range feedback IT→V1"}}) {
    std::string connections = v.connections;
    // The feed-forward B has one step: unrolling options would mean nothing to it.
    std::vector<std::string> options = {"model.width"};
    if (connections != "B")
      options.insert(options.end(), {"model.steps", "model.unroll", "model.input_every_step", "model.cumulative_readout"});
    registry.add({v.name, "cortical", std::string("V1-V2-V4-IT network, ") + v.text,
                  [connections](const ModelOptions& o) -> ModelPtr {
                    return std::make_shared<CorticalNetImpl>(base_spec(o, connections));
                  },
                  options});
  }
  // The controls match the parameters of BLT at model.width and model.steps (BLT's per-step
  // batch norms grow with the steps).
  registry.add({"cortical_b_k", "controls", "feed-forward control: larger kernels, parameters matched to BLT",
                [](const ModelOptions& o) -> ModelPtr { return std::make_shared<CorticalNetImpl>(larger_kernels(o)); },
                {"model.width", "model.steps"}});
  registry.add({"cortical_b_f", "controls", "feed-forward control: more feature maps, parameters matched to BLT",
                [](const ModelOptions& o) -> ModelPtr { return std::make_shared<CorticalNetImpl>(more_features(o)); },
                {"model.width", "model.steps"}});
}

}  // namespace ventral
