#pragma once
/// A trained run directory, loaded for inference.
#include <string>
#include <vector>

#include "core/config.hpp"
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
  /// Evaluation batches: unshuffled, unaugmented, normalised as the run was trained.
  LoaderOptions loader_options() const;
};

/// Loads RUN_DIR/config.yaml, classes.txt and `checkpoint` (default RUN_DIR/checkpoints/last.pt).
LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint = "");

}  // namespace ventral
