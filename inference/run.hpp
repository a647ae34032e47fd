#pragma once
/// A trained run directory, loaded for inference.
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/precision.hpp"
#include "datasets/loader.hpp"
#include "models/model.hpp"

namespace ventral {

/// A trained run ready to evaluate: its resolved config, model (eval mode, on the configured
/// device, in the configured memory format), class names, normalisation and input shape.
struct LoadedRun {
  Config cfg;
  ModelPtr model;
  std::vector<std::string> classes;
  std::vector<double> mean, std;
  int64_t channels = 0, image_size = 0;
  PrecisionChoice precision;
  /// Evaluation batches: unshuffled, unaugmented, normalised as the run was trained.
  LoaderOptions loader_options() const;
};

/// Loads RUN_DIR/config.yaml, classes.txt and `checkpoint` (default RUN_DIR/checkpoints/last.pt).
/// The model runs in the run's precision (the one it trained in) unless `precision`
/// (fp32|bf16|auto) says otherwise; LoadedRun::precision says which and why. Sets torch's thread
/// count to the run's `threads` (before the `auto` probe times anything).
LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint = "", const std::string& precision = "");

/// A model from a state_dict file alone (`ventral eval --weights`): no run directory, so the
/// model is `model_name` with the model.* and data.* keys of `settings` ("key=value", e.g.
/// data.preset=imagenet); its input channels and class count are read off the weights (the
/// tensors whose shapes depend on them); class names come from `classes_file` (one per line, in
/// output order, e.g. ImageNet wnids) or are the output indices "0", "1", ... The input size is
/// data.center_crop or data.image_size, and the normalisation data.mean/data.std (a preset sets
/// all three). InputError (naming the file or key) when the weights do not fit or a setting is
/// missing.
LoadedRun load_weights(const std::string& weights, const std::string& model_name, const std::string& classes_file,
                       const std::vector<std::string>& settings, const std::string& precision = "");

/// The description `ventral export` wrote beside a state_dict (FILE.pt's FILE.json, naming FILE.pt
/// as its "weights"), read as load_weights() arguments: the model name, its model.* options and
/// data.* input keys (size, channels, normalisation), and the class names in output order.
struct WeightsDescription {
  std::string path, model;
  std::vector<std::string> settings, classes;
  int64_t steps = 0;  // the model's default number of steps
};
/// nullopt when the weights have no such description beside them (`why_not`, when given, says
/// why a FILE.json that is there is not one: not JSON, not ventral's, another file's); InputError
/// naming the file and field when it is theirs but incomplete or of the wrong types.
std::optional<WeightsDescription> read_weights_description(const std::string& weights, std::string* why_not = nullptr);
/// `model_name`, `classes_file` and `settings` given for `weights` merged with its description
/// (when there is one): what the description says fills what was not given, and anything given
/// that contradicts it is an InputError naming both. Then load_weights().
LoadedRun load_described_weights(const std::string& weights, const std::string& model_name,
                                 const std::string& classes_file, const std::vector<std::string>& settings,
                                 const std::string& precision = "");

}  // namespace ventral
