#include "models/registry.hpp"

#include <algorithm>
#include <set>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/text.hpp"

namespace ventral {

namespace {
thread_local MacCounter* active_counter = nullptr;
}

MacCounter::MacCounter() : previous_(active_counter) { active_counter = this; }
MacCounter::~MacCounter() { active_counter = previous_; }
void MacCounter::add(int64_t macs) {
  if (active_counter) active_counter->total_ += macs;
}

int64_t count_parameters(const torch::nn::Module& model) {
  std::set<const void*> seen;
  int64_t n = 0;
  for (const auto& p : model.parameters())
    if (seen.insert(p.data_ptr()).second) n += p.numel();
  return n;
}

std::pair<size_t, size_t> unique_parameter_tensors(const torch::nn::Module& model) {
  std::set<const void*> seen;
  auto params = model.parameters();
  for (const auto& p : params) seen.insert(p.data_ptr());
  return {seen.size(), params.size()};
}

int64_t macs_per_image(VisionModelImpl& model, int64_t channels, int64_t size) {
  bool was_training = model.is_training();
  model.eval();
  int64_t total;
  {
    torch::NoGradGuard no_grad;
    MacCounter counter;
    auto device = model.parameters().empty() ? torch::kCPU : model.parameters()[0].device();
    model.forward(torch::zeros({1, channels, size, size}, torch::TensorOptions().device(device)),
                  model.default_steps());
    total = counter.total();
  }
  model.train(was_training);
  return total;
}

int64_t macs_per_step(VisionModelImpl& model, int64_t channels, int64_t size) {
  return macs_per_image(model, channels, size) / model.default_steps();
}

void VisionModelImpl::use_memory_format(c10::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  // A fresh tensor with the format's strides, not contiguous(format): that returns a tensor
  // with one input channel (V1's weights) unchanged, whose NCHW strides would then make
  // oneDNN run the whole first area, and everything after it, in NCHW.
  auto convert = [format](torch::Tensor& t) {
    if (t.dim() != 4) return;
    torch::Tensor c = torch::empty(t.sizes(), t.options().memory_format(format));
    c.copy_(t.data());
    t.set_data(c);
  };
  for (auto& p : parameters()) convert(p);
  for (auto& b : buffers()) convert(b);
  format_ = format;
}

void apply_memory_format(VisionModelImpl& model, const std::string& setting) {
  require(setting == "auto" || setting == "channels_last" || setting == "contiguous",
          "memory_format must be auto, channels_last or contiguous, got '" + setting + "'");
  bool nhwc = setting == "channels_last" || (setting == "auto" && model.prefers_channels_last());
  model.use_memory_format(nhwc ? c10::MemoryFormat::ChannelsLast : c10::MemoryFormat::Contiguous);
}

void check_model_options(const Config& cfg) {
  const std::string name = cfg.get_string("model.name");
  const ModelEntry& entry = [&]() -> const ModelEntry& {
    try {
      return find_model(name);
    } catch (const InputError& e) {  // name where it was set, as every other key's error does
      throw InputError(cfg.origin("model.name") + ": key 'model.name': " + e.what());
    }
  }();
  static const Config defaults;
  for (const std::string& key : cfg.differing_keys(defaults)) {
    if (key.rfind("model.", 0) != 0 || key == "model.name" || key == "model.weights" || key == "model.weights_strict")
      continue;  // not options of the architecture
    if (std::find(entry.options.begin(), entry.options.end(), key) != entry.options.end()) continue;
    const std::string reads = join(entry.options, ", ");
    throw InputError(cfg.origin(key) + ": key '" + key + "' has no effect on " + name + ", which would ignore it (" + name +
                     " reads " + (reads.empty() ? std::string("no model options") : reads) +
                     "); remove the key or set it back to its default");
  }
}

ModelOptions model_options(const Config& cfg, int64_t in_channels, int64_t num_classes, int64_t image_size) {
  ModelOptions o;
  o.in_channels = in_channels;
  o.num_classes = num_classes;
  o.image_size = image_size;
  o.width = cfg.get_int("model.width");
  o.steps = cfg.get_int("model.steps");
  o.unroll = cfg.get_string("model.unroll");
  o.input_every_step = cfg.get_bool("model.input_every_step");
  o.cumulative_readout = cfg.get_bool("model.cumulative_readout");
  o.shortcut = cfg.get_string("model.shortcut");
  o.stem = cfg.get_string("model.stem");
  return o;
}

void ModelRegistry::add(ModelEntry entry) {
  for (const auto& e : entries_)
    if (e.name == entry.name) throw std::logic_error("model registered twice: " + entry.name);
  entries_.push_back(std::move(entry));
}

const ModelRegistry& model_registry() {
  static const ModelRegistry registry = [] {
    ModelRegistry r;
    register_resnet_models(r);
    register_shared_resnet_models(r);
    register_cortical_models(r);
    register_cornet_models(r);
    return r;
  }();
  return registry;
}

std::vector<std::string> list_models() {
  std::vector<std::string> names;
  for (const auto& e : model_registry().entries()) names.push_back(e.name);
  return names;
}

const ModelEntry& find_model(const std::string& name) {
  for (const auto& e : model_registry().entries())
    if (e.name == name) return e;
  throw InputError("unknown model '" + name + "' (did you mean '" + closest(name, list_models()) +
                   "'? valid: " + join(list_models(), ", ") + ")");
}

ModelPtr create_model(const std::string& name, const ModelOptions& options) {
  require(options.in_channels >= 1, "model: in_channels must be >= 1");
  require(options.num_classes >= 1, "model: num_classes must be >= 1");
  require(options.image_size >= 8, "model: image_size must be >= 8, got " + std::to_string(options.image_size));
  return find_model(name).make(options);
}

}  // namespace ventral
