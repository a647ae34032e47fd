#include "eval/summary.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "datasets/perturb.hpp"
#include "eval/metrics.hpp"

namespace ventral {

const Predictions& SweepResult::at(const std::string& family, int severity) const {
  for (size_t c = 0; c < conditions.size(); ++c)
    if (conditions[c].family == family && conditions[c].severity == severity) return predictions[c];
  throw std::out_of_range("SweepResult: no condition " + Condition{family, severity}.label());
}

SweepResult SweepResult::at_step(size_t k) const {
  SweepResult one{model, trained_steps, conditions, {}};
  for (const auto& p : predictions) one.predictions.push_back(p.at_step(k));
  return one;
}

const AccuracyCell& Summary::cell(const std::string& family, int severity, size_t step_index) const {
  return accuracy.at(family).at(severity).at(step_index);
}

AccuracyCell accuracy_cell(const Predictions& p, size_t k) {
  AccuracyCell c;
  c.n = static_cast<int64_t>(p.size());
  double confidence = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    c.correct += p.correct(i, k);
    confidence += p.conf[i * p.steps.size() + k];
  }
  c.accuracy = c.n ? static_cast<double>(c.correct) / static_cast<double>(c.n) : 0;
  c.mean_confidence = c.n ? confidence / static_cast<double>(c.n) : 0;
  std::tie(c.ci_low, c.ci_high) = wilson_interval(c.correct, c.n);
  return c;
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return NAN;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double mean_corruption_error(const std::map<std::string, double>& ce, const std::vector<std::string>& families) {
  std::vector<double> finite;  // a reference without errors on a family leaves its CE undefined
  for (const auto& f : families)
    if (auto it = ce.find(f); it != ce.end() && std::isfinite(it->second)) finite.push_back(it->second);
  return mean(finite);
}

McNemarCell mcnemar(const Predictions& model, size_t k, const Predictions& reference, size_t k_ref) {
  McNemarCell m;
  for (size_t i = 0; i < model.size(); ++i) {
    bool a = model.correct(i, k), r = reference.correct(i, k_ref);
    m.model_only_correct += a && !r;
    m.reference_only_correct += !a && r;
  }
  m.p = mcnemar_p(m.model_only_correct, m.reference_only_correct);
  return m;
}

double median_iterations(const Predictions& p) {
  const size_t S = p.steps.size();
  std::vector<double> solved;
  for (size_t i = 0; i < p.size(); ++i) {
    std::vector<bool> c(S);
    for (size_t k = 0; k < S; ++k) c[k] = p.correct(i, k);
    int64_t k = iterations_to_solution(c);
    if (k > 0) solved.push_back(static_cast<double>(p.steps[static_cast<size_t>(k - 1)]));
  }
  return median(solved);
}

EarlyExitRow early_exit(const Predictions& clean, double threshold) {
  const size_t S = clean.steps.size(), N = clean.size();
  int64_t correct = 0;
  double step_sum = 0;
  for (size_t i = 0; i < N; ++i) {
    size_t k = 0;
    while (k + 1 < S && clean.conf[i * S + k] < threshold) ++k;
    correct += clean.correct(i, k);
    step_sum += static_cast<double>(clean.steps[k]);
  }
  return {threshold, N ? double(correct) / N : 0, N ? step_sum / N : 0};
}

namespace {

// Families other than clean, in the order they first appear among the conditions, each with
// its severities ≥ 1 in order of appearance.
std::vector<std::pair<std::string, std::vector<int>>> perturbed_families(const SweepResult& r) {
  std::vector<std::pair<std::string, std::vector<int>>> out;
  for (const auto& c : r.conditions) {
    if (c.family == "clean") continue;
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& f) { return f.first == c.family; });
    if (it == out.end()) it = out.insert(out.end(), {c.family, {}});
    if (c.severity > 0) it->second.push_back(c.severity);
  }
  return out;
}

