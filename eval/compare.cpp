#include "eval/compare.hpp"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"
#include "eval/perturb.hpp"
#include "eval/plot.hpp"
#include "eval/sweep.hpp"
#include "models/registry.hpp"
#include "train/trainer.hpp"

namespace ventral {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string render_value(const YAML::Node& n) {
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return e.c_str();
}

void check_keys(const YAML::Node& node, const std::vector<std::string>& valid, const std::string& where,
                const std::string& path) {
  for (const auto& item : node) {
    std::string key = item.first.as<std::string>();
    if (std::find(valid.begin(), valid.end(), key) == valid.end())
      throw InputError(path + ": unknown key '" + where + key + "' (did you mean '" + where + closest(key, valid) + "'?)");
  }
}

// Dotted-key overrides from a mapping {train.epochs: 2, model: {name: x}}.
void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& item : node) {
    std::string key = prefix.empty() ? item.first.as<std::string>() : prefix + "." + item.first.as<std::string>();
    if (item.second.IsMap()) flatten(item.second, key, out);
    else out.push_back(key + "=" + render_value(item.second));
  }
}

std::string read_text(const std::string& path) {
  std::vector<unsigned char> bytes = read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string num(double v, const char* f = "%.1f") { return std::isfinite(v) ? format_number(f, v) : "–"; }
std::string pct(double v) { return num(100 * v, "%.2f"); }

double get(const json& j, std::initializer_list<const char*> path) {
  const json* cur = &j;
  for (const char* k : path) {
    if (!cur->is_object() || !cur->contains(k)) return NAN;
    cur = &(*cur)[k];
  }
  return cur->is_number() ? cur->get<double>() : NAN;
}

struct Row {  // one line of results.csv
  double accuracy, lo, hi;
};
using Results = std::map<std::string, std::map<int, std::map<int64_t, Row>>>;  // family → severity → step

Results read_results(const std::string& path) {
  Results r;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<std::string> c = split_csv_row(line);
    if (c.size() < 7) continue;
    r[c[0]][std::stoi(c[1])][std::stoll(c[2])] = {std::stod(c[3]), std::stod(c[5]), std::stod(c[6])};
  }
  return r;
}

struct ModelResult {
  std::string name, model;
  int64_t params = 0, macs = 0, trained_steps = 1, epochs = 0;
  bool recurrent = false;
  double train_seconds = NAN;
  json summary;
  Results results;
  std::vector<std::pair<int64_t, double>> curve;  // epoch → validation accuracy at the final step
};

