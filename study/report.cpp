#include "study/report.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "core/io.hpp"
#include "core/text.hpp"
#include "datasets/perturb.hpp"
#include "eval/plot.hpp"

namespace ventral {

namespace fs = std::filesystem;

namespace {

std::string num(double v, const char* f = "%.1f") { return std::isfinite(v) ? format_number(f, v) : "–"; }
// Accuracies as results.csv holds them (6 decimals), so the report and the CSV agree to the
// last printed digit.
double as_written(double v) { return std::isfinite(v) ? std::stod(format_number("%.6f", v)) : v; }
std::string pct(double v) { return num(100 * as_written(v), "%.2f"); }

// A group's mCA is undefined (shown as a dash) when the sweep has no family of that group.
double group_value(const std::map<std::string, double>& m, const std::string& group) {
  auto it = m.find(group);
  return it == m.end() ? NAN : it->second;
}

const std::vector<AccuracyCell>& clean_cells(const StudyEntry& e) { return e.summary.accuracy.at("clean").at(0); }

struct Sweep {  // what the experiment evaluated
  std::vector<PerturbationSpec> specs;
  std::vector<std::string> occlusion;
  int hardest(const std::string& family) const {
    for (const auto& s : specs)
      if (s.family == family) return *std::max_element(s.severities.begin(), s.severities.end());
    return 0;
  }
};

Series over_steps(const StudyEntry& e, const std::vector<AccuracyCell>& cells, int64_t max_step) {
  Series s{e.name, {}, {}};
  if (cells.size() == 1) {  // read out once: one value, drawn flat across the steps
    s.x = {1, static_cast<double>(max_step)};
    s.y = {cells.front().accuracy, cells.front().accuracy};
    return s;
  }
  for (size_t k = 0; k < cells.size(); ++k)
    s.x.push_back(static_cast<double>(e.summary.steps[k])), s.y.push_back(cells[k].accuracy);
  return s;
}

// Figures: accuracy vs steps (clean and each family at its hardest severity), accuracy vs
// severity at the readout step, training curves, a contact sheet. Returns whether the
// severity figure was drawn.
bool write_figures(const std::string& out, const Experiment& x, const Sweep& sweep,
                   const std::vector<StudyEntry>& models, const Dataset& images) {
  const fs::path dir = fs::path(out) / "figures";
  make_directories(dir.string());
  int64_t max_step = 1;
  for (const auto& e : models) max_step = std::max(max_step, e.summary.steps.back());
  std::vector<std::pair<std::string, int>> panels = {{"clean", 0}};
  for (const auto& s : sweep.specs) panels.emplace_back(s.family, sweep.hardest(s.family));
  std::vector<Chart> step_panels, severity_panels;
  for (const auto& [family, sev] : panels) {
    Chart c{family + (sev ? " " + std::to_string(sev) : ""), "step", "accuracy", {}, NAN, NAN};
    for (const auto& e : models) c.series.push_back(over_steps(e, e.summary.accuracy.at(family).at(sev), max_step));
    step_panels.push_back(c);
  }
  for (const auto& s : sweep.specs) {
    Chart c{s.family, "severity", "accuracy (final step)", {}, NAN, NAN};
    for (const auto& e : models) {
      Series ser{e.name, {0}, {e.summary.headline("clean", 0).accuracy}};
      for (int sev : s.severities) ser.x.push_back(sev), ser.y.push_back(e.summary.headline(s.family, sev).accuracy);
      c.series.push_back(ser);
    }
    severity_panels.push_back(c);
  }
  Chart curves{"validation accuracy during training (final step)", "epoch", "accuracy", {}, NAN, NAN};
  for (const auto& e : models) {
    Series s{e.name, {}, {}};
    for (const auto& [epoch, a] : e.curve) s.x.push_back(static_cast<double>(epoch)), s.y.push_back(a);
    curves.series.push_back(s);
  }
  write_png((dir / "accuracy_vs_steps.png").string(),
            render_grid(step_panels, "accuracy vs steps: clean and each family at its hardest severity"));
  if (!severity_panels.empty())
    write_png((dir / "accuracy_vs_severity.png").string(),
              render_grid(severity_panels, "accuracy vs severity (final step), one panel per family"));
  write_png((dir / "training_curves.png").string(), render_chart(curves, 760, 420));
  write_png((dir / "perturbations.png").string(), render_contact_sheet(images, sweep.specs, 8, x.seed));
  return !severity_panels.empty();
}

void models_table(std::ostream& md, const Experiment& x, const std::vector<StudyEntry>& models) {
  md << "## Models\n\n";
  md << "| model | architecture | parameters | MACs/step | steps | clean acc. step 1 (95% CI) | clean acc. final step (95% CI) | "
        "mCA occlusion | mCA noise | mCE vs reference | Δrec (clean) | epochs | training time |\n";
  md << "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& e : models) {
    const Summary& s = e.summary;
    const AccuracyCell &first = s.clean(0), &last = s.headline("clean", 0);
    md << "| " << e.name << " | " << e.model << " | " << e.params << " | " << e.macs << " | " << s.readout_step
       << " | " << pct(first.accuracy) << " (" << pct(first.ci_low) << "–" << pct(first.ci_high) << ") | "
       << pct(last.accuracy) << " (" << pct(last.ci_low) << "–" << pct(last.ci_high) << ") | "
       << pct(group_value(s.mca, "occlusion")) << " | " << pct(group_value(s.mca, "noise")) << " | "
       << (e.name == x.reference ? std::string("100 (reference)") : num(s.reference ? s.reference->mce : NAN)) << " | "
       << num(100 * (as_written(last.accuracy) - as_written(first.accuracy)), "%+.2f") << " | " << e.epochs << " | "
       << num(e.train_seconds / 60, "%.1f min") << " |\n";
  }
  md << "\nAccuracies in %; mCA: mean accuracy over severities 1–5 and families of the group; mCE: mean corruption "
        "error over families relative to the reference (100 = as good as the reference, lower is better); Δrec: "
        "final step minus step 1 in points. Final step: the number of steps the model was trained with (steps; the "
        "figures show every evaluated step, including those beyond it).";
  std::map<std::string, std::vector<std::string>> by_precision;
  for (const auto& e : models) by_precision[e.precision].push_back(e.name);
  if (by_precision.size() == 1) {
    md << " Precision: " << by_precision.begin()->first << ".\n\n";
  } else {  // e.g. `precision: auto` resolved differently: say so, the comparison is not like for like
    md << "\n\n**Precision differs between models:**";
    for (const auto& [precision, names] : by_precision) {
      md << " " << precision << ":";
      for (const auto& n : names) md << " " << n;
      md << ";";
    }
    md << " bf16 and fp32 results differ by rounding, not only by architecture.\n\n";
  }
}

void mcnemar_table(std::ostream& md, const Experiment& x, const Sweep& sweep, const std::vector<StudyEntry>& models) {
  md << "## Paired tests against " << x.reference << " (McNemar, same images, final steps)\n\n";
  md << "| model | clean p |";
  for (const auto& f : sweep.occlusion) md << " " << f << " " << sweep.hardest(f) << " p |";
  md << "\n|---|---:|";
  for (size_t i = 0; i < sweep.occlusion.size(); ++i) md << "---:|";
  md << "\n";
  for (const auto& e : models) {
    if (e.name == x.reference) continue;
    const auto& m = e.summary.reference.value().mcnemar;
    md << "| " << e.name << " | " << num(m.at("clean").at(0).p, "%.3g") << " |";
    for (const auto& f : sweep.occlusion) md << " " << num(m.at(f).at(sweep.hardest(f)).p, "%.3g") << " |";
    md << "\n";
  }
}

// A reading generated from the numbers, never hand-written.
void reading(std::ostream& md, const Experiment& x, const Sweep& sweep, const std::vector<StudyEntry>& models) {
  md << "## Reading\n\n";
  auto best_by = [&](auto value) {
    const StudyEntry* best = nullptr;
    for (const auto& e : models)
      if (std::isfinite(value(e)) && (!best || value(e) > value(*best))) best = &e;
    return best;
  };
  auto clean_final = [](const StudyEntry& e) { return e.summary.headline("clean", 0).accuracy; };
  if (const StudyEntry* b = best_by(clean_final))
    md << "- On clean images **" << b->name << "** is the most accurate at its final step (" << pct(clean_final(*b))
       << "%).\n";
  auto occl = [](const StudyEntry& e) { return group_value(e.summary.mca, "occlusion"); };
  auto noise = [](const StudyEntry& e) { return group_value(e.summary.mca, "noise"); };
  if (const StudyEntry* b = best_by(occl)) md << "- Under occlusion **" << b->name << "** has the highest mCA (" << pct(occl(*b)) << "%).\n";
  if (const StudyEntry* b = best_by(noise)) md << "- Under noise **" << b->name << "** has the highest mCA (" << pct(noise(*b)) << "%).\n";
  for (const auto& e : models) {
    const auto& clean = clean_cells(e);
    const Summary& s = e.summary;
    if (clean.size() < 2) continue;
    double d = as_written(s.headline("clean", 0).accuracy) - as_written(clean.front().accuracy);
    md << "- " << e.name << ": clean accuracy " << (d > 0.001 ? "rises" : d < -0.001 ? "falls" : "stays level")
       << " from step 1 (" << pct(clean.front().accuracy) << "%) to step " << s.readout_step << " ("
       << pct(s.headline("clean", 0).accuracy) << "%, the trained step count)";
    if (s.steps.back() > s.readout_step)
      md << ", and is " << pct(clean.back().accuracy) << "% at step " << s.steps.back() << " beyond training";
    std::vector<double> rhos;
    for (const auto& f : sweep.occlusion)
      if (double rho = s.delta_rec_trend.at(f); std::isfinite(rho)) rhos.push_back(rho);
    if (!rhos.empty()) {
      double m = mean(rhos);
      md << "; the recurrent benefit Δrec " << (m > 0.5 ? "grows" : m < -0.5 ? "shrinks" : "shows no clear trend")
         << " with occlusion severity (mean Spearman ρ = " << num(m, "%.2f") << ")";
    }
    md << ".\n";
  }
  for (const auto& e : models) {
    if (e.name == x.reference) continue;
    double p = e.summary.reference.value().mcnemar.at("clean").at(0).p;
    md << "- " << e.name << " vs " << x.reference << " on clean images: "
       << (p < 0.05 ? "the difference is significant" : "no significant difference") << " (McNemar p = " << num(p, "%.3g")
       << ").\n";
  }
}

}  // namespace

