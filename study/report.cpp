#include "study/report.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <functional>
#include <map>
#include <stdexcept>
#include <filesystem>
#include <sstream>

#include "core/io.hpp"
#include "core/text.hpp"
#include "datasets/perturb.hpp"
#include "eval/metrics.hpp"
#include "eval/plot.hpp"
#include "eval/sweep.hpp"

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

struct Sweep {  // what the experiment evaluated
  std::vector<PerturbationSpec> specs;
  std::vector<std::string> occlusion;
  int hardest(const std::string& family) const {
    for (const auto& s : specs)
      if (s.family == family) return *std::max_element(s.severities.begin(), s.severities.end());
    return 0;
  }
};

// One number of every run of a model (seed order).
template <class F>
std::vector<double> per_run(const StudyModel& m, F value) {
  std::vector<double> v;
  for (const auto& r : m.runs) v.push_back(value(r));
  return v;
}
// The mean over seeds of the values as results.csv holds them, as the tables average them, so
// the reading and the tables print the same digits.
template <class F>
double mean_of(const StudyModel& m, F value) {
  std::vector<double> written;
  for (double v : per_run(m, value)) written.push_back(as_written(v));
  return seed_stats(written).mean;
}

// Accuracies (fractions) in %: one run's value, or mean ± sd over seeds.
std::string pct_over_seeds(const std::vector<double>& v) {
  if (v.size() == 1 || std::none_of(v.begin(), v.end(), [](double a) { return std::isfinite(a); })) return pct(v.front());
  std::vector<double> written;
  for (double a : v) written.push_back(as_written(a));
  const SeedStats s = seed_stats(written);
  return num(100 * s.mean, "%.2f") + " ± " + num(100 * s.sd, "%.2f");
}
// The same with its 95% interval: Wilson over images for one run, Student's t over seeds for several.
std::string pct_with_interval(const StudyModel& m, const std::function<const AccuracyCell&(const Summary&)>& cell) {
  if (m.runs.size() == 1) {
    const AccuracyCell& c = cell(m.runs.front().summary);
    return pct(c.accuracy) + " (" + pct(c.ci_low) + "–" + pct(c.ci_high) + ")";
  }
  std::vector<double> v;
  for (const auto& r : m.runs) v.push_back(as_written(cell(r.summary).accuracy));
  const SeedStats s = seed_stats(v);
  // Student's t knows nothing of accuracy's bounds: with few seeds the interval is clipped to 0–100%.
  auto clipped = [](double a) { return std::isfinite(a) ? std::clamp(a, 0.0, 1.0) : a; };
  return pct_over_seeds(v) + " (" + num(100 * clipped(s.ci_low), "%.2f") + "–" + num(100 * clipped(s.ci_high), "%.2f") + ")";
}
// A plain number (format f): one run's, or mean ± sd.
// (The sd never carries the sign of a "%+.2f" format.)
std::string number_over_seeds(const std::vector<double>& v, const char* f) {
  const SeedStats s = seed_stats(v);
  if (std::none_of(v.begin(), v.end(), [](double a) { return std::isfinite(a); })) return num(NAN);
  std::string sd_format = f;
  sd_format.erase(std::remove(sd_format.begin(), sd_format.end(), '+'), sd_format.end());
  return v.size() == 1 ? num(v.front(), f) : num(s.mean, f) + " ± " + num(s.sd, sd_format.c_str());
}

// What the reference is: the feed-forward baseline the statistics are made for, or (said so,
// not hidden behind that name) a recurrent model read out at its trained step count.
std::string reference_role(const Experiment& x, const std::vector<StudyModel>& models) {
  for (const auto& m : models)
    if (m.name == x.reference && m.runs.front().summary.readout_step > 1)
      return "recurrent, read out at its step " + std::to_string(m.runs.front().summary.readout_step) +
             "; not a feed-forward baseline";
  return "feed-forward baseline";
}

