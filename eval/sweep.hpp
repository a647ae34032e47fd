#pragma once
/// `ventral eval`: accuracy at every step, on clean images and under every perturbation and
/// severity, with the metrics of REFERENCE.md, plots, early-exit analysis and feature export.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "models/model.hpp"

namespace ventral {

/// A model's predicted class and its softmax confidence for every image (row) and evaluated
/// step (column).
struct Predictions {
  std::vector<int64_t> steps;
  std::vector<int64_t> pred;
  std::vector<float> conf;
  bool correct(size_t i, size_t k, const std::vector<int64_t>& labels) const {
    return pred[i * steps.size() + k] == labels[i];
  }
};

/// The reference model's predictions per condition, shared by the evaluations of one
/// comparison (same images, perturbations and seed): the reference runs once per condition
/// instead of once per compared model.
using ReferenceCache = std::map<std::string, Predictions>;

struct EvalOptions {
  std::string run_dir;
  std::string checkpoint;       ///< default: RUN_DIR/checkpoints/last.pt
  std::string data;             ///< default: the run's data.dataset
  std::string split = "test";
  std::string steps;            ///< "1:8" or "1,2,4,8"; default 1..the model's steps
  std::string perturb;          ///< "block:1-5,gaussian_noise" or "all"; default none
  std::string reference;        ///< a feed-forward baseline run directory (CE, McNemar, challenge images)
  std::string out;              ///< default: RUN_DIR/eval
  std::vector<double> exit_thresholds;
  std::vector<std::string> features;
  std::string features_out;
  int64_t features_n = 1000;
  bool features_full = false;   ///< full maps instead of global-average-pooled vectors
  int64_t limit = 0;            ///< evaluate the first N images only (0 = all)
  uint64_t seed = 0;            ///< perturbation seed (shared by every model evaluated)
  /// Optional: reference predictions to reuse and to add to (see ReferenceCache).
  std::shared_ptr<ReferenceCache> reference_cache;
};

/// A trained run ready to evaluate: its resolved config, model (eval mode) and class names.
struct LoadedRun {
  Config cfg;
  ModelPtr model;
  std::vector<std::string> classes;
  std::vector<double> mean, std;
  int64_t channels = 0, image_size = 0;
  std::string name;
};
LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint = "");

/// Parses "1:8" / "1,2,4,8" into sorted unique 1-based steps; InputError on bad text.
std::vector<int64_t> parse_steps(const std::string& text);

/// Runs the evaluation and writes OUT/results.csv, summary.json, per_image.csv and the plots.
/// Returns the output folder.
std::string run_eval(const EvalOptions& options);

}  // namespace ventral
