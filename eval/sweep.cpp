#include "eval/sweep.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/progress.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "eval/evaluate.hpp"
#include "eval/metrics.hpp"
#include "eval/perturb.hpp"
#include "eval/plot.hpp"
#include "inference/infer.hpp"
#include "models/registry.hpp"
#include "train/checkpoint.hpp"
#include "train/trainer.hpp"

namespace ventral {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Condition {
  std::string family;  // "clean" for severity 0
  int severity = 0;
  std::string label() const { return family + (severity ? ":" + std::to_string(severity) : ""); }
};

// Evaluation batches: unshuffled, unaugmented, normalised as the run was trained.
LoaderOptions eval_loader_options(const LoadedRun& run) {
  LoaderOptions lo;
  lo.batch_size = run.cfg.get_int("train.eval_batch_size");
  lo.shuffle = false;
  lo.mean = run.mean;
  lo.std = run.std;
  lo.threads = std::max<int64_t>(1, available_cores() / 2);
  return lo;
}

Predictions predict(LoadedRun& run, const Dataset& images, const std::vector<int64_t>& wanted,
                    const std::string& label) {
  VisionModelImpl& model = *run.model;
  Predictions p;
  bool every = model.recurrent() && model.reads_out_every_step();
  p.steps = model.recurrent() ? wanted : std::vector<int64_t>{1};
  const size_t S = p.steps.size(), N = images.size();
  p.pred.assign(N * S, -1);
  p.conf.assign(N * S, 0.f);
  BatchLoader loader(images, {}, eval_loader_options(run));
  torch::Device device = run.model->parameters().front().device();
  Progress progress(label, static_cast<int64_t>(N), "img", 20);
  c10::InferenceMode guard;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    torch::Tensor x = model.inputs(batch->images.to(device));
    std::vector<torch::Tensor> per_step(S);
    if (every) {
      auto logits = infer(model, x, p.steps.back());
      for (size_t k = 0; k < S; ++k) per_step[k] = logits[p.steps[k] - 1];
    } else {
      for (size_t k = 0; k < S; ++k) per_step[k] = infer(model, x, p.steps[k]).back();
    }
    for (size_t k = 0; k < S; ++k) {
      auto [conf_t, pred_t] = torch::softmax(per_step[k].to(torch::kFloat32), 1).max(1);
      auto conf = conf_t.cpu().contiguous();
      auto pred = pred_t.cpu().contiguous();
      auto c = conf.accessor<float, 1>();
      auto q = pred.accessor<int64_t, 1>();
      for (int64_t b = 0; b < q.size(0); ++b) {
        size_t i = static_cast<size_t>(batch->indices[b]);
        p.pred[i * S + k] = q[b];
        p.conf[i * S + k] = c[b];
      }
    }
    progress.update(x.size(0));
  }
  progress.finish();
  return p;
}

// Maps a folder dataset's labels onto the trained model's class order when the names match.
void align_classes(Dataset& data, const std::vector<std::string>& model_classes, const std::string& spec) {
  if (data.classes == model_classes) return;
  std::map<std::string, int64_t> index;
  for (size_t c = 0; c < model_classes.size(); ++c) index[folder_name(model_classes[c])] = static_cast<int64_t>(c);
  std::vector<int64_t> remap;
  for (const auto& c : data.classes) {
    auto it = index.find(folder_name(c));
    if (it == index.end()) break;
    remap.push_back(it->second);
  }
  if (remap.size() == data.classes.size()) {
    for (auto& l : data.labels) l = remap[l];
    data.classes = model_classes;
    return;
  }
  if (data.classes.size() != model_classes.size())
    throw InputError(spec + ": " + std::to_string(data.classes.size()) + " classes, but the model was trained on " +
                     std::to_string(model_classes.size()));
  std::fprintf(stderr, "note: %s: class names differ from the model's; assuming the same order\n", spec.c_str());
  data.classes = model_classes;
}

void write_npy(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ",";
  if (shape.size() > 1) dims.pop_back();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  uint16_t len = static_cast<uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  write_file_atomic(path, out);
}

}  // namespace

