#include "eval/write.hpp"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/io.hpp"
#include "core/text.hpp"

namespace ventral {

using nlohmann::json;

namespace {

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// {"family": {"severity": value}} with severities as strings (JSON keys).
json by_family_severity(const std::map<std::string, std::map<int, double>>& m) {
  json j;  // null when empty (no perturbations)
  for (const auto& [family, by_severity] : m)
    for (const auto& [severity, v] : by_severity) j[family][std::to_string(severity)] = number(v);
  return j;
}

json by_family(const std::map<std::string, double>& m) {
  json j;  // null when empty
  for (const auto& [family, v] : m) j[family] = number(v);
  return j;
}

}  // namespace

void write_results_csv(const std::string& path, const Summary& s, const std::vector<MaskedSweep>& masked) {
  std::string csv = "family,severity,step,accuracy,n,ci_low,ci_high,mean_confidence,present,mask\n";
  auto row = [&](const Condition& c, int64_t step, const AccuracyCell& a, const std::string& present, const std::string& mask) {
    csv += c.family + "," + std::to_string(c.severity) + "," + std::to_string(step) + "," + csv_number("%.6f", a.accuracy) +
           "," + std::to_string(a.n) + "," + csv_number("%.6f", a.ci_low) + "," + csv_number("%.6f", a.ci_high) + "," +
           csv_number("%.6f", a.mean_confidence) + "," + present + "," + mask + "\n";
  };
  for (const auto& c : s.conditions)
    for (size_t k = 0; k < s.steps.size(); ++k) row(c, s.steps[k], s.cell(c.family, c.severity, k), "", "");
  for (const auto& m : masked)
    for (size_t c = 0; c < m.result.conditions.size(); ++c)
      for (size_t k = 0; k < m.result.steps().size(); ++k)
        row(m.result.conditions[c], m.result.steps()[k], accuracy_cell(m.result.predictions[c], k),
            std::to_string(m.present), m.mask);
  write_file_atomic(path, csv);
}

void write_per_image_csv(const std::string& path, const SweepResult& r) {
  std::ostringstream pi;
  pi << "index,label,family,severity";
  for (auto t : r.steps()) pi << ",pred_step" << t;
  pi << "\n";
  const size_t S = r.steps().size();
  for (size_t c = 0; c < r.conditions.size(); ++c) {
    const Predictions& p = r.predictions[c];
    for (size_t i = 0; i < p.size(); ++i) {
      pi << p.image(i) << "," << p.labels[i] << "," << r.conditions[c].family << "," << r.conditions[c].severity;
      for (size_t k = 0; k < S; ++k) pi << "," << p.pred[i * S + k];
      pi << "\n";
    }
  }
  write_file_atomic(path, pi.str());
}

void write_summary_json(const std::string& path, const Summary& s, const EvalProvenance& from) {
  json j;
  j["model"] = s.model;
  j["run"] = from.run;
  j["dataset"] = from.dataset;
  j["n"] = s.n;
  j["params"] = from.params;
  j["recurrent"] = from.recurrent;
  j["steps"] = s.steps;
  j["readout_step"] = s.readout_step;
  j["perturbation_seed"] = from.perturbation_seed;
  j["precision"] = from.precision;
  std::vector<double> clean;
  for (const auto& cell : s.accuracy.at("clean").at(0)) clean.push_back(cell.accuracy);
  j["clean_accuracy"] = clean;
  j["ca"] = by_family(s.ca);
  j["mca"] = by_family(s.mca);
  j["relative_drop"] = by_family(s.relative_drop);
  j["delta_rec"] = by_family_severity(s.delta_rec);
  j["delta_rec_trend"] = by_family(s.delta_rec_trend);
  j["median_iterations_to_solution"] = by_family_severity(s.median_iterations_to_solution);
  if (s.reference) {
    const ReferenceSummary& r = *s.reference;
    json ref;
    ref["run"] = from.reference_run;
    ref["model"] = r.model;
    ref["clean_accuracy"] = r.clean_accuracy;
    ref["ce"] = by_family(r.ce);
    ref["mce"] = by_family(r.mce_by_group);
    ref["mce_all"] = number(r.mce);
    ref["relative_ce"] = by_family(r.relative_ce);
    json mcnemar = json::object();
    for (const auto& [family, by_severity] : r.mcnemar)
      for (const auto& [severity, m] : by_severity)
        mcnemar[family][std::to_string(severity)] = {
            {"p", m.p}, {"model_only_correct", m.model_only_correct}, {"reference_only_correct", m.reference_only_correct}};
    ref["mcnemar"] = mcnemar;
    ref["challenge_images"] = r.challenge_images;
    json challenge = json::array(), control = json::array();
    for (double v : r.challenge_accuracy) challenge.push_back(number(v));
    for (double v : r.control_accuracy) control.push_back(number(v));
    ref["challenge_accuracy"] = challenge;
    ref["control_accuracy"] = control;
    j["reference"] = ref;
  }
  if (!s.early_exit.empty()) {
    json table = json::array();
    for (const auto& e : s.early_exit)
      table.push_back({{"threshold", e.threshold}, {"accuracy", e.accuracy}, {"mean_steps", e.mean_steps}});
    j["early_exit"] = table;
  }
  write_file_atomic(path, j.dump(2) + "\n");
}

void write_early_exit_csv(const std::string& path, const Summary& s) {
  std::string csv = "threshold,accuracy,mean_steps\n";
  for (const auto& e : s.early_exit)
    csv += csv_number("%g", e.threshold) + "," + csv_number("%.6f", e.accuracy) + "," +
           csv_number("%.4f", e.mean_steps) + "\n";
  write_file_atomic(path, csv);
}

}  // namespace ventral