// A line over steps per run, averaged over seeds; a model read out once is drawn flat.
Series over_steps(const StudyModel& m, const std::string& family, int severity, int64_t max_step) {
  Series s{m.name, {}, {}, {}, {}};
  const auto& first = m.runs.front().summary;
  const size_t K = first.accuracy.at(family).at(severity).size();
  std::vector<double> x;
  if (K == 1) x = {1, static_cast<double>(max_step)};
  else
    for (size_t k = 0; k < K; ++k) x.push_back(static_cast<double>(first.steps[k]));
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t k = K == 1 ? 0 : i;
    const SeedStats st = seed_stats(per_run(m, [&](const StudyRun& r) { return r.summary.accuracy.at(family).at(severity).at(k).accuracy; }));
    s.x.push_back(x[i]);
    s.y.push_back(st.mean);
    if (m.runs.size() > 1) s.lo.push_back(st.mean - st.sd), s.hi.push_back(st.mean + st.sd);
  }
  return s;
}

// Figures: accuracy vs steps (clean and each family at its hardest severity), accuracy vs
// severity at the readout step, training curves, a contact sheet; with several seeds the lines
// are means and the bands ± sd. Returns whether the severity figure was drawn.
bool write_figures(const std::string& out, const Experiment& x, const Sweep& sweep,
                   const std::vector<StudyModel>& models, const Dataset& images) {
  const fs::path dir = fs::path(out) / "figures";
  make_directories(dir.string());
  const bool seeded = models.front().runs.size() > 1;
  const std::string over = seeded ? " (mean ± sd over " + std::to_string(models.front().runs.size()) + " seeds)" : "";
  int64_t max_step = 1;
  for (const auto& m : models)
    for (const auto& r : m.runs) max_step = std::max(max_step, r.summary.steps.back());
  std::vector<std::pair<std::string, int>> panels = {{"clean", 0}};
  for (const auto& s : sweep.specs) panels.emplace_back(s.family, sweep.hardest(s.family));
  std::vector<Chart> step_panels, severity_panels;
  for (const auto& [family, sev] : panels) {
    Chart c{family + (sev ? " " + std::to_string(sev) : ""), "step", "accuracy", {}, NAN, NAN};
    for (const auto& m : models) c.series.push_back(over_steps(m, family, sev, max_step));
    step_panels.push_back(c);
  }
  for (const auto& s : sweep.specs) {
    Chart c{s.family, "severity", "accuracy (final step)", {}, NAN, NAN};
    for (const auto& m : models) {
      Series ser{m.name, {}, {}, {}, {}};
      std::vector<int> severities = {0};
      severities.insert(severities.end(), s.severities.begin(), s.severities.end());
      for (int sev : severities) {
        const std::string family = sev ? s.family : "clean";
        const SeedStats st = seed_stats(per_run(m, [&](const StudyRun& r) { return r.summary.headline(family, sev).accuracy; }));
        ser.x.push_back(sev), ser.y.push_back(st.mean);
        if (seeded) ser.lo.push_back(st.mean - st.sd), ser.hi.push_back(st.mean + st.sd);
      }
      c.series.push_back(ser);
    }
    severity_panels.push_back(c);
  }
  const bool mixed = std::any_of(models.begin(), models.end(), [](const StudyModel& m) { return !m.train_perturb.empty(); });
  Chart curves{std::string("validation accuracy during training (final step") +
                   (mixed ? "; each model on validation images of its own training distribution" : "") + ")" + over,
               "epoch", "accuracy", {}, NAN, NAN};
  for (const auto& m : models) {
    Series s{m.name + (m.train_perturb.empty() || !mixed ? "" : " (val perturbed)"), {}, {}, {}, {}};
    std::map<int64_t, std::vector<double>> by_epoch;  // a run cut short adds fewer points, never misplaced ones
    for (const auto& r : m.runs)
      for (const auto& [epoch, a] : r.curve) by_epoch[epoch].push_back(a);
    for (const auto& [epoch, v] : by_epoch) {
      const SeedStats st = seed_stats(v);
      s.x.push_back(static_cast<double>(epoch)), s.y.push_back(st.mean);
      if (seeded) s.lo.push_back(v.size() > 1 ? st.mean - st.sd : st.mean), s.hi.push_back(v.size() > 1 ? st.mean + st.sd : st.mean);
    }
    curves.series.push_back(s);
  }
  write_png((dir / "accuracy_vs_steps.png").string(),
            render_grid(step_panels, "accuracy vs steps: clean and each family at its hardest severity" + over));
  if (!severity_panels.empty())
    write_png((dir / "accuracy_vs_severity.png").string(),
              render_grid(severity_panels, "accuracy vs severity (final step), one panel per family" + over));
  write_png((dir / "training_curves.png").string(), render_chart(curves, 760, 420));
  write_png((dir / "perturbations.png").string(), render_contact_sheet(images, sweep.specs, 8, x.seed));
  return !severity_panels.empty();
}

