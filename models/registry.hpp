#pragma once
/// Model registry: name → factory, filled next to each family's code (timm's register_model).
#include <string>
#include <vector>

#include "models/model.hpp"

namespace ventral {

/// Options every factory receives; each registry entry lists the ones it reads
/// (ModelEntry::options) and model_options() refuses the others. 0 / "default" select the
/// family's default.
struct ModelOptions {
  int64_t in_channels = 1;
  int64_t num_classes = 10;
  int64_t image_size = 28;
  int64_t width = 0;              ///< base width (first stage / V1 channels)
  int64_t steps = 0;              ///< recurrent steps the model is built for
  std::string unroll = "default"; ///< cortical: sequential | synchronous
  bool input_every_step = true;   ///< cortical: present the image at every step
  bool cumulative_readout = false;///< cortical: read out the running mean of IT
  std::string shortcut = "B";     ///< CIFAR ResNet: A (zero padding) | B (projection)
  std::string stem = "auto";      ///< ImageNet ResNet: auto | imagenet | small
};

struct ModelEntry {
  std::string name;
  std::string family;
  std::string description;
  std::function<ModelPtr(const ModelOptions&)> make;
  /// The model.* options (besides model.name) this entry's factory reads. A config that sets
  /// any other model option for it is refused: the value would be silently ignored.
  std::vector<std::string> options;
};

class ModelRegistry {
 public:
  void add(ModelEntry entry);
  const std::vector<ModelEntry>& entries() const { return entries_; }

 private:
  std::vector<ModelEntry> entries_;
};

class Config;
/// InputError naming the config and the key when it sets a model option that model.name does
/// not read (ModelEntry::options): the value would be silently ignored. Training and compare
/// check this before anything runs; evaluation does not (a run is rebuilt as it was trained).
void check_model_options(const Config& cfg);
/// The model.* keys of a config, for data of `in_channels` × `image_size`² and `num_classes`.
ModelOptions model_options(const Config& cfg, int64_t in_channels, int64_t num_classes, int64_t image_size);

/// Applies `setting` (auto | channels_last | contiguous; auto follows the model's
/// prefers_channels_last()) to `model`'s parameters and inputs.
void apply_memory_format(VisionModelImpl& model, const std::string& setting);

/// The registry with every family registered.
const ModelRegistry& model_registry();
/// Registered names, in registration order.
std::vector<std::string> list_models();
/// The entry for `name`; InputError listing the valid names when unknown.
const ModelEntry& find_model(const std::string& name);
/// Builds `name` with `options`, seeded from torch's global generator.
ModelPtr create_model(const std::string& name, const ModelOptions& options = {});

// Each family fills the registry from its own source file.
void register_resnet_models(ModelRegistry& registry);
void register_shared_resnet_models(ModelRegistry& registry);
void register_cortical_models(ModelRegistry& registry);
void register_cornet_models(ModelRegistry& registry);

}  // namespace ventral
