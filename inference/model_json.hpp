#pragma once
/// model.json: what a model is, for readers outside ventral (python/ventral_torch): the
/// registered name and options, read-out steps, the input it takes (shape, channel order,
/// preprocessing), its normalisation and class names. `ventral train` writes RUN/model.json;
/// `ventral export` writes it beside the state_dict.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "models/model.hpp"

namespace ventral {

/// The model a trained config describes, with the input it was trained on.
struct ModelDescription {
  const Config& cfg;  ///< model.* options and the data.* preprocessing keys
  int64_t steps = 1;  ///< the model's default (trained) steps
  int64_t channels = 0, image_size = 0;
  std::vector<double> mean, std;
  std::vector<std::string> classes;
};

nlohmann::json model_json(const ModelDescription& d);

/// Writes `out` (a state_dict Python's torch.load reads) and model.json beside it (`out` with
/// the extension .json); returns the .json path. InputError when `out` ends in .json.
std::string export_model(const std::string& out, VisionModelImpl& model, nlohmann::json meta);

}  // namespace ventral