double clean_first(const StudyRun& r) { return r.summary.clean(0).accuracy; }
double clean_final(const StudyRun& r) { return r.summary.headline("clean", 0).accuracy; }
double occlusion_mca(const StudyRun& r) { return group_value(r.summary.mca, "occlusion"); }
double noise_mca(const StudyRun& r) { return group_value(r.summary.mca, "noise"); }
double delta_rec_clean(const StudyRun& r) { return 100 * (as_written(clean_final(r)) - as_written(clean_first(r))); }

void models_table(std::ostream& md, const Experiment& x, const std::vector<StudyModel>& models) {
  const bool trained_on = std::any_of(models.begin(), models.end(), [](const StudyModel& m) { return !m.train_perturb.empty(); });
  const bool seeded = models.front().runs.size() > 1;
  md << "## Models\n\n";
  md << "| model | architecture |" << (trained_on ? " trained on |" : "") << " parameters | MACs/step | steps | clean acc. step 1"
     << (seeded ? "" : " (95% CI)") << " | clean acc. final step (95% CI) | mCA occlusion | mCA noise | mCE vs reference | "
        "Δrec (clean) | epochs | training time |\n";
  md << "|---|---|" << (trained_on ? "---|" : "") << "---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : models) {
    const Summary& s = m.runs.front().summary;
    md << "| " << m.name << " | " << m.model << " | ";
    if (trained_on) md << (m.train_perturb.empty() ? std::string("clean") : "`" + m.train_perturb + "`") << " | ";
    md << m.params << " | " << m.macs << " | " << s.readout_step << " | "
       << (seeded ? pct_over_seeds(per_run(m, clean_first)) : pct_with_interval(m, [](const Summary& v) -> const AccuracyCell& { return v.clean(0); }))
       << " | " << pct_with_interval(m, [](const Summary& v) -> const AccuracyCell& { return v.headline("clean", 0); }) << " | "
       << pct_over_seeds(per_run(m, occlusion_mca)) << " | " << pct_over_seeds(per_run(m, noise_mca)) << " | "
       << (m.name == x.reference ? std::string("100 (reference)")
                                 : number_over_seeds(per_run(m, [](const StudyRun& r) {
                                     return r.summary.reference ? r.summary.reference->mce : NAN;
                                   }), "%.1f"))
       << " | " << number_over_seeds(per_run(m, delta_rec_clean), "%+.2f") << " | " << m.epochs << " | "
       << num(mean_of(m, [](const StudyRun& r) { return r.train_seconds; }) / 60, "%.1f min") << " |\n";
  }
  md << "\nAccuracies in %; mCA: mean accuracy over the group's families and severities evaluated ("
     << (x.perturb == "all" ? std::string("all families, severities 1–5") : x.perturb.empty() ? std::string("none") : x.perturb) << "); mCE: mean corruption "
        "error over families relative to the reference (100 = as good as the reference, lower is better); Δrec: "
        "final step minus step 1 in points. Final step: the number of steps the model was trained with (steps; the "
        "figures show every evaluated step, including those beyond it).";
  if (seeded)
    md << " Each model trained once per seed (" << models.front().runs.size()
       << " seeds): a ± b is the mean and sample standard deviation over seeds, intervals are the 95% Student-t "
          "intervals of the mean (n − 1 degrees of freedom; clipped to 0–100%, and wide with few seeds: t = 12.7 "
          "for 2); training time is the mean per run.";
  if (trained_on)
    md << " Trained on: the training perturbation (`data.augment.perturb`, family and severity drawn per image and "
          "epoch; validation drawn the same way) or clean images.";
  std::map<std::string, std::vector<std::string>> by_precision;
  for (const auto& m : models)
    for (const auto& r : m.runs)
      if (auto& names = by_precision[r.precision]; std::find(names.begin(), names.end(), m.name) == names.end())
        names.push_back(m.name);
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

