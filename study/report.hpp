#pragma once
/// The study's report: REPORT.md with tables, paired tests, figures and a reading generated
/// from the numbers, written from each model's Summary.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "datasets/dataset.hpp"
#include "eval/summary.hpp"
#include "study/experiment.hpp"

namespace ventral {

/// One trained run of a compared model (one seed): what its run and its evaluation say.
struct StudyRun {
  uint64_t seed = 0;
  double train_seconds = NAN;
  std::vector<std::pair<int64_t, double>> curve;  ///< epoch → validation accuracy at the readout step
  Summary summary;
  std::string precision = "fp32";  ///< what it trained and was evaluated in
  /// Backward masking (eval.present): accuracy at the readout step with the image shown at
  /// steps 1..K only, per K and condition label ("clean", "block:5"). Empty when not evaluated.
  std::map<int64_t, std::map<std::string, double>> masked;
};

/// One compared model over its seeds (runs in the experiment's seed order, paired by position
/// with the reference's runs).
struct StudyModel {
  std::string name;   ///< the experiment's label
  std::string model;  ///< model.name
  int64_t params = 0, macs = 0, epochs = 0;
  std::string train_perturb;  ///< data.augment.perturb (empty: trained on clean images)
  std::vector<StudyRun> runs;
};

/// Writes OUT/figures/*.png and OUT/REPORT.md for `models` (in the experiment's order);
/// `images` are the test images the contact sheet shows perturbed, `dataset` names the
/// evaluation set. With one seed every number is that run's (intervals: Wilson over images);
/// with several, mean ± sd over seeds with 95% t-intervals, figures with ±sd bands, and each
/// model against the reference paired over seeds (per-seed McNemar, paired t-test and exact
/// sign-flip test on the per-seed differences). Returns the path of REPORT.md.
std::string write_report(const std::string& out, const Experiment& experiment, const std::vector<StudyModel>& models,
                         const Dataset& images, const std::string& dataset);

}  // namespace ventral
