#pragma once
/// A trained run directory, loaded for inference.
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

}  // namespace ventral