void mcnemar_table(std::ostream& md, const Experiment& x, const Sweep& sweep, const std::vector<StudyModel>& models) {
  md << "## Paired tests against " << x.reference << " (McNemar, same images, final steps)\n\n";
  md << "| model | clean p |";
  for (const auto& f : sweep.occlusion) md << " " << f << " " << sweep.hardest(f) << " p |";
  md << "\n|---|---:|";
  for (size_t i = 0; i < sweep.occlusion.size(); ++i) md << "---:|";
  md << "\n";
  for (const auto& e : models) {
    if (e.name == x.reference) continue;
    const auto& m = e.runs.front().summary.reference.value().mcnemar;
    md << "| " << e.name << " | " << num(m.at("clean").at(0).p, "%.3g") << " |";
    for (const auto& f : sweep.occlusion) md << " " << num(m.at(f).at(sweep.hardest(f)).p, "%.3g") << " |";
    md << "\n";
  }
}

// One measure compared with the reference seed by seed.
struct PairedMeasure {
  std::string label;
  std::function<double(const StudyRun&)> value;  ///< accuracy (fraction)
  std::string family;                            ///< for McNemar; empty for means over families
  int severity = 0;
};

std::vector<PairedMeasure> paired_measures(const Sweep& sweep) {
  std::vector<PairedMeasure> out = {{"clean", clean_final, "clean", 0}};
  for (const auto& f : sweep.occlusion) {
    const int sev = sweep.hardest(f);
    out.push_back({f + " " + std::to_string(sev), [f, sev](const StudyRun& r) { return r.summary.headline(f, sev).accuracy; }, f, sev});
  }
  // A group's mCA only when the sweep has a family of it.
  if (!sweep.occlusion.empty()) out.push_back({"mCA occlusion", occlusion_mca, "", 0});
  if (sweep.occlusion.size() < sweep.specs.size()) out.push_back({"mCA noise", noise_mca, "", 0});
  return out;
}

// Per-seed differences model − reference in points (seeds paired by position).
std::vector<double> differences(const StudyModel& m, const StudyModel& ref, const PairedMeasure& measure) {
  std::vector<double> d;
  // Rounded to the printed accuracies' resolution, so equal differences are exactly equal.
  for (size_t k = 0; k < m.runs.size() && k < ref.runs.size(); ++k) {
    if (m.runs[k].seed != ref.runs[k].seed)
      throw std::logic_error("report: " + m.name + "'s run " + std::to_string(k) + " has seed " + std::to_string(m.runs[k].seed) +
                             ", the reference's " + std::to_string(ref.runs[k].seed));
    d.push_back(std::round(1e4 * 100 * (as_written(measure.value(m.runs[k])) - as_written(measure.value(ref.runs[k])))) / 1e4);
  }
  return d;
}

