#pragma once
/// `ventral eval`: a trained run read out at every step, on clean images and under every
/// perturbation and severity. load → sweep (predict) → summarize → write.
#include <string>
#include <vector>

#include "datasets/dataset.hpp"
#include "eval/summary.hpp"
#include "eval/write.hpp"
#include "inference/run.hpp"

namespace ventral {

struct EvalOptions {
  std::string run_dir;          ///< a run directory, or empty with `weights`
  std::string weights;          ///< a state_dict file (torch.save / ventral export) instead of a run
  std::string model;            ///< with `weights`: the registered model name
  std::string classes;          ///< with `weights`: class names, one per line, in output order
  std::vector<std::string> settings;  ///< with `weights`: model.* / data.* "key=value" (inference/run.hpp load_weights)
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
  int64_t features_n = 0;       ///< 0: the first 1000 images, or all if fewer
  bool features_full = false;   ///< full maps instead of global-average-pooled vectors
  int64_t limit = 0;            ///< evaluate the first N images only (0 = all)
  uint64_t seed = 0;            ///< perturbation seed (shared by every model evaluated)
  std::string precision;        ///< fp32|bf16|auto; default: the precision each run trained in
  std::string class_map;        ///< "folder name<TAB>model class name" lines for --data folders
  std::string present;          ///< backward masking: show the image at steps 1..K for each K ("1:3", "1,2"); empty = off
  std::string mask;             ///< what follows the image: blank (default) or noise
};

/// Parses "1:8" / "1,2,4,8" into sorted unique 1-based steps; InputError on bad text.
std::vector<int64_t> parse_steps(const std::string& text);
/// `text` parsed as steps, or 1..the run's trained step count when empty.
std::vector<int64_t> steps_or_default(const std::string& text, const LoadedRun& run);

/// The conditions of a perturbation spec ("" = none): clean first, each condition once.
std::vector<Condition> parse_conditions(const std::string& perturb);

/// The images a run is evaluated on: dataset `spec` (empty: the run's), `split` ("train" or
/// "test"), the first `limit` images (0: all), labels mapped onto the run's classes by name
/// (exactly, through `class_map` — a file of "folder name<TAB>model class name" lines — or
/// ignoring case, spaces and punctuation; never by position). InputError when the images or
/// a class name do not fit the model.
///
/// With `unknown` (imported weights), a folder class that matches none of the model's classes
/// is no error: `*unknown` says which classes did not match, and the labels stay those of the
/// dataset's own classes (the caller predicts without them, with kNoLabel, and computes no accuracy).
Dataset evaluation_data(const LoadedRun& run, const std::string& spec, const std::string& split, int64_t limit,
                        const std::string& class_map = "", std::string* unknown = nullptr);

/// The run's predictions on `data` under every condition (perturbations drawn with `seed`) at
/// `steps`. Progress lines are labelled `label_prefix` + the condition. With `masking`, every
/// condition is presented on that schedule.
/// `labelled` false (imported weights on classes the model does not know): the images are
/// perturbed with their dataset labels (debris takes fragments from other classes), then
/// predicted with kNoLabel.
SweepResult sweep(LoadedRun& run, const Dataset& data, const std::vector<Condition>& conditions,
                  const std::vector<int64_t>& steps, uint64_t seed, const std::string& label_prefix = "",
                  const MaskSchedule* masking = nullptr, bool labelled = true);

/// Writes OUT/results.csv, per_image.csv, summary.json, early_exit.csv (when the summary has an
/// early-exit table) and the figures (masking.png when `masked` is not empty).
void write_evaluation(const std::string& out, const SweepResult& result, const Summary& summary,
                      const EvalProvenance& provenance, const std::vector<MaskedSweep>& masked = {});

/// Runs the evaluation the options describe and returns the output folder.
std::string run_eval(const EvalOptions& options);

}  // namespace ventral