// A model's training config: its base (or the experiment's), then the experiment's overrides,
// then the model's own.
Config model_config(const Experiment& x, const CompareModel& m) {
  std::vector<std::string> all = x.overrides;
  all.insert(all.end(), m.overrides.begin(), m.overrides.end());
  return Config::load(m.base.empty() ? x.base : m.base, all);
}

}  // namespace

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides,
                           const std::vector<std::string>& only) {
  YAML::Node root = load_yaml_file(path);
  if (!root.IsMap()) throw InputError(path + ": expected a mapping with base, models, reference, eval");
  check_keys(root, {"base", "overrides", "models", "reference", "eval"}, "", path);
  Experiment x;
  x.path = path;
  try {
    if (!root["base"]) throw InputError(path + ": missing key 'base' (the training config every model starts from)");
    x.base = (fs::path(path).parent_path() / root["base"].as<std::string>()).string();
    if (root["overrides"]) flatten(root["overrides"], "", x.overrides);
    std::vector<std::string> eval_overrides;
    for (const auto& o : overrides) (o.rfind("eval.", 0) == 0 ? eval_overrides : x.overrides).push_back(o);
    if (!root["models"] || !root["models"].IsSequence() || root["models"].size() == 0)
      throw InputError(path + ": key 'models' must list the models to compare");
    for (const auto& m : root["models"]) {
      if (!m.IsMap()) throw InputError(path + ": each entry of 'models' needs a name (and optional config)");
      check_keys(m, {"name", "base", "config"}, "models[].", path);
      if (!m["name"]) throw InputError(path + ": a model entry has no 'name'");
      CompareModel cm{m["name"].as<std::string>(), "", {"model.name=" + m["name"].as<std::string>()}};
      if (m["base"]) cm.base = (fs::path(path).parent_path() / m["base"].as<std::string>()).string();
      if (std::any_of(x.models.begin(), x.models.end(), [&](const CompareModel& o) { return o.name == cm.name; }))
        throw InputError(path + ": model '" + cm.name + "' is listed twice (names label the runs: give each entry its own)");
      if (m["config"]) {
        if (!m["config"].IsMap()) throw InputError(path + ": models[" + cm.name + "].config must be a mapping of keys");
        flatten(m["config"], "", cm.overrides);
      }
      x.models.push_back(cm);
    }
    for (const auto& name : only)
      if (std::none_of(x.models.begin(), x.models.end(), [&](const CompareModel& m) { return m.name == name; }))
        throw InputError(path + ": --models names '" + name + "', which the experiment does not list");
    if (!only.empty())
      x.models.erase(std::remove_if(x.models.begin(), x.models.end(),
                                    [&](const CompareModel& m) {
                                      return std::find(only.begin(), only.end(), m.name) == only.end();
                                    }),
                     x.models.end());
    x.reference = root["reference"] ? root["reference"].as<std::string>() : x.models.front().name;
    if (std::none_of(x.models.begin(), x.models.end(), [&](const CompareModel& m) { return m.name == x.reference; }))
      throw InputError(path + ": reference '" + x.reference + "' is not one of the models");
    if (root["eval"]) {
      check_keys(root["eval"], {"steps", "perturb", "limit", "seed"}, "eval.", path);
      if (root["eval"]["steps"]) x.steps = root["eval"]["steps"].as<std::string>();
      if (root["eval"]["perturb"]) x.perturb = root["eval"]["perturb"].as<std::string>();
      if (root["eval"]["limit"]) x.limit = root["eval"]["limit"].as<int64_t>();
      if (root["eval"]["seed"]) x.seed = root["eval"]["seed"].as<uint64_t>();
    }
    for (const auto& o : eval_overrides) {
      std::string key = o.substr(0, o.find('=')), value = o.substr(o.find('=') + 1);
      if (key == "eval.steps") x.steps = value;
      else if (key == "eval.perturb") x.perturb = value;
      else if (key == "eval.limit" || key == "eval.seed") {
        char* end = nullptr;
        long long v = std::strtoll(value.c_str(), &end, 10);
        if (value.empty() || *end || v < 0) throw InputError("compare: " + key + " must be a non-negative integer, got '" + value + "'");
        if (key == "eval.limit") x.limit = v;
        else x.seed = static_cast<uint64_t>(v);
      }
      else throw InputError("compare: unknown override '" + key + "' (eval keys: eval.steps, eval.perturb, eval.limit, eval.seed)");
    }
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": " + e.msg);
  }
  // Check everything before hours of training: configs, model names, steps, perturbations.
  for (const auto& m : x.models) {
    find_model(model_config(x, m).get_string("model.name"));
  }
  if (!x.steps.empty()) parse_steps(x.steps);
  parse_perturbations(x.perturb);
  return x;
}