void seeded_tests_table(std::ostream& md, const Experiment& x, const Sweep& sweep, const std::vector<StudyModel>& models) {
  const StudyModel& ref = *std::find_if(models.begin(), models.end(), [&](const StudyModel& m) { return m.name == x.reference; });
  const size_t n = ref.runs.size();
  md << "## Paired tests against " << x.reference << " over " << n << " seeds\n\n";
  md << "Each model's run with seed k is compared with the reference's run with seed k on the same test images. "
        "Δ: model minus reference in points, mean ± sd over seeds. Per seed: McNemar p on the images (final steps). "
        "Combined over seeds: the paired t-test of the per-seed Δ (n − 1 = "
     << n - 1 << " degrees of freedom) and the exact sign-flip permutation test (with " << n
     << " seeds its smallest possible p is " << num(2.0 / std::pow(2.0, static_cast<double>(n)), "%.3g") << ").\n\n";
  md << "| model | measure | Δ (points) | McNemar p per seed | paired t p | sign-flip p |\n|---|---|---:|---|---:|---:|\n";
  for (const auto& m : models) {
    if (m.name == x.reference) continue;
    for (const auto& measure : paired_measures(sweep)) {
      const std::vector<double> d = differences(m, ref, measure);
      std::string per_seed = "–";
      if (!measure.family.empty()) {
        std::vector<std::string> ps;
        for (const auto& r : m.runs) ps.push_back(num(r.summary.reference.value().mcnemar.at(measure.family).at(measure.severity).p, "%.2g"));
        per_seed = join(ps, ", ");
      }
      md << "| " << m.name << " | " << measure.label << " | " << number_over_seeds(d, "%+.2f") << " | " << per_seed << " | "
         << num(paired_t_p(d), "%.3g") << " | " << num(sign_flip_p(d), "%.3g") << " |\n";
    }
  }
}

bool masked(const StudyModel& m) { return !m.runs.front().masked.empty(); }

// Accuracy at the trained step with the image shown at steps 1..K (K = 0: shown throughout).
double masked_accuracy(const StudyRun& r, int64_t k, const Condition& c) {
  if (k == 0) return r.summary.headline(c.family, c.severity).accuracy;
  auto it = r.masked.find(k);
  if (it == r.masked.end() || !it->second.count(c.label())) return NAN;
  return it->second.at(c.label());
}

// "## Backward masking": a table (rows: model × presentation) and OUT/figures/masking.png
// (accuracy at the trained step against the steps the image was shown, one panel per condition).
void masking_section(std::ostream& md, const std::string& out, const Experiment& x, const Sweep& sweep,
                     const std::vector<StudyModel>& models) {
  std::vector<const StudyModel*> shown;
  for (const auto& m : models)
    if (masked(m)) shown.push_back(&m);
  if (x.present.empty()) return;
  if (shown.empty()) {  // asked for, but no model could be masked: said, not silently absent
    md << "\n## Backward masking\n\nNot measured: eval.present is " << x.present
       << ", but none of the models takes the image at every step (feed-forward nets and CORnet-S take it once), so "
          "there is nothing to replace it with a mask.\n";
    return;
  }
  const std::vector<Condition> conditions = masking_conditions(x.perturb);
  const std::vector<int64_t> presents = parse_steps(x.present);
  const bool seeded = models.front().runs.size() > 1;
  md << "\n## Backward masking\n\n";
  md << "The image is shown at steps 1..K only and replaced by a " << (x.mask == "blank" ? "blank (zeros after normalisation: the training mean)" : "noise mask (standard normal, per image)")
     << " afterwards; accuracy at each model's trained step" << (seeded ? ", mean ± sd over seeds" : "")
     << ". Models that take the image once (feed-forward nets, CORnet-S) cannot be masked.\n\n";
  md << "| model | image shown |";
  for (const auto& c : conditions) md << " " << c.label() << " |";
  md << "\n|---|---|";
  for (size_t i = 0; i < conditions.size(); ++i) md << "---:|";
  md << "\n";
  for (const StudyModel* m : shown) {
    const int64_t readout = m->runs.front().summary.readout_step;
    std::vector<int64_t> rows = {0};  // 0: shown throughout
    rows.insert(rows.end(), presents.begin(), presents.end());
    for (int64_t k : rows) {
      md << "| " << m->name << " | "
         << (k ? "steps 1–" + std::to_string(k) + ", then " + x.mask : "every step (1–" + std::to_string(readout) + ")") << " |";
      for (const auto& c : conditions) md << " " << pct_over_seeds(per_run(*m, [&](const StudyRun& r) { return masked_accuracy(r, k, c); })) << " |";
      md << "\n";
    }
  }
  std::vector<Chart> panels;
  for (const auto& c : conditions) {
    Chart chart{c.label(), "steps the image was shown", "accuracy (trained step)", {}, NAN, NAN};
    for (const StudyModel* m : shown) {
      Series s{m->name, {}, {}, {}, {}};
      std::vector<int64_t> ks = presents;
      ks.push_back(0);  // shown throughout, drawn at the trained step count
      for (int64_t k : ks) {
        const SeedStats st = seed_stats(per_run(*m, [&](const StudyRun& r) { return masked_accuracy(r, k, c); }));
        s.x.push_back(static_cast<double>(k ? k : m->runs.front().summary.readout_step));
        s.y.push_back(st.mean);
        if (seeded) s.lo.push_back(st.mean - st.sd), s.hi.push_back(st.mean + st.sd);
      }
      chart.series.push_back(s);
    }
    panels.push_back(chart);
  }
  write_png((fs::path(out) / "figures" / "masking.png").string(),
            render_grid(panels, "backward masking: accuracy at the trained step vs steps the image was shown (then " + x.mask + ")"));
  md << "\n![backward masking](figures/masking.png)\n";
}