std::vector<int64_t> parse_steps(const std::string& text) {
  std::vector<int64_t> steps;
  auto bad = [&] { return InputError("--steps: '" + text + "' is not a step list (use e.g. 1:8 or 1,2,4,8)"); };
  try {
    auto colon = text.find(':');
    if (colon != std::string::npos) {
      size_t used = 0;
      int64_t a = std::stoll(text.substr(0, colon), &used);
      int64_t b = std::stoll(text.substr(colon + 1));
      if (a < 1 || b < a || b > 1000) throw bad();
      for (int64_t t = a; t <= b; ++t) steps.push_back(t);
    } else {
      std::stringstream ss(text);
      for (std::string item; std::getline(ss, item, ',');) {
        size_t used = 0;
        int64_t t = std::stoll(item, &used);
        if (used != item.size() || t < 1 || t > 1000) throw bad();
        steps.push_back(t);
      }
    }
  } catch (const std::logic_error&) {
    throw bad();
  }
  if (steps.empty()) throw bad();
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  return steps;
}

LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint) {
  std::string config_path = (fs::path(run_dir) / "config.yaml").string();
  if (!fs::exists(config_path)) throw InputError(run_dir + ": not a run directory (no config.yaml)");
  LoadedRun r;
  r.cfg = Config::load(config_path);
  r.name = fs::path(run_dir).filename().string();
  if (r.name.empty()) r.name = fs::path(run_dir).parent_path().filename().string();
  std::ifstream classes(fs::path(run_dir) / "classes.txt");
  for (std::string line; std::getline(classes, line);)
    if (!line.empty()) r.classes.push_back(line);
  if (r.classes.empty()) throw InputError(run_dir + ": missing classes.txt (train the run with this version)");
  r.mean = r.cfg.get_floats("data.mean");
  r.std = r.cfg.get_floats("data.std");
  // The input shape the model was built for: the run's dataset as converted by its config.
  r.channels = r.cfg.get_int("data.channels");
  r.image_size = r.cfg.get_int("data.image_size");
  if (r.channels == 0 || r.image_size == 0) {
    Dataset probe = load_dataset(r.cfg.get_string("data.dataset"), Split::Test,
                                 {r.cfg.get_int("data.channels"), r.cfg.get_int("data.image_size")});
    r.channels = probe.channels;
    r.image_size = probe.height;
  }
  if (r.mean.empty()) r.mean.assign(r.channels, 0.0), r.std.assign(r.channels, 1.0);
  torch::Device device = resolve_device(r.cfg.get_string("device"));
  r.model = create_model(r.cfg.get_string("model.name"),
                         model_options(r.cfg, r.channels, static_cast<int64_t>(r.classes.size()), r.image_size));
  std::string ckpt = checkpoint.empty() ? (fs::path(run_dir) / "checkpoints" / "last.pt").string() : checkpoint;
  load_checkpoint(ckpt, *r.model, nullptr);
  r.model->to(device);
  apply_memory_format(*r.model, r.cfg.get_string("memory_format"));
  r.model->eval();
  return r;
}