std::string write_report(const std::string& out, const Experiment& x, const std::vector<StudyEntry>& models,
                         const Dataset& images, const std::string& dataset) {
  Sweep sweep{parse_perturbations(x.perturb), {}};
  for (const auto& s : sweep.specs)
    if (perturbation_group(s.family) == "occlusion") sweep.occlusion.push_back(s.family);
  const bool severity_figure = write_figures(out, x, sweep, models, images);

  std::ostringstream md;
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  md << "# Comparison: " << fs::path(x.path).stem().string() << "\n\n";
  md << "Generated by `ventral compare " << x.path << "` on " << date << ". Dataset: " << dataset << " ("
     << models.front().summary.n << " test images). Reference (feed-forward baseline): **" << x.reference
     << "**. Perturbations: `" << x.perturb << "` (seed " << x.seed << ").\n\n";
  models_table(md, x, models);
  mcnemar_table(md, x, sweep, models);
  md << "\n## Figures\n\n";
  md << "![accuracy vs steps](figures/accuracy_vs_steps.png)\n\n";
  if (severity_figure) md << "![accuracy vs severity](figures/accuracy_vs_severity.png)\n\n";
  md << "![training curves](figures/training_curves.png)\n\n![perturbations](figures/perturbations.png)\n\n";
  reading(md, x, sweep, models);
  md << "\nPer-model outputs: `eval/<model>/` (results.csv, summary.json, per_image.csv, plots); runs: `runs/<model>/`.\n";
  std::string report = (fs::path(out) / "REPORT.md").string();
  write_file_atomic(report, md.str());
  return report;
}

}  // namespace ventral