// A reading generated from the numbers (means over seeds), never hand-written.
void reading(std::ostream& md, const Experiment& x, const Sweep& sweep, const std::vector<StudyModel>& models) {
  md << "## Reading\n\n";
  const bool seeded = models.front().runs.size() > 1;
  const std::string over = seeded ? ", mean over " + std::to_string(models.front().runs.size()) + " seeds" : "";
  auto best_by = [&](auto value) {
    const StudyModel* best = nullptr;
    for (const auto& m : models)
      if (std::isfinite(mean_of(m, value)) && (!best || mean_of(m, value) > mean_of(*best, value))) best = &m;
    return best;
  };
  if (const StudyModel* b = best_by(clean_final))
    md << "- On clean images **" << b->name << "** is the most accurate at its final step (" << pct(mean_of(*b, clean_final))
       << "%" << over << ").\n";
  if (const StudyModel* b = best_by(occlusion_mca))
    md << "- Under occlusion **" << b->name << "** has the highest mCA (" << pct(mean_of(*b, occlusion_mca)) << "%" << over << ").\n";
  if (const StudyModel* b = best_by(noise_mca))
    md << "- Under noise **" << b->name << "** has the highest mCA (" << pct(mean_of(*b, noise_mca)) << "%" << over << ").\n";
  for (const auto& m : models) {
    const Summary& s = m.runs.front().summary;
    if (s.accuracy.at("clean").at(0).size() < 2) continue;
    const double first = mean_of(m, clean_first), last = mean_of(m, clean_final);
    const double d = mean_of(m, delta_rec_clean) / 100;
    md << "- " << m.name << ": clean accuracy " << (d > 0.001 ? "rises" : d < -0.001 ? "falls" : "stays level")
       << " from step 1 (" << pct(first) << "%) to step " << s.readout_step << " (" << pct(last) << "%, the trained step count)";
    if (s.steps.back() > s.readout_step)
      md << ", and is " << pct(mean_of(m, [](const StudyRun& r) { return r.summary.clean(r.summary.steps.size() - 1).accuracy; }))
         << "% at step " << s.steps.back() << " beyond training";
    std::vector<double> rhos;
    for (const auto& r : m.runs)
      for (const auto& f : sweep.occlusion)
        if (double rho = r.summary.delta_rec_trend.at(f); std::isfinite(rho)) rhos.push_back(rho);
    if (!rhos.empty()) {
      double mr = mean(rhos);
      md << "; the recurrent benefit Δrec " << (mr > 0.5 ? "grows" : mr < -0.5 ? "shrinks" : "shows no clear trend")
         << " with occlusion severity (mean Spearman ρ = " << num(mr, "%.2f") << (seeded ? ", over families and seeds" : "") << ")";
    }
    md << ".\n";
  }
  if (!x.present.empty()) {
    const std::vector<Condition> conditions = masking_conditions(x.perturb);
    const int64_t k = parse_steps(x.present).front();
    for (const auto& m : models) {
      if (!masked(m)) continue;
      md << "- " << m.name << " under backward masking (image at steps 1–" << k << ", then " << x.mask << "):";
      const char* sep = " ";
      for (const auto& c : conditions) {
        const double full = mean_of(m, [&](const StudyRun& r) { return masked_accuracy(r, 0, c); });
        const double cut = mean_of(m, [&](const StudyRun& r) { return masked_accuracy(r, k, c); });
        md << sep << c.label() << " " << pct(full) << "% → " << pct(cut) << "% (" << num(100 * (cut - full), "%+.2f") << ")";
        sep = "; ";
      }
      md << ".\n";
    }
  }
  if (!seeded) {
    for (const auto& m : models) {
      if (m.name == x.reference) continue;
      double p = m.runs.front().summary.reference.value().mcnemar.at("clean").at(0).p;
      md << "- " << m.name << " vs " << x.reference << " on clean images: "
         << (p < 0.05 ? "the difference is significant" : "no significant difference") << " (McNemar p = " << num(p, "%.3g")
         << ").\n";
    }
    return;
  }
  const StudyModel& ref = *std::find_if(models.begin(), models.end(), [&](const StudyModel& m) { return m.name == x.reference; });
  for (const auto& m : models) {
    if (m.name == x.reference) continue;
    md << "- " << m.name << " vs " << x.reference << ":";
    const char* sep = " ";
    for (const auto& measure : paired_measures(sweep)) {
      if (measure.label != "clean" && measure.label != "mCA occlusion") continue;
      const std::vector<double> d = differences(m, ref, measure);
      const double p = paired_t_p(d);
      const bool measured = std::all_of(d.begin(), d.end(), [](double v) { return std::isfinite(v); });
      md << sep << measure.label << " " << number_over_seeds(d, "%+.2f") << " points over " << d.size() << " seeds (";
      if (!measured) md << "not measured)";
      else
        md << (p < 0.05 ? "significant" : std::isnan(p) ? "no t-test: the same difference every seed" : "not significant")
           << ", paired t p = " << num(p, "%.3g") << ", sign-flip p = " << num(sign_flip_p(d), "%.3g") << ")";
      sep = "; ";
    }
    md << ".\n";
  }
}

}  // namespace

