#include "study/compare.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"
#include "datasets/experiment.hpp"
#include "eval/sweep.hpp"
#include "inference/run_dir.hpp"
#include "models/registry.hpp"
#include "study/report.hpp"
#include "train/trainer.hpp"

namespace ventral {

namespace fs = std::filesystem;

namespace {

// Where a model's run for one seed lives: runs/<name>, or runs/<name>/seed<k> when the
// experiment lists seeds (eval/ mirrors it).
std::string run_suffix(const CompareModel& m, std::optional<uint64_t> seed) {
  return seed ? (fs::path(m.name) / ("seed" + std::to_string(*seed))).string() : m.name;
}
RunDir run_of(const std::string& out, const CompareModel& m, std::optional<uint64_t> seed) {
  return RunDir((fs::path(out) / "runs" / run_suffix(m, seed)).string());
}

std::string label(const CompareModel& m, std::optional<uint64_t> seed) {
  return seed ? m.name + " (seed " + std::to_string(*seed) + ")" : m.name;
}

// The `ventral train` arguments that train (or resume) one run; a new run's config is written
// to OUT/plan/ so the command stands alone.
std::vector<std::string> train_args(const Experiment& x, const CompareModel& m, std::optional<uint64_t> seed,
                                    const std::string& out, const RunDir& run) {
  if (run.started()) return {"train", "--run-dir", run.path(), "--resume"};
  const fs::path config = fs::path(out) / "plan" / (run_suffix(m, seed) + ".yaml");
  make_directories(config.parent_path().string());
  model_config(x, m, seed).save(config.string());
  return {"train", config.string(), "--run-dir", run.path()};
}

// Trains (or resumes) a model's run unless it is finished. Interruptions and divergence keep
// their exit status.
void ensure_trained(const Experiment& x, const CompareModel& m, std::optional<uint64_t> seed, const RunDir& run,
                    const std::string& out, const TrainCommand& external) {
  if (run.finished()) {
    std::fprintf(stderr, "compare: %s already trained, reusing %s\n", label(m, seed).c_str(), run.path().c_str());
    return;
  }
  const bool resume = run.started();
  std::fprintf(stderr, "compare: %s %s\n", resume ? "resuming" : "training", label(m, seed).c_str());
  if (external) {
    const int status = external(train_args(x, m, seed, out, run));
    if (status != 0 || !run.finished())
      throw StoppedError("compare: training " + label(m, seed) + " stopped (exit status " + std::to_string(status) +
                             "); run `ventral compare` again to resume it",
                         status ? status : 1);
    return;
  }
  Config cfg = resume ? Config::load(run.config()) : model_config(x, m, seed);
  TrainReport r = train(cfg, run.path(), resume);
  if (!r.finished) throw StoppedError("compare: training " + label(m, seed) + " stopped: " + r.message, r.exit_status);
}

}  // namespace

// A study writes plan/, runs/, eval/, figures/ and REPORT.md, replacing what an earlier run of
// it left there: so its folder must be new, empty or a study's, never a folder of other files.
void check_study_folder(const std::string& out) {
  static const std::set<std::string> written = {"plan", "runs", "eval", "figures", "REPORT.md"};
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw InputError("--out " + printable(out) + ": exists and is not a folder; give a new or empty folder");
  if (!fs::is_directory(out, ec)) return;
  for (fs::directory_iterator it(out, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!written.count(name) && name.rfind('.', 0) != 0)
      throw InputError("--out " + printable(out) + ": holds '" + printable(name) +
                       "', which ventral compare does not write (a study's folder holds plan/, runs/, eval/, figures/ "
                       "and REPORT.md); give a new or empty folder");
  }
}

void check_reusable_runs(const Experiment& x, const std::string& out) {
  for (const auto& m : x.models)
    for (const auto& seed : run_seeds(x)) {
      RunDir run = run_of(out, m, seed);
      if (!run.holds_config()) continue;
      auto diff = training_differences(Config::load(run.config()), model_config(x, m, seed));
      if (diff.empty()) continue;
      std::string keys = join(diff, ", ");
      throw InputError(run.config() + ": this run of " + label(m, seed) +
                       " was trained with a different config than the experiment asks for (" + keys +
                       "); move the run away to retrain it, or give the model another name");
    }
}

std::vector<std::vector<std::string>> plan_compare(const Experiment& x, const std::string& out) {
  check_study_folder(out);
  make_directories(out);
  check_reusable_runs(x, out);
  std::vector<std::vector<std::string>> plan;
  for (const auto& seed : run_seeds(x))
    for (const auto& m : x.models) {
      RunDir run = run_of(out, m, seed);
      if (!run.finished()) plan.push_back(train_args(x, m, seed, out, run));
    }
  return plan;
}

std::string run_compare(const Experiment& x, const std::string& out, const TrainCommand& external) {
  check_study_folder(out);
  make_directories(out);
  check_reusable_runs(x, out);
  // The reference first: its predictions at its trained step count enter every other summary
  // of the same seed (paired over images within a seed, over seeds in the report).
  std::vector<CompareModel> order = x.models;
  std::stable_partition(order.begin(), order.end(), [&](const CompareModel& m) { return m.name == x.reference; });
  const std::vector<Condition> conditions = parse_conditions(x.perturb);
  std::optional<std::pair<Dataset, std::string>> sheet;  // images and their description
  std::map<std::string, StudyModel> studied;
  for (const auto& seed : run_seeds(x)) {
    std::optional<SweepResult> reference;
    for (const auto& m : order) {
      RunDir dir = run_of(out, m, seed);
      ensure_trained(x, m, seed, dir, out, external);
      LoadedRun run = load_run(dir.path());
      const std::string spec = run.cfg.get_string("data.dataset");
      const std::string dataset =
          one_image_set(spec) ? spec + " (the training images: no separate test split)" : spec + "/test";
      Dataset images = evaluation_data(run, "", "test", x.limit);
      if (x.limit > 0 && static_cast<int64_t>(images.size()) < x.limit)
        throw InputError(x.path + ": eval.limit " + std::to_string(x.limit) + ": " + dataset + " holds only " +
                         std::to_string(images.size()) + " images; give at most that (0 = all)");
      SweepResult result = sweep(run, images, conditions, steps_or_default(x.steps, run), x.seed);
      // Paired statistics need the reference's predictions on the very same images.
      if (reference && result.predictions.front().labels != reference->predictions.front().labels)
        throw InputError("compare: " + m.name + " is evaluated on " + dataset + ", other images than the reference " +
                         x.reference + "; compared models must share the test set");
      if (m.name == x.reference) {
        // Read out at its trained step count: from this sweep when it was evaluated there.
        const size_t r = result.readout();
        reference = result.steps()[r] == result.trained_steps
                        ? result.at_step(r)
                        : sweep(run, images, conditions, {result.trained_steps}, x.seed, "reference ");
      }
      if (!sheet && m.name == x.models.front().name)  // the contact sheet shows the first model's test images
        sheet = {load_dataset(run.cfg.get_string("data.dataset"), Split::Test, {run.channels, run.image_size}), dataset};
      // Backward masking for the models that take the image at every step: clean images and
      // each family at its highest severity, read out at the trained step count.
      std::vector<MaskedSweep> masked;
      std::map<int64_t, std::map<std::string, double>> masked_accuracy;
      if (!x.present.empty() && run.model->takes_input_every_step()) {
        const std::vector<Condition> shown = masking_conditions(x.perturb);
        for (int64_t k : parse_steps(x.present)) {
          const MaskSchedule schedule{k, x.mask, x.seed};
          SweepResult ms = sweep(run, images, shown, steps_or_default(x.steps, run), x.seed, "present " + std::to_string(k) + " ", &schedule);
          for (size_t c = 0; c < shown.size(); ++c) masked_accuracy[k][shown[c].label()] = ms.predictions[c].accuracy(ms.readout());
          masked.push_back({k, x.mask, std::move(ms)});
        }
      }
      Summary summary = summarize(result, m.name == x.reference ? nullptr : &*reference);
      EvalProvenance from{dir.path(), dataset, count_parameters(*run.model), run.model->recurrent(), x.seed,
                          m.name == x.reference ? "" : run_of(out, order.front(), seed).path(),
                          precision_name(run.model->precision())};
      write_evaluation((fs::path(out) / "eval" / run_suffix(m, seed)).string(), result, summary, from, masked);
      TestRecord test = dir.read_test();
      StudyModel& sm = studied[m.name];
      sm.name = m.name;
      sm.model = summary.model;
      sm.params = from.params;
      sm.macs = macs_per_step(*run.model, run.channels, run.image_size);
      sm.epochs = run.cfg.get_int("train.epochs");
      sm.train_perturb = training_perturbation(run.cfg).on() ? run.cfg.get_string("data.augment.perturb") : "";
      if (!sm.train_perturb.empty() && run.cfg.get_float("data.augment.perturb_fraction") < 1)
        sm.train_perturb += " (" + format_number("%g", 100 * run.cfg.get_float("data.augment.perturb_fraction")) + "% of images)";
      sm.runs.push_back({seed.value_or(static_cast<uint64_t>(run.cfg.get_int("seed"))), test.train_seconds,
                         dir.read_validation_curve(), summary, from.precision, masked_accuracy});
    }
  }
  // The report lists the models in the experiment's order.
  std::vector<StudyModel> ordered;
  for (const auto& m : x.models) ordered.push_back(studied.at(m.name));
  return write_report(out, x, ordered, sheet->first, sheet->second);
}

}  // namespace ventral
