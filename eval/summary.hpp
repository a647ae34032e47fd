#pragma once
/// What `ventral eval` computes, as values: the sweep's predictions (SweepResult) and every
/// metric derived from them (Summary). Files, plots and reports are written from these values
/// at the edges; nothing reads its own output back.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "inference/predict.hpp"

namespace ventral {

/// One evaluation condition: a perturbation family at a severity (severity 0: clean images).
struct Condition {
  std::string family = "clean";
  int severity = 0;
  std::string label() const { return family + (severity ? ":" + std::to_string(severity) : ""); }
};

/// A model's predictions on the same images under every condition (clean first), at every
/// evaluated step.
struct SweepResult {
  std::string model;                     ///< the run's model.name
  int64_t trained_steps = 1;             ///< the step count the model was trained with
  std::vector<Condition> conditions;
  std::vector<Predictions> predictions;  ///< one per condition; same images, same order, same steps
  const std::vector<int64_t>& steps() const { return predictions.front().steps; }
  size_t size() const { return predictions.front().size(); }
  /// Index of the headline readout in steps() (headline_index: the trained step count).
  size_t readout() const { return headline_index(steps(), trained_steps); }
  /// The predictions for (family, severity); std::out_of_range when the sweep lacks it (a bug).
  const Predictions& at(const std::string& family, int severity) const;
  /// The same sweep read out at the k-th evaluated step only.
  SweepResult at_step(size_t k) const;
};

/// A sweep under a presentation schedule (`ventral eval --present K --mask blank|noise`).
struct MaskedSweep {
  int64_t present = 1;
  std::string mask = "blank";
  SweepResult result;
};

struct AccuracyCell {
  double accuracy = 0, ci_low = 0, ci_high = 0, mean_confidence = 0;  ///< Wilson 95% interval
  int64_t correct = 0, n = 0;
};

struct McNemarCell {
  double p = 1;
  int64_t model_only_correct = 0, reference_only_correct = 0;
};

/// Metrics against a feed-forward reference evaluated on the same images and conditions.
struct ReferenceSummary {
  std::string model;
  double clean_accuracy = 0;
  std::map<std::string, double> ce, relative_ce;           ///< per family
  double mce = NAN;                                         ///< mean CE over every family
  std::map<std::string, double> mce_by_group;               ///< the same mean within each group
  std::map<std::string, std::map<int, McNemarCell>> mcnemar;  ///< family → severity
  int64_t challenge_images = 0;                             ///< clean images the reference gets wrong
  std::vector<double> challenge_accuracy, control_accuracy;  ///< per evaluated step
};

struct EarlyExitRow {
  double threshold = 0, accuracy = 0, mean_steps = 0;
};

/// Every metric of an evaluation. Headline values (CA, mCA, Δrec, CE, McNemar) are read at
/// `readout_step`, the trained step count.
struct Summary {
  std::string model;
  std::vector<int64_t> steps;
  size_t readout = 0;
  int64_t readout_step = 1;
  int64_t n = 0;
  std::vector<Condition> conditions;
  /// family → severity → one cell per evaluated step
  std::map<std::string, std::map<int, std::vector<AccuracyCell>>> accuracy;
  std::map<std::string, double> ca;             ///< per family: mean accuracy over its severities ≥ 1
  std::map<std::string, double> mca;            ///< per group (occlusion, noise): mean CA
  std::map<std::string, double> relative_drop;  ///< per family: (clean − CA) / clean
  std::map<std::string, std::map<int, double>> delta_rec;  ///< family → severity (0 = clean): readout − step 1
  std::map<std::string, double> delta_rec_trend;           ///< Spearman ρ of Δrec against severity, clean included (NaN: flat, or fewer than 2 severities)
  std::map<std::string, std::map<int, double>> median_iterations_to_solution;
  std::optional<ReferenceSummary> reference;
  std::vector<EarlyExitRow> early_exit;

  const AccuracyCell& cell(const std::string& family, int severity, size_t step_index) const;
  const AccuracyCell& clean(size_t step_index) const { return cell("clean", 0, step_index); }
  const AccuracyCell& headline(const std::string& family, int severity) const {
    return cell(family, severity, readout);
  }
};

// The named metrics summarize() is built from; each is unit-tested on hand-made predictions.

/// Accuracy with its Wilson interval and the mean confidence at the k-th evaluated step.
AccuracyCell accuracy_cell(const Predictions& p, size_t k);
/// Mean of the values (NaN for none).
double mean(const std::vector<double>& values);
/// Mean CE over the given families: the one definition of mCE (overall and per group).
double mean_corruption_error(const std::map<std::string, double>& ce, const std::vector<std::string>& families);
/// McNemar's test of the model at step index k against the reference at step index k_ref.
McNemarCell mcnemar(const Predictions& model, size_t k, const Predictions& reference, size_t k_ref);
/// Median over images solved at the last step of the step at which they were solved for good.
double median_iterations(const Predictions& p);
/// Early exit: each image stops at the first step whose confidence reaches the threshold.
EarlyExitRow early_exit(const Predictions& clean, double threshold);

/// Every metric of `result`; with `reference` (its predictions at its own readout, same
/// conditions and images) also CE, McNemar and challenge/control accuracy.
Summary summarize(const SweepResult& result, const SweepResult* reference = nullptr,
                  const std::vector<double>& exit_thresholds = {});

}  // namespace ventral