std::string run_eval(const EvalOptions& o) {
  LoadedRun run = load_run(o.run_dir, o.checkpoint);
  configure_threads(run.cfg.get_int_or_auto("threads"));
  std::vector<int64_t> steps = o.steps.empty() ? std::vector<int64_t>{} : parse_steps(o.steps);
  if (steps.empty())
    for (int64_t t = 1; t <= run.model->default_steps(); ++t) steps.push_back(t);
  if (!run.model->recurrent()) steps = {1};
  auto specs = parse_perturbations(o.perturb);
  std::string out = o.out.empty() ? (fs::path(o.run_dir) / "eval").string() : o.out;
  fs::create_directories(out);

  std::string spec = o.data.empty() ? run.cfg.get_string("data.dataset") : o.data;
  Dataset data = load_dataset(spec, parse_split(o.split), {run.channels, run.image_size});
  if (o.limit > 0 && static_cast<size_t>(o.limit) < data.size()) {
    std::vector<int64_t> first(static_cast<size_t>(o.limit));
    for (int64_t i = 0; i < o.limit; ++i) first[i] = i;
    data = data.subset(first);
  }
  align_classes(data, run.classes, spec);
  require(data.channels == run.channels && data.height == run.image_size,
          spec + ": images are " + std::to_string(data.channels) + "x" + std::to_string(data.height) +
              " but the model expects " + std::to_string(run.channels) + "x" + std::to_string(run.image_size));
  const size_t N = data.size();

  std::unique_ptr<LoadedRun> reference;
  if (!o.reference.empty()) reference = std::make_unique<LoadedRun>(load_run(o.reference));

  std::vector<Condition> conditions = {{"clean", 0}};
  for (const auto& s : specs)
    for (int sev : s.severities) conditions.push_back({sev == 0 ? "clean" : s.family, sev});
  // Drop repeated clean conditions (e.g. block:0-5).
  std::vector<Condition> unique;
  for (const auto& c : conditions)
    if (std::none_of(unique.begin(), unique.end(), [&](const Condition& u) { return u.family == c.family && u.severity == c.severity; }))
      unique.push_back(c);
  conditions = unique;

  // Cached reference predictions are keyed by everything that decides them.
  auto cache_key = [&](const std::string& ref_dir, const std::string& label) {
    return fs::absolute(ref_dir).lexically_normal().string() + "|" + spec + "/" + o.split + "|" +
           std::to_string(N) + "|" + std::to_string(o.seed) + "|" + label;
  };
  std::vector<Predictions> preds, ref_preds;
  for (const auto& c : conditions) {
    std::string label = c.label();
    Dataset images = c.severity == 0 ? data : perturb_dataset(data, c.family, c.severity, o.seed);
    preds.push_back(predict(run, images, steps, label));
    if (!reference) continue;
    auto run_reference = [&] {
      return predict(*reference, images, {reference->model->default_steps()}, "reference " + label);
    };
    if (!o.reference_cache) {
      ref_preds.push_back(run_reference());
      continue;
    }
    std::string key = cache_key(o.reference, label);
    auto it = o.reference_cache->find(key);
    if (it == o.reference_cache->end()) it = o.reference_cache->emplace(key, run_reference()).first;
    ref_preds.push_back(it->second);
  }
  // Evaluating a model without a reference may be evaluating the reference itself: its
  // predictions at its trained step count are what the models compared with it need.
  auto own = std::find(preds.front().steps.begin(), preds.front().steps.end(), run.model->default_steps());
  if (!reference && o.reference_cache && own != preds.front().steps.end()) {
    const size_t k = static_cast<size_t>(own - preds.front().steps.begin()), S = preds.front().steps.size();
    for (size_t ci = 0; ci < conditions.size(); ++ci) {
      Predictions one{{run.model->default_steps()}, std::vector<int64_t>(N), std::vector<float>(N)};
      for (size_t i = 0; i < N; ++i) {
        one.pred[i] = preds[ci].pred[i * S + k];
        one.conf[i] = preds[ci].conf[i * S + k];
      }
      (*o.reference_cache)[cache_key(o.run_dir, conditions[ci].label())] = std::move(one);
    }
  }
  const std::vector<int64_t>& used = preds.front().steps;
  const size_t S = used.size();

  // results.csv and per_image.csv
  std::string results = "family,severity,step,accuracy,n,ci_low,ci_high,mean_confidence\n";
  std::map<std::string, std::map<int, std::vector<double>>> acc;  // family → severity → by step
  for (size_t ci = 0; ci < conditions.size(); ++ci) {
    for (size_t k = 0; k < S; ++k) {
      int64_t correct = 0;
      double conf = 0;
      for (size_t i = 0; i < N; ++i) {
        correct += preds[ci].correct(i, k, data.labels);
        conf += preds[ci].conf[i * S + k];
      }
      auto [lo, hi] = wilson_interval(correct, static_cast<int64_t>(N));
      double a = N ? double(correct) / N : 0;
      acc[conditions[ci].family][conditions[ci].severity].push_back(a);
      results += conditions[ci].family + "," + std::to_string(conditions[ci].severity) + "," + std::to_string(used[k]) +
                 "," + format_number("%.6f", a) + "," + std::to_string(N) + "," + format_number("%.6f", lo) + "," + format_number("%.6f", hi) + "," +
                 format_number("%.6f", N ? conf / N : 0) + "\n";
    }
  }
  write_file_atomic((fs::path(out) / "results.csv").string(), results);
  {
    std::ostringstream pi;
    pi << "index,label,family,severity";
    for (auto t : used) pi << ",pred_step" << t;
    pi << "\n";
    for (size_t ci = 0; ci < conditions.size(); ++ci)
      for (size_t i = 0; i < N; ++i) {
        pi << i << "," << data.labels[i] << "," << conditions[ci].family << "," << conditions[ci].severity;
        for (size_t k = 0; k < S; ++k) pi << "," << preds[ci].pred[i * S + k];
        pi << "\n";
      }
    write_file_atomic((fs::path(out) / "per_image.csv").string(), pi.str());
  }

  // summary.json
  json summary;
  summary["model"] = run.cfg.get_string("model.name");
  summary["run"] = o.run_dir;
  summary["dataset"] = spec + "/" + o.split;
  summary["n"] = N;
  summary["params"] = count_parameters(*run.model);
  summary["recurrent"] = run.model->recurrent();
  summary["steps"] = used;
  // Headline numbers (CA, mCA, CE, McNemar, Δrec) are read at the step count the model was
  // trained with when it is among the evaluated steps (else at the last one): steps beyond
  // it are extrapolation, which the per-step results and plots show.
  auto trained = std::find(used.begin(), used.end(), run.model->default_steps());
  const size_t R = trained != used.end() ? static_cast<size_t>(trained - used.begin()) : S - 1;
  summary["readout_step"] = used[R];
  summary["perturbation_seed"] = o.seed;
  const std::vector<double>& clean = acc["clean"][0];
  summary["clean_accuracy"] = clean;
  json ca, drop, delta, trend, its;
  std::map<std::string, std::vector<double>> group_ca;
  auto final_acc = [&](const std::string& f, int s) { return acc[f][s][R]; };
  for (const auto& s : specs) {
    if (s.family == "clean") continue;
    std::vector<double> per_sev;
    json d;
    std::vector<double> sev_x = {0}, delta_y = {clean[R] - clean.front()};
    d["0"] = delta_y[0];
    for (int sev : s.severities) {
      if (sev == 0) continue;
      per_sev.push_back(final_acc(s.family, sev));
      double dr = acc[s.family][sev][R] - acc[s.family][sev].front();
      d[std::to_string(sev)] = dr;
      sev_x.push_back(sev);
      delta_y.push_back(dr);
    }
    double mean = 0;
    for (double v : per_sev) mean += v;
    mean /= std::max<size_t>(1, per_sev.size());
    ca[s.family] = mean;
    drop[s.family] = clean[R] > 0 ? (clean[R] - mean) / clean[R] : NAN;
    group_ca[perturbation_group(s.family)].push_back(mean);
    delta[s.family] = d;
    double rho = spearman(sev_x, delta_y);
    trend[s.family] = std::isfinite(rho) ? json(rho) : json(nullptr);
  }
  summary["ca"] = ca;
  json mca;
  for (const auto& [g, v] : group_ca) {
    double m = 0;
    for (double x : v) m += x;
    mca[g] = m / v.size();
  }
  summary["mca"] = mca;
  summary["relative_drop"] = drop;
  summary["delta_rec"] = delta;
  summary["delta_rec_trend"] = trend;
  // Iterations to solution: median over the images solved at the last step.
  for (size_t ci = 0; ci < conditions.size(); ++ci) {
    std::vector<double> solved;
    for (size_t i = 0; i < N; ++i) {
      std::vector<bool> c(S);
      for (size_t k = 0; k < S; ++k) c[k] = preds[ci].correct(i, k, data.labels);
      int64_t k = iterations_to_solution(c);
      if (k > 0) solved.push_back(static_cast<double>(used[k - 1]));
    }
    double m = median(solved);
    its[conditions[ci].family][std::to_string(conditions[ci].severity)] = std::isfinite(m) ? json(m) : json(nullptr);
  }
  summary["median_iterations_to_solution"] = its;

  if (reference) {
    json ref;
    ref["run"] = o.reference;
    ref["model"] = reference->cfg.get_string("model.name");
    auto ref_acc = [&](size_t ci) {
      int64_t c = 0;
      for (size_t i = 0; i < N; ++i) c += ref_preds[ci].correct(i, 0, data.labels);
      return N ? double(c) / N : 0;
    };
    std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> by_family;  // model, ref
    json mcnemar, ce, rce;
    double ref_clean = ref_acc(0);
    for (size_t ci = 0; ci < conditions.size(); ++ci) {
      int64_t b = 0, c = 0;
      for (size_t i = 0; i < N; ++i) {
        bool m = preds[ci].correct(i, R, data.labels), r = ref_preds[ci].correct(i, 0, data.labels);
        b += m && !r;
        c += !m && r;
      }
      mcnemar[conditions[ci].family][std::to_string(conditions[ci].severity)] = {
          {"p", mcnemar_p(b, c)}, {"model_only_correct", b}, {"reference_only_correct", c}};
      if (conditions[ci].severity > 0) {
        by_family[conditions[ci].family].first.push_back(acc[conditions[ci].family][conditions[ci].severity][R]);
        by_family[conditions[ci].family].second.push_back(ref_acc(ci));
      }
    }
    std::map<std::string, std::vector<double>> group_ce;
    for (const auto& [f, v] : by_family) {
      ce[f] = corruption_error(v.first, v.second);
      rce[f] = relative_corruption_error(v.first, clean[R], v.second, ref_clean);
      group_ce[perturbation_group(f)].push_back(ce[f].get<double>());
    }
    json mce;
    for (const auto& [g, v] : group_ce) {
      double m = 0;
      for (double x : v) m += x;
      mce[g] = m / v.size();
    }
    // Challenge images: clean images the reference gets wrong; control: those it gets right.
    json challenge = json::array(), control = json::array();
    int64_t n_challenge = 0;
    for (size_t i = 0; i < N; ++i) n_challenge += !ref_preds[0].correct(i, 0, data.labels);
    for (size_t k = 0; k < S; ++k) {
      int64_t ch = 0, co = 0;
      for (size_t i = 0; i < N; ++i) {
        bool m = preds[0].correct(i, k, data.labels);
        (ref_preds[0].correct(i, 0, data.labels) ? co : ch) += m;
      }
      challenge.push_back(n_challenge ? double(ch) / n_challenge : NAN);
      control.push_back(N - n_challenge ? double(co) / (N - n_challenge) : NAN);
    }
    ref["clean_accuracy"] = ref_clean;
    ref["ce"] = ce;
    ref["mce"] = mce;
    ref["relative_ce"] = rce;
    ref["mcnemar"] = mcnemar;
    ref["challenge_images"] = n_challenge;
    ref["challenge_accuracy"] = challenge;
    ref["control_accuracy"] = control;
    summary["reference"] = ref;
  }

  // Early exit: stop at the first step whose confidence reaches the threshold.
  if (!o.exit_thresholds.empty()) {
    json table = json::array();
    std::string csv = "threshold,accuracy,mean_steps\n";
    for (double th : o.exit_thresholds) {
      int64_t correct = 0;
      double step_sum = 0;
      for (size_t i = 0; i < N; ++i) {
        size_t k = 0;
        while (k + 1 < S && preds[0].conf[i * S + k] < th) ++k;
        correct += preds[0].correct(i, k, data.labels);
        step_sum += static_cast<double>(used[k]);
      }
      double a = N ? double(correct) / N : 0, m = N ? step_sum / N : 0;
      table.push_back({{"threshold", th}, {"accuracy", a}, {"mean_steps", m}});
      csv += format_number("%g", th) + "," + format_number("%.6f", a) + "," + format_number("%.4f", m) + "\n";
    }
    summary["early_exit"] = table;
    write_file_atomic((fs::path(out) / "early_exit.csv").string(), csv);
  }
  write_file_atomic((fs::path(out) / "summary.json").string(), summary.dump(2) + "\n");

  // Plots: accuracy vs steps (one panel per family, one line per severity) and accuracy vs
  // severity (one line per family, final step).
  std::vector<Chart> panels;
  std::vector<std::string> families = {"clean"};
  for (const auto& s : specs)
    if (s.family != "clean") families.push_back(s.family);
  for (const auto& f : families) {
    Chart c{f, "step", "accuracy", {}, NAN, NAN};
    for (const auto& [sev, by_step] : acc[f]) {
      Series s{"severity " + std::to_string(sev), {}, by_step};
      for (auto t : used) s.x.push_back(static_cast<double>(t));
      c.series.push_back(s);
    }
    if (f != "clean") {
      Series s{"clean", {}, clean};
      for (auto t : used) s.x.push_back(static_cast<double>(t));
      c.series.insert(c.series.begin(), s);
    }
    panels.push_back(c);
  }
  std::string model_name = run.cfg.get_string("model.name");
  write_png((fs::path(out) / "accuracy_vs_steps.png").string(),
            render_grid(panels, model_name + ": accuracy vs steps, per perturbation family"));
  if (!specs.empty()) {
    std::vector<Chart> group_charts;
    for (const std::string group : {"occlusion", "noise"}) {
      Chart c{group, "severity", "accuracy (step " + std::to_string(used[R]) + ")", {}, NAN, NAN};
      for (const auto& f : families) {
        if (f == "clean" || perturbation_group(f) != group) continue;
        Series s{f, {0}, {clean[R]}};
        for (const auto& [sev, by_step] : acc[f])
          if (sev > 0) s.x.push_back(sev), s.y.push_back(by_step[R]);
        c.series.push_back(s);
      }
      if (!c.series.empty()) group_charts.push_back(c);
    }
    write_png((fs::path(out) / "accuracy_vs_severity.png").string(),
              render_grid(group_charts, model_name + ": accuracy vs severity", 2, 560, 380));
  }

  // Feature export for representational-similarity analysis.
  if (!o.features.empty()) {
    std::string fdir = o.features_out.empty() ? (fs::path(out) / "features").string() : o.features_out;
    fs::create_directories(fdir);
    auto areas = run.model->areas();
    for (const auto& a : o.features)
      if (std::find(areas.begin(), areas.end(), a) == areas.end()) {
        std::string valid;
        for (const auto& v : areas) valid += (valid.empty() ? "" : ", ") + v;
        throw InputError("--features: the model has no area '" + a + "' (areas: " + valid + ")");
      }
    int64_t n = std::min<int64_t>(o.features_n, static_cast<int64_t>(N));
    std::vector<int64_t> first(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) first[i] = i;
    Dataset subset = data.subset(first);
    std::map<std::pair<std::string, int64_t>, std::vector<float>> store;
    std::map<std::pair<std::string, int64_t>, std::vector<int64_t>> shapes;
    std::set<std::string> wanted(o.features.begin(), o.features.end());
    run.model->set_probe([&](const std::string& area, int64_t step, const torch::Tensor& act) {
      if (!wanted.count(area)) return;
      torch::Tensor v = (o.features_full ? act : act.mean({2, 3})).to(torch::kCPU, torch::kFloat32).contiguous();
      auto& buf = store[{area, step + 1}];
      buf.insert(buf.end(), v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
      auto sh = v.sizes().vec();
      sh[0] = 0;
      shapes[{area, step + 1}] = sh;
    });
    BatchLoader loader(subset, {}, eval_loader_options(run));
    loader.start_epoch(0);
    torch::Device device = run.model->parameters().front().device();
    while (auto batch = loader.next()) infer(*run.model, run.model->inputs(batch->images.to(device)), used.back());
    run.model->set_probe(nullptr);
    json index;
    index["n"] = n;
    index["labels"] = "labels.npy";
    index["classes"] = run.classes;
    index["pooled"] = !o.features_full;
    std::vector<float> labels(subset.labels.begin(), subset.labels.end());
    write_npy((fs::path(fdir) / "labels.npy").string(), labels, {n});
    for (auto& [key, buf] : store) {
      auto shape = shapes[key];
      shape[0] = n;
      std::string file = key.first + "_step" + std::to_string(key.second) + ".npy";
      write_npy((fs::path(fdir) / file).string(), buf, shape);
      index["files"].push_back({{"area", key.first}, {"step", key.second}, {"file", file}, {"shape", shape}});
    }
    write_file_atomic((fs::path(fdir) / "index.json").string(), index.dump(2) + "\n");
  }
  return out;
}

}  // namespace ventral