std::string run_compare(const Experiment& x, const std::string& out) {
  fs::create_directories(out);
  std::vector<ModelResult> models;
  const std::string ref_dir = (fs::path(out) / "runs" / x.reference).string();
  auto reference_cache = std::make_shared<ReferenceCache>();
  // A run already in the experiment directory is reused (or resumed) only if it was trained with
  // the config the experiment asks for; checked for every model before any training starts.
  // Keys that change how fast a run goes but not what it learns may differ.
  static const std::vector<std::string> execution_keys = {"threads", "device", "memory_format", "data.loader_threads",
                                                          "data.prefetch", "train.eval_batch_size", "train.log_every",
                                                          "train.stop_after_steps"};
  for (const auto& m : x.models) {
    fs::path saved = fs::path(out) / "runs" / m.name / "config.yaml";
    if (!fs::exists(saved)) continue;
    Config wanted = model_config(x, m);
    std::vector<std::string> ignore = execution_keys;
    for (const char* key : {"data.mean", "data.std"})  // empty: measured on the training split and saved
      if (wanted.get_floats(key).empty()) ignore.push_back(key);
    auto diff = Config::load(saved.string()).differences(wanted, ignore);
    if (!diff.empty()) {
      std::string keys;
      for (const auto& d : diff) keys += (keys.empty() ? "" : ", ") + d;
      throw InputError(saved.string() + ": this run of " + m.name + " was trained with a different config than the experiment asks for (" +
                       keys + "); move the run away to retrain it, or give the model another name");
    }
  }
  // Train (or reuse, or resume) every model; the reference first so others can compare to it.
  std::vector<CompareModel> order = x.models;
  std::stable_partition(order.begin(), order.end(), [&](const CompareModel& m) { return m.name == x.reference; });
  for (const auto& m : order) {
    std::string run = (fs::path(out) / "runs" / m.name).string();
    if (fs::exists(fs::path(run) / "test.json")) {
      std::fprintf(stderr, "compare: %s already trained, reusing %s\n", m.name.c_str(), run.c_str());
    } else {
      bool resume = fs::exists(fs::path(run) / "checkpoints" / "last.pt");
      Config cfg = resume ? Config::load((fs::path(run) / "config.yaml").string()) : model_config(x, m);
      std::fprintf(stderr, "compare: %s %s\n", resume ? "resuming" : "training", m.name.c_str());
      TrainReport r = train(cfg, run, resume);
      if (!r.finished) throw InputError("compare: training " + m.name + " stopped: " + r.message);
    }
    EvalOptions eo;
    eo.run_dir = run;
    eo.steps = x.steps;
    eo.perturb = x.perturb;
    eo.limit = x.limit;
    eo.seed = x.seed;
    eo.out = (fs::path(out) / "eval" / m.name).string();
    if (m.name != x.reference) eo.reference = ref_dir;
    eo.reference_cache = reference_cache;
    run_eval(eo);

    ModelResult r;
    r.name = m.name;
    LoadedRun loaded = load_run(run);
    r.model = loaded.cfg.get_string("model.name");
    r.params = count_parameters(*loaded.model);
    r.macs = macs_per_step(*loaded.model, loaded.channels, loaded.image_size);
    r.trained_steps = loaded.model->default_steps();
    r.epochs = loaded.cfg.get_int("train.epochs");
    r.recurrent = loaded.model->recurrent();
    json test = json::parse(read_text((fs::path(run) / "test.json").string()));
    r.train_seconds = test.value("train_seconds", NAN);
    r.summary = json::parse(read_text(eo.out + "/summary.json"));
    r.results = read_results(eo.out + "/results.csv");
    std::ifstream metrics(fs::path(run) / "metrics.csv");
    std::string line;
    std::getline(metrics, line);
    while (std::getline(metrics, line)) {
      std::vector<std::string> c = split_csv_row(line);
      if (c.size() >= 3) r.curve.emplace_back(std::stoll(c[0]), std::stod(c[c.size() - 2]));
    }
    models.push_back(std::move(r));
  }
  // Restore the experiment's order for the report.
  std::vector<ModelResult> ordered;
  for (const auto& m : x.models)
    for (auto& r : models)
      if (r.name == m.name) ordered.push_back(r);
  models = ordered;

  auto specs = parse_perturbations(x.perturb);
  std::vector<std::string> occlusion;
  for (const auto& s : specs)
    if (perturbation_group(s.family) == "occlusion") occlusion.push_back(s.family);
  auto hardest = [&](const std::string& family) {
    for (const auto& s : specs)
      if (s.family == family) return *std::max_element(s.severities.begin(), s.severities.end());
    return 0;
  };
  // A model's final step is the step count it was trained with (eval's readout_step); steps
  // evaluated beyond it are extrapolation, shown in the figures.
  auto readout = [](const ModelResult& r) {
    const auto& clean = r.results.at("clean").at(0);
    int64_t s = r.summary.value("readout_step", clean.rbegin()->first);
    return clean.count(s) ? s : clean.rbegin()->first;
  };
  auto final_step = [&](const ModelResult& r, const std::string& f, int s) -> Row {
    return r.results.at(f).at(s).at(readout(r));
  };

  // Figures.
  fs::create_directories(fs::path(out) / "figures");
  std::vector<Chart> step_panels, severity_panels;
  std::vector<std::pair<std::string, int>> panels = {{"clean", 0}};
  for (const auto& s : specs) panels.emplace_back(s.family, hardest(s.family));
  int64_t max_step = 1;
  for (const auto& r : models)
    for (const auto& [t, row] : r.results.at("clean").at(0)) max_step = std::max(max_step, t);
  for (const auto& [family, sev] : panels) {
    Chart c{family + (sev ? " " + std::to_string(sev) : ""), "step", "accuracy", {}, NAN, NAN};
    for (const auto& r : models) {
      Series s{r.name, {}, {}};
      const auto& by_step = r.results.at(family).at(sev);
      if (by_step.size() == 1) {  // feed-forward: one value, drawn flat across the steps
        s.x = {1, static_cast<double>(max_step)};
        s.y = {by_step.begin()->second.accuracy, by_step.begin()->second.accuracy};
      } else {
        for (const auto& [t, row] : by_step) s.x.push_back(static_cast<double>(t)), s.y.push_back(row.accuracy);
      }
      c.series.push_back(s);
    }
    step_panels.push_back(c);
  }
  for (const auto& s : specs) {
    Chart c{s.family, "severity", "accuracy (final step)", {}, NAN, NAN};
    for (const auto& r : models) {
      Series ser{r.name, {0}, {final_step(r, "clean", 0).accuracy}};
      for (int sev : s.severities) ser.x.push_back(sev), ser.y.push_back(final_step(r, s.family, sev).accuracy);
      c.series.push_back(ser);
    }
    severity_panels.push_back(c);
  }
  Chart curves{"validation accuracy during training (final step)", "epoch", "accuracy", {}, NAN, NAN};
  for (const auto& r : models) {
    Series s{r.name, {}, {}};
    for (const auto& [e, a] : r.curve) s.x.push_back(static_cast<double>(e)), s.y.push_back(a);
    curves.series.push_back(s);
  }
  write_png((fs::path(out) / "figures" / "accuracy_vs_steps.png").string(),
            render_grid(step_panels, "accuracy vs steps: clean and each family at its hardest severity"));
  if (!severity_panels.empty())
    write_png((fs::path(out) / "figures" / "accuracy_vs_severity.png").string(),
              render_grid(severity_panels, "accuracy vs severity (final step), one panel per family"));
  write_png((fs::path(out) / "figures" / "training_curves.png").string(), render_chart(curves, 760, 420));
  LoadedRun first = load_run((fs::path(out) / "runs" / models.front().name).string());
  Dataset data = load_dataset(first.cfg.get_string("data.dataset"), Split::Test, {first.channels, first.image_size});
  write_png((fs::path(out) / "figures" / "perturbations.png").string(), render_contact_sheet(data, specs, 8, x.seed));

  // REPORT.md
  std::ostringstream md;
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  md << "# Comparison: " << fs::path(x.path).stem().string() << "\n\n";
  md << "Generated by `ventral compare " << x.path << "` on " << date << ". Dataset: "
     << models.front().summary.value("dataset", std::string("?")) << " (" << models.front().summary.value("n", 0)
     << " test images). Reference (feed-forward baseline): **" << x.reference << "**. Perturbations: `" << x.perturb
     << "` (seed " << x.seed << ").\n\n";
  md << "## Models\n\n";
  md << "| model | architecture | parameters | MACs/step | steps | clean acc. step 1 (95% CI) | clean acc. final step (95% CI) | "
        "mCA occlusion | mCA noise | mCE vs reference | Δrec (clean) | epochs | training time |\n";
  md << "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : models) {
    const auto& clean = r.results.at("clean").at(0);
    Row first_row = clean.begin()->second, last_row = clean.at(readout(r));
    double mce = NAN;
    if (r.summary.contains("reference")) {
      double sum = 0;
      int n = 0;
      for (auto& [f, v] : r.summary["reference"]["ce"].items())
        if (v.is_number()) sum += v.get<double>(), ++n;
      mce = n ? sum / n : NAN;
    }
    md << "| " << r.name << " | " << r.model << " | " << r.params << " | " << r.macs << " | " << readout(r)
       << " | " << pct(first_row.accuracy) << " (" << pct(first_row.lo) << "–" << pct(first_row.hi) << ") | "
       << pct(last_row.accuracy) << " (" << pct(last_row.lo) << "–" << pct(last_row.hi) << ") | "
       << pct(get(r.summary, {"mca", "occlusion"})) << " | " << pct(get(r.summary, {"mca", "noise"})) << " | "
       << (r.name == x.reference ? std::string("100 (reference)") : num(mce)) << " | "
       << num(100 * (last_row.accuracy - first_row.accuracy), "%+.2f") << " | " << r.epochs << " | "
       << num(r.train_seconds / 60, "%.1f min")
       << " |\n";
  }
  md << "\nAccuracies in %; mCA: mean accuracy over severities 1–5 and families of the group; mCE: mean corruption "
        "error over families relative to the reference (100 = as good as the reference, lower is better); Δrec: "
        "final step minus step 1 in points. Final step: the number of steps the model was trained with (steps; the "
        "figures show every evaluated step, including those beyond it).\n\n";
  md << "## Paired tests against " << x.reference << " (McNemar, same images, final steps)\n\n";
  md << "| model | clean p |";
  for (const auto& f : occlusion) md << " " << f << " " << hardest(f) << " p |";
  md << "\n|---|---:|";
  for (size_t i = 0; i < occlusion.size(); ++i) md << "---:|";
  md << "\n";
  for (const auto& r : models) {
    if (r.name == x.reference) continue;
    md << "| " << r.name << " | " << num(get(r.summary, {"reference", "mcnemar", "clean", "0", "p"}), "%.3g") << " |";
    for (const auto& f : occlusion) {
      std::string s = std::to_string(hardest(f));
      md << " " << num(get(r.summary, {"reference", "mcnemar", f.c_str(), s.c_str(), "p"}), "%.3g") << " |";
    }
    md << "\n";
  }
  md << "\n## Figures\n\n";
  md << "![accuracy vs steps](figures/accuracy_vs_steps.png)\n\n";
  if (!severity_panels.empty()) md << "![accuracy vs severity](figures/accuracy_vs_severity.png)\n\n";
  md << "![training curves](figures/training_curves.png)\n\n![perturbations](figures/perturbations.png)\n\n";

  // A reading generated from the numbers, never hand-written.
  md << "## Reading\n\n";
  auto best_by = [&](auto value) {
    const ModelResult* best = nullptr;
    for (const auto& r : models)
      if (std::isfinite(value(r)) && (!best || value(r) > value(*best))) best = &r;
    return best;
  };
  auto clean_final = [&](const ModelResult& r) { return final_step(r, "clean", 0).accuracy; };
  if (const ModelResult* b = best_by(clean_final))
    md << "- On clean images **" << b->name << "** is the most accurate at its final step (" << pct(clean_final(*b))
       << "%).\n";
  auto occl = [&](const ModelResult& r) { return get(r.summary, {"mca", "occlusion"}); };
  auto noise = [&](const ModelResult& r) { return get(r.summary, {"mca", "noise"}); };
  if (const ModelResult* b = best_by(occl)) md << "- Under occlusion **" << b->name << "** has the highest mCA (" << pct(occl(*b)) << "%).\n";
  if (const ModelResult* b = best_by(noise)) md << "- Under noise **" << b->name << "** has the highest mCA (" << pct(noise(*b)) << "%).\n";
  for (const auto& r : models) {
    const auto& clean = r.results.at("clean").at(0);
    if (clean.size() < 2) continue;
    const int64_t fin = readout(r);
    double d = clean.at(fin).accuracy - clean.begin()->second.accuracy;
    md << "- " << r.name << ": clean accuracy " << (d > 0.001 ? "rises" : d < -0.001 ? "falls" : "stays level") << " from step 1 ("
       << pct(clean.begin()->second.accuracy) << "%) to step " << fin << " (" << pct(clean.at(fin).accuracy)
       << "%, the trained step count)";
    if (clean.rbegin()->first > fin)
      md << ", and is " << pct(clean.rbegin()->second.accuracy) << "% at step " << clean.rbegin()->first
         << " beyond training";
    std::vector<double> rhos;
    for (const auto& f : occlusion) {
      double rho = get(r.summary, {"delta_rec_trend", f.c_str()});
      if (std::isfinite(rho)) rhos.push_back(rho);
    }
    if (!rhos.empty()) {
      double m = 0;
      for (double v : rhos) m += v;
      m /= rhos.size();
      md << "; the recurrent benefit Δrec " << (m > 0.5 ? "grows" : m < -0.5 ? "shrinks" : "shows no clear trend")
         << " with occlusion severity (mean Spearman ρ = " << num(m, "%.2f") << ")";
    }
    md << ".\n";
  }
  for (const auto& r : models) {
    if (r.name == x.reference) continue;
    double p = get(r.summary, {"reference", "mcnemar", "clean", "0", "p"});
    if (std::isfinite(p))
      md << "- " << r.name << " vs " << x.reference << " on clean images: "
         << (p < 0.05 ? "the difference is significant" : "no significant difference") << " (McNemar p = " << num(p, "%.3g")
         << ").\n";
  }
  md << "\nPer-model outputs: `eval/<model>/` (results.csv, summary.json, per_image.csv, plots); runs: `runs/<model>/`.\n";
  std::string report = (fs::path(out) / "REPORT.md").string();
  write_file_atomic(report, md.str());
  return report;
}

}  // namespace ventral
