#pragma once
/// Per-area, per-step activations exported as .npy files for representational-similarity
/// analysis in Python (numpy.load).
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "inference/run.hpp"

namespace ventral {

struct FeatureOptions {
  std::vector<std::string> areas;  ///< e.g. V1, V2, V4, IT
  std::string out;                 ///< folder for the .npy files and index.json
  int64_t n = 0;                   ///< the first n images (0: 1000, or all if fewer)
  bool full = false;               ///< full maps instead of global-average-pooled vectors
};

/// InputError naming the first area `model` does not have, and the areas it has. Called before
/// a sweep, so a typo costs nothing.
void check_feature_areas(const VisionModelImpl& model, const std::vector<std::string>& areas);

/// Runs `run`'s model for `steps` steps over the first images of `data` and writes
/// OUT/<area>_step<t>.npy, OUT/labels.npy and OUT/index.json.
void export_features(LoadedRun& run, const Dataset& data, int64_t steps, const FeatureOptions& options);

}  // namespace ventral
