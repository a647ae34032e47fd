#include "eval/figures.hpp"

#include <algorithm>
#include <filesystem>

#include "datasets/perturb.hpp"
#include "eval/plot.hpp"

namespace ventral {

namespace fs = std::filesystem;

std::vector<std::string> families(const Summary& s) {
  std::vector<std::string> out;
  for (const auto& c : s.conditions)
    if (std::find(out.begin(), out.end(), c.family) == out.end()) out.push_back(c.family);
  return out;
}

namespace {

Series over_steps(const std::string& name, const Summary& s, const std::vector<AccuracyCell>& cells) {
  Series series{name, {}, {}};
  for (size_t k = 0; k < s.steps.size(); ++k) {
    series.x.push_back(static_cast<double>(s.steps[k]));
    series.y.push_back(cells[k].accuracy);
  }
  return series;
}

}  // namespace

std::vector<std::string> write_eval_figures(const std::string& out, const Summary& s) {
  std::vector<std::string> written;
  std::vector<Chart> panels;
  const auto all = families(s);
  for (const auto& family : all) {
    Chart c{family, "step", "accuracy", {}, NAN, NAN};
    if (family != "clean") c.series.push_back(over_steps("clean", s, s.accuracy.at("clean").at(0)));
    for (const auto& [severity, cells] : s.accuracy.at(family))
      c.series.push_back(over_steps("severity " + std::to_string(severity), s, cells));
    panels.push_back(c);
  }
  write_png((fs::path(out) / "accuracy_vs_steps.png").string(),
            render_grid(panels, s.model + ": accuracy vs steps, per perturbation family"));
  written.push_back("accuracy_vs_steps.png");
  if (all.size() < 2) return written;
  std::vector<Chart> groups;
  for (const std::string group : {"occlusion", "noise"}) {
    Chart c{group, "severity", "accuracy (step " + std::to_string(s.readout_step) + ")", {}, NAN, NAN};
    for (const auto& family : all) {
      if (family == "clean" || perturbation_group(family) != group) continue;
      Series series{family, {0}, {s.headline("clean", 0).accuracy}};
      for (const auto& [severity, cells] : s.accuracy.at(family))
        if (severity > 0) series.x.push_back(severity), series.y.push_back(cells[s.readout].accuracy);
      c.series.push_back(series);
    }
    if (!c.series.empty()) groups.push_back(c);
  }
  write_png((fs::path(out) / "accuracy_vs_severity.png").string(),
            render_grid(groups, s.model + ": accuracy vs severity", 2, 560, 380));
  written.push_back("accuracy_vs_severity.png");
  return written;
}

void write_masking_figure(const std::string& path, const Summary& s, const std::vector<MaskedSweep>& masked) {
  std::vector<Chart> panels;
  for (const auto& family : families(s)) {
    const int severity = s.accuracy.at(family).rbegin()->first;
    const Condition shown{family, severity};
    Chart c{shown.label(), "step", "accuracy", {}, NAN, NAN};
    c.series.push_back(over_steps("image at every step", s, s.accuracy.at(family).at(severity)));
    for (const auto& m : masked) {
      const auto& conditions = m.result.conditions;
      const size_t i = static_cast<size_t>(std::find_if(conditions.begin(), conditions.end(), [&](const Condition& x) {
                                             return x.family == family && x.severity == severity;
                                           }) - conditions.begin());
      Series series{"image at steps 1-" + std::to_string(m.present) + ", then " + m.mask, {}, {}};
      for (size_t k = 0; k < m.result.steps().size(); ++k) {
        series.x.push_back(static_cast<double>(m.result.steps()[k]));
        series.y.push_back(accuracy_cell(m.result.predictions.at(i), k).accuracy);
      }
      c.series.push_back(series);
    }
    panels.push_back(c);
  }
  write_png(path, render_grid(panels, s.model + ": backward masking, accuracy vs step"));
}

}  // namespace ventral