std::string write_report(const std::string& out, const Experiment& x, const std::vector<StudyModel>& models,
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
     << models.front().runs.front().summary.n << " test images). Reference ("
     << reference_role(x, models) << "): **" << x.reference << "**. Perturbations: `" << x.perturb << "` (seed " << x.seed << ").";
  if (!x.seeds.empty()) {
    std::vector<std::string> seeds;
    for (uint64_t k : x.seeds) seeds.push_back(std::to_string(k));
    md << " Training seeds: " << join(seeds, ", ") << ".";
  }
  md << "\n\n";
  models_table(md, x, models);
  if (models.front().runs.size() > 1) seeded_tests_table(md, x, sweep, models);
  else mcnemar_table(md, x, sweep, models);
  md << "\n## Figures\n\n";
  md << "![accuracy vs steps](figures/accuracy_vs_steps.png)\n\n";
  if (severity_figure) md << "![accuracy vs severity](figures/accuracy_vs_severity.png)\n\n";
  md << "![training curves](figures/training_curves.png)\n\n![perturbations](figures/perturbations.png)\n";
  masking_section(md, out, x, sweep, models);
  md << "\n";
  reading(md, x, sweep, models);
  md << "\nPer-model outputs: `eval/<model>/" << (x.seeds.empty() ? "" : "seed<k>/")
     << "` (results.csv, summary.json, per_image.csv, plots); runs: `runs/<model>/" << (x.seeds.empty() ? "" : "seed<k>/") << "`.\n";
  std::string report = (fs::path(out) / "REPORT.md").string();
  write_file_atomic(report, md.str());
  return report;
}

}  // namespace ventral