ReferenceSummary against_reference(const SweepResult& r, const Summary& s, const SweepResult& ref) {
  require(ref.conditions.size() == r.conditions.size() && ref.size() == r.size(),
          "summarize: the reference was evaluated on other images or conditions");
  ReferenceSummary out;
  out.model = ref.model;
  const size_t R = s.readout, Rr = ref.readout();
  out.clean_accuracy = accuracy_cell(ref.predictions.front(), Rr).accuracy;
  for (size_t c = 0; c < r.conditions.size(); ++c)
    out.mcnemar[r.conditions[c].family][r.conditions[c].severity] = mcnemar(r.predictions[c], R, ref.predictions[c], Rr);
  std::map<std::string, std::vector<std::string>> by_group;
  std::vector<std::string> all;
  for (const auto& [family, severities] : perturbed_families(r)) {
    std::vector<double> model_acc, ref_acc;
    for (int sev : severities) {
      model_acc.push_back(s.headline(family, sev).accuracy);
      ref_acc.push_back(accuracy_cell(ref.at(family, sev), Rr).accuracy);
    }
    out.ce[family] = corruption_error(model_acc, ref_acc);
    out.relative_ce[family] =
        relative_corruption_error(model_acc, s.headline("clean", 0).accuracy, ref_acc, out.clean_accuracy);
    by_group[perturbation_group(family)].push_back(family);
    all.push_back(family);
  }
  // Summed in family-name order, as the CE map holds them.
  std::sort(all.begin(), all.end());
  out.mce = mean_corruption_error(out.ce, all);
  for (auto& [group, families] : by_group) {
    std::sort(families.begin(), families.end());
    out.mce_by_group[group] = mean_corruption_error(out.ce, families);
  }
  // Challenge images: clean images the reference gets wrong; control: those it gets right.
  const Predictions &clean = r.predictions.front(), &ref_clean = ref.predictions.front();
  for (size_t i = 0; i < clean.size(); ++i) out.challenge_images += !ref_clean.correct(i, Rr);
  const int64_t n = static_cast<int64_t>(clean.size()), n_control = n - out.challenge_images;
  for (size_t k = 0; k < clean.steps.size(); ++k) {
    int64_t challenge = 0, control = 0;
    for (size_t i = 0; i < clean.size(); ++i) (ref_clean.correct(i, Rr) ? control : challenge) += clean.correct(i, k);
    out.challenge_accuracy.push_back(out.challenge_images ? double(challenge) / out.challenge_images : NAN);
    out.control_accuracy.push_back(n_control ? double(control) / n_control : NAN);
  }
  return out;
}

}  // namespace

Summary summarize(const SweepResult& r, const SweepResult* reference, const std::vector<double>& exit_thresholds) {
  require(!r.predictions.empty() && r.conditions.front().family == "clean" && r.conditions.front().severity == 0,
          "summarize: a sweep starts with the clean condition");
  Summary s;
  s.model = r.model;
  s.steps = r.steps();
  s.readout = r.readout();
  s.readout_step = s.steps[s.readout];
  s.n = static_cast<int64_t>(r.size());
  s.conditions = r.conditions;
  for (size_t c = 0; c < r.conditions.size(); ++c) {
    auto& cells = s.accuracy[r.conditions[c].family][r.conditions[c].severity];
    for (size_t k = 0; k < s.steps.size(); ++k) cells.push_back(accuracy_cell(r.predictions[c], k));
    s.median_iterations_to_solution[r.conditions[c].family][r.conditions[c].severity] =
        median_iterations(r.predictions[c]);
  }
  auto delta = [&](const std::string& family, int severity) {
    return s.headline(family, severity).accuracy - s.cell(family, severity, 0).accuracy;
  };
  const double clean = s.headline("clean", 0).accuracy;
  std::map<std::string, std::vector<double>> group_ca;
  for (const auto& [family, severities] : perturbed_families(r)) {
    std::vector<double> per_severity, x = {0}, y = {delta("clean", 0)};
    s.delta_rec[family][0] = y.front();
    for (int sev : severities) {
      per_severity.push_back(s.headline(family, sev).accuracy);
      s.delta_rec[family][sev] = delta(family, sev);
      x.push_back(sev);
      y.push_back(s.delta_rec[family][sev]);
    }
    s.ca[family] = per_severity.empty() ? 0 : mean(per_severity);
    s.relative_drop[family] = clean > 0 ? (clean - s.ca[family]) / clean : NAN;
    group_ca[perturbation_group(family)].push_back(s.ca[family]);
    // Over clean and one severity a rank correlation is ±1 whatever the data: no trend is measured.
    s.delta_rec_trend[family] = x.size() >= 3 ? spearman(x, y) : NAN;
  }
  for (const auto& [group, values] : group_ca) s.mca[group] = mean(values);
  if (reference) s.reference = against_reference(r, s, *reference);
  for (double threshold : exit_thresholds) s.early_exit.push_back(early_exit(r.predictions.front(), threshold));
  return s;
}

}  // namespace ventral
