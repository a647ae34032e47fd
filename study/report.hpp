#pragma once
/// The study's report: REPORT.md with tables, paired tests, figures and a reading generated
/// from the numbers, written from each model's Summary.
#include <string>
#include <utility>
#include <vector>

#include "datasets/dataset.hpp"
#include "eval/summary.hpp"
#include "study/experiment.hpp"

namespace ventral {

/// One compared model: what its run and its evaluation say.
struct StudyEntry {
  std::string name;   ///< the experiment's label
  std::string model;  ///< model.name
  int64_t params = 0, macs = 0, epochs = 0;
  double train_seconds = NAN;
  std::vector<std::pair<int64_t, double>> curve;  ///< epoch → validation accuracy at the readout step
  Summary summary;
  std::string precision = "fp32";  ///< what it trained and was evaluated in
};

/// Writes OUT/figures/*.png and OUT/REPORT.md for `models` (in the experiment's order);
/// `images` are the test images the contact sheet shows perturbed, `dataset` names the
/// evaluation set. Returns the path of REPORT.md.
std::string write_report(const std::string& out, const Experiment& experiment, const std::vector<StudyEntry>& models,
                         const Dataset& images, const std::string& dataset);

}  // namespace ventral
