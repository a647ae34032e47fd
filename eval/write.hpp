#pragma once
/// `ventral eval`'s files, written from the values: results.csv, per_image.csv, summary.json,
/// early_exit.csv. Every file is written atomically.
#include <string>

#include "eval/summary.hpp"

namespace ventral {

/// Where an evaluation came from, recorded in summary.json.
struct EvalProvenance {
  std::string run, dataset;
  int64_t params = 0;
  bool recurrent = false;
  uint64_t perturbation_seed = 0;
  std::string reference_run;  ///< empty without a reference
  std::string precision = "fp32";  ///< what the model ran in (fp32|bf16)
};

/// `family,severity,step,accuracy,n,ci_low,ci_high,mean_confidence,present,mask`, one row per
/// condition and step, then one per masked sweep, condition and step (present: the steps the
/// image was shown, empty for the unmasked rows; mask: blank or noise).
void write_results_csv(const std::string& path, const Summary& summary, const std::vector<MaskedSweep>& masked = {});
/// `index,label,family,severity,pred_step<t>...`, one row per condition and image.
void write_per_image_csv(const std::string& path, const SweepResult& result);
/// Every metric of the summary as JSON (undefined values as null).
void write_summary_json(const std::string& path, const Summary& summary, const EvalProvenance& provenance);
/// `threshold,accuracy,mean_steps`.
void write_early_exit_csv(const std::string& path, const Summary& summary);

}  // namespace ventral
