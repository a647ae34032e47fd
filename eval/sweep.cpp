#include "eval/sweep.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "datasets/perturb.hpp"
#include "eval/features.hpp"
#include "eval/figures.hpp"
#include "inference/run_dir.hpp"

namespace ventral {

namespace fs = std::filesystem;

namespace {

// `--class-map FILE`: one "folder name<TAB>model class name" pair a line; # comments. A folder
// mapped twice is an error (which line would win?).
std::map<std::string, std::string> read_class_map(const std::string& path) {
  std::map<std::string, std::string> map;
  if (path.empty()) return map;
  auto bytes = read_file(path);
  std::string text(bytes.begin(), bytes.end());
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // a UTF-8 byte-order mark (editors on Windows)
  std::stringstream in(text);
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (std::any_of(line.begin(), line.end(), [](char c) { return c != '\t' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f); }))
      throw InputError(path + ":" + std::to_string(line_no) + ": holds a control character other than the tab (" +
                       printable(line) + "); write 'folder name<TAB>model class name' in plain text");
    auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0 || tab + 1 == line.size())
      throw InputError(path + ":" + std::to_string(line_no) + ": expected 'folder name<TAB>model class name', got '" + line + "'");
    if (!map.emplace(line.substr(0, tab), line.substr(tab + 1)).second)
      throw InputError(path + ":" + std::to_string(line_no) + ": folder '" + line.substr(0, tab) + "' is mapped twice");
  }
  if (map.empty())
    throw InputError(path + ": holds no 'folder name<TAB>model class name' line, so it maps nothing; add the pairs, "
                     "or leave --class-map out");
  return map;
}

// Maps a dataset's labels onto the trained model's classes by name: exactly, through the class
// map, or ignoring case, spaces and punctuation. Never by position: a name that matches none of
// the model's classes is an error listing both sides.
void align_classes(Dataset& data, const std::vector<std::string>& model_classes, const std::string& spec,
                   const std::string& class_map_path, std::string* unknown) {
  const auto class_map = read_class_map(class_map_path);
  if (data.classes == model_classes && class_map.empty()) return;
  std::map<std::string, int64_t> exact, loose;
  std::map<std::string, std::vector<std::string>> loose_names;  // several model classes per key: ambiguous
  for (size_t c = 0; c < model_classes.size(); ++c) {
    exact[model_classes[c]] = static_cast<int64_t>(c);
    loose[class_key(model_classes[c])] = static_cast<int64_t>(c);
    loose_names[class_key(model_classes[c])].push_back(model_classes[c]);
  }
  // A map line naming no class of the model is a typo in the map, not an unknown folder.
  for (const auto& [folder, target] : class_map)
    if (!exact.count(target) && !loose.count(class_key(target)))
      throw InputError(class_map_path + ": maps '" + folder + "' to '" + target + "', which is not a class of the model (" +
                       join(model_classes, ", ") + ")");
  // ... and one naming no class of the dataset is a typo too (a misspelt folder stays unmapped).
  for (const auto& [folder, target] : class_map)
    if (std::find(data.classes.begin(), data.classes.end(), folder) == data.classes.end())
      throw InputError(class_map_path + ": maps '" + folder + "', which is not a class of " + spec + " (" +
                       join(data.classes, ", ") + ")");
  std::vector<int64_t> remap;
  std::vector<std::string> unmatched;
  for (const auto& name : data.classes) {
    auto mapped = class_map.find(name);
    const std::string& wanted = mapped != class_map.end() ? mapped->second : name;
    int64_t index = -1;
    if (auto e = exact.find(wanted); e != exact.end()) {
      index = e->second;
    } else if (auto l = loose.find(class_key(wanted)); l != loose.end()) {
      if (const auto& names = loose_names[class_key(wanted)]; names.size() > 1)
        throw InputError(spec + ": class '" + printable(wanted) + "' matches " + std::to_string(names.size()) +
                         " of the model's classes once case, spaces and punctuation are ignored ('" +
                         join(names, "', '") + "'); name the folder exactly or give --class-map FILE");
      index = l->second;
    }
    if (index < 0) unmatched.push_back("'" + name + "'" + (mapped != class_map.end() ? " (mapped to '" + wanted + "')" : ""));
    remap.push_back(index);
  }
  if (!unmatched.empty() && unknown) {
    *unknown = std::to_string(unmatched.size()) + " of the " + std::to_string(data.classes.size()) +
               " classes of " + spec + " match none of the model's (e.g. " +
               join(std::vector<std::string>(unmatched.begin(), unmatched.begin() + std::min<size_t>(3, unmatched.size())), ", ") +
               "); give --classes FILE (the model's class names in output order) or --class-map FILE";
    return;  // labels stay the folders' (data.classes), not the model's
  }
  if (!unmatched.empty())
    throw InputError(spec + ": " + join(unmatched, ", ") + " match none of the model's classes (" +
                     join(model_classes, ", ") + "); " +
                     (spec.rfind("folder:", 0) == 0 ? "rename the folders or give" : "give") +
                     " --class-map FILE (one 'dataset class name<TAB>model class name' a line)");
  for (auto& l : data.labels) l = remap[l];
  data.classes = model_classes;
}

}  // namespace

std::vector<int64_t> parse_steps(const std::string& text) {
  std::vector<int64_t> steps;
  auto bad = [&] {
    return InputError("--steps: '" + text + "' is not a step list: steps are 1 to 1000, as FIRST:LAST or a comma list (e.g. 1:8 or 1,2,4,8)");
  };
  auto step = [&](const std::string& item) {
    auto t = parse_count(item);
    if (!t || *t < 1 || *t > 1000) throw bad();
    return *t;
  };
  if (auto colon = text.find(':'); colon != std::string::npos) {
    int64_t a = step(text.substr(0, colon)), b = step(text.substr(colon + 1));
    if (b < a) throw bad();
    for (int64_t t = a; t <= b; ++t) steps.push_back(t);
  } else {
    size_t pos = 0;
    while (true) {  // every item, the empty ones of "1,,2" and "1," too
      size_t end = text.find(',', pos);
      steps.push_back(step(text.substr(pos, end == std::string::npos ? std::string::npos : end - pos)));
      if (end == std::string::npos) break;
      pos = end + 1;
    }
  }
  if (steps.empty()) throw bad();
  std::sort(steps.begin(), steps.end());
  if (auto twice = std::adjacent_find(steps.begin(), steps.end()); twice != steps.end())
    throw InputError("--steps: step " + std::to_string(*twice) + " is listed twice in '" + text + "'; list each step once");
  return steps;
}

std::vector<int64_t> steps_or_default(const std::string& text, const LoadedRun& run) {
  if (!text.empty()) return parse_steps(text);
  std::vector<int64_t> steps;
  for (int64_t t = 1; t <= run.model->default_steps(); ++t) steps.push_back(t);
  return steps;
}

std::vector<Condition> parse_conditions(const std::string& perturb) {
  std::vector<Condition> conditions = {{"clean", 0}};  // every evaluation includes the clean image
  for (const auto& [family, severity] : perturbation_sets(parse_perturbations(perturb)))
    conditions.push_back({family, severity});
  return conditions;
}

Dataset evaluation_data(const LoadedRun& run, const std::string& spec_in, const std::string& split, int64_t limit,
                        const std::string& class_map, std::string* unknown) {
  const std::string spec = spec_in.empty() ? run.cfg.get_string("data.dataset") : spec_in;
  if (spec_in.empty() && absolute_dataset_spec(spec) != spec)  // runs record it absolute since they do
    std::fprintf(stderr, "note: the run's data.dataset %s is a relative path, read from the working directory (%s)\n",
                 printable(spec).c_str(), fs::current_path().c_str());
  LoadOptions load = preprocessing(run.cfg).load;  // the run's resize and crop, at the size it was built for
  const bool size_asked = load.image_size != 0 || load.center_crop != 0;  // by the run's config or preset
  load.channels = run.channels;
  if (load.center_crop == 0) load.image_size = run.image_size;
  // Another dataset than the run's, or the run's own built-in files at another size than it
  // trained on (replaced since): said. A folder's own sizes were said when it trained.
  const std::string kind = spec.substr(0, spec.find(':'));
  if (!spec_in.empty() || (!size_asked && kind != "folder" && kind != "list")) load.size_from = "the model's input size";
  Dataset data = [&] {
    if (!spec_in.empty()) return load_dataset(spec, parse_split(split), load);
    try {
      return load_dataset(spec, parse_split(split), load);
    } catch (const InputError& e) {  // the run's own dataset, moved or gone since training
      throw InputError(std::string(e.what()) + " (the run's data.dataset; if the images are elsewhere now, give them "
                                               "with --data SPEC)");
    }
  }();
  if (limit > 0 && static_cast<size_t>(limit) < data.size()) {
    std::vector<int64_t> first(static_cast<size_t>(limit));
    for (int64_t i = 0; i < limit; ++i) first[i] = i;
    // The first N images, perturbed as in the full set (debris cuts fragments from all of it).
    auto full = std::make_shared<const Dataset>(std::move(data));
    data = full->subset(first);
    data.pool = full;
  }
  align_classes(data, run.classes, spec, class_map, unknown);
  require(data.channels == run.channels && data.height == run.image_size,
          spec + ": images are " + std::to_string(data.channels) + "x" + std::to_string(data.height) +
              " but the model expects " + std::to_string(run.channels) + "x" + std::to_string(run.image_size));
  return data;
}

SweepResult sweep(LoadedRun& run, const Dataset& data, const std::vector<Condition>& conditions,
                  const std::vector<int64_t>& steps, uint64_t seed, const std::string& label_prefix,
                  const MaskSchedule* masking, bool labelled) {
  SweepResult r;
  r.model = run.cfg.get_string("model.name");
  r.trained_steps = run.model->default_steps();
  r.conditions = conditions;
  for (const auto& c : conditions) {
    // Perturbed in the loader's threads, image by image (a streamed dataset is never held whole):
    // the pixels perturb_dataset(data, family, severity, seed) would give.
    LoaderOptions options = run.loader_options();
    options.perturbation = evaluation_perturbation(c.family, c.severity, seed);
    options.hide_labels = !labelled;
    r.predictions.push_back(predict(*run.model, data, steps, options, label_prefix + c.label(), masking));
  }
  return r;
}

namespace {

// Every file an evaluation may write into its folder. Once a new evaluation's results are
// computed, the ones it does not write are removed: a folder never mixes two evaluations.
void remove_stale(const std::string& out, const std::vector<std::string>& written) {
  for (const char* name : {"results.csv", "per_image.csv", "summary.json", "early_exit.csv", "masking.png",
                           "accuracy_vs_steps.png", "accuracy_vs_severity.png"}) {
    std::error_code ec;
    if (std::find(written.begin(), written.end(), name) == written.end()) fs::remove(fs::path(out) / name, ec);
  }
}

}  // namespace

void write_evaluation(const std::string& out, const SweepResult& result, const Summary& summary,
                      const EvalProvenance& provenance, const std::vector<MaskedSweep>& masked) {
  make_directories(out);
  // Written into a hidden staging folder first and moved in once all of them are: a write that
  // fails (a full disk) leaves the previous evaluation whole, never half old and half new.
  const fs::path staging = fs::path(out) / (".staging." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(staging, ec);
  make_directories(staging.string());
  std::vector<std::string> written = {"results.csv", "per_image.csv", "summary.json"};
  try {
    if (!masked.empty()) written.push_back("masking.png");
    if (!summary.early_exit.empty()) written.push_back("early_exit.csv");
    write_results_csv((staging / "results.csv").string(), summary, masked);
    if (!masked.empty()) write_masking_figure((staging / "masking.png").string(), summary, masked);
    write_per_image_csv((staging / "per_image.csv").string(), result);
    write_summary_json((staging / "summary.json").string(), summary, provenance);
    if (!summary.early_exit.empty()) write_early_exit_csv((staging / "early_exit.csv").string(), summary);
    for (const auto& figure : write_eval_figures(staging.string(), summary)) written.push_back(figure);
    for (const auto& name : written) {
      fs::rename(staging / name, fs::path(out) / name, ec);
      if (ec) throw InputError("cannot write " + (fs::path(out) / name).string() + ": " + ec.message());
    }
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fs::remove_all(staging, ec);
  remove_stale(out, written);
}

namespace {

// Whether `folder` holds anything but (nested) empty folders, as an evaluation stopped before
// its first file leaves it (the output folders are made, and tested, before the sweep).
bool holds_files(const std::string& folder) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    if (!it->is_directory(ec) || it->is_symlink(ec)) return true;
  return ec.value() != 0;  // unreadable: not known to be empty
}

// The model `ventral eval` evaluates: a run directory's, or imported weights (--weights).
LoadedRun load_for_eval(const EvalOptions& o) {
  if (o.weights.empty()) {
    for (const auto& [flag, given] : {std::pair<const char*, bool>{"--model", !o.model.empty()},
                                      {"--classes", !o.classes.empty()}, {"--set", !o.settings.empty()}})
      if (given) throw InputError(std::string(flag) + ": only with --weights (a run directory knows its model)");
    if (o.run_dir.empty()) throw InputError("eval: give a run directory, or --weights FILE --model NAME");
    return load_run(o.run_dir, o.checkpoint, o.precision);
  }
  if (!o.run_dir.empty())
    throw InputError("--weights: evaluates a state_dict without a run directory; drop " + o.run_dir + " or --weights");
  if (o.data.empty()) throw InputError("--weights: needs --data SPEC (imported weights come without a dataset)");
  if (!o.checkpoint.empty()) throw InputError("--checkpoint: only with a run directory (--weights names the file)");
  return load_described_weights(o.weights, o.model, o.classes, o.settings, o.precision);
}

// Imported weights on a dataset whose classes the model does not know: every prediction, by
// image and folder, and why no accuracy was computed.
void write_predictions_only(const std::string& out, const SweepResult& result, const std::vector<std::string>& folder_of,
                            const std::vector<std::string>& model_classes, const EvalProvenance& from,
                            const std::string& why) {
  std::string csv = "index,folder,family,severity";
  for (auto t : result.steps()) csv += ",pred_step" + std::to_string(t);
  for (auto t : result.steps()) csv += ",class_step" + std::to_string(t);
  csv += "\n";
  const size_t S = result.steps().size();
  for (size_t c = 0; c < result.conditions.size(); ++c) {
    const Predictions& p = result.predictions[c];
    for (size_t i = 0; i < p.size(); ++i) {
      const int64_t image = p.image(i);
      csv += std::to_string(image) + "," + csv_field(folder_of[static_cast<size_t>(image)]) + "," + result.conditions[c].family + "," +
             std::to_string(result.conditions[c].severity);
      for (size_t k = 0; k < S; ++k) csv += "," + std::to_string(p.pred[i * S + k]);
      for (size_t k = 0; k < S; ++k) csv += "," + csv_field(model_classes[static_cast<size_t>(p.pred[i * S + k])]);
      csv += "\n";
    }
  }
  write_file_atomic((fs::path(out) / "per_image.csv").string(), csv);
  nlohmann::json j = {{"model", result.model}, {"run", from.run}, {"dataset", from.dataset}, {"n", result.size()},
                      {"params", from.params}, {"steps", result.steps()}, {"precision", from.precision},
                      {"accuracy", nullptr}, {"accuracy_not_computed", why}};
  write_file_atomic((fs::path(out) / "summary.json").string(), j.dump(2) + "\n");
  remove_stale(out, {"per_image.csv", "summary.json"});
}

}  // namespace

std::string run_eval(const EvalOptions& o) {
  LoadedRun run = load_for_eval(o);
  if (!o.run_dir.empty() && !RunDir(o.run_dir).finished())  // stopped, interrupted or still training
    std::fprintf(stderr, "note: %s has not finished training (no test.json): its %s checkpoint is evaluated as it is\n",
                 printable(o.run_dir).c_str(), o.checkpoint.empty() ? "last" : printable(o.checkpoint).c_str());
  if (run.precision.precision != Precision::FP32 || !o.precision.empty())
    std::fprintf(stderr, "eval: precision %s\n", run.precision.reason.c_str());
  const std::vector<int64_t> steps = steps_or_default(o.steps, run);
  if (!run.model->recurrent() && steps != std::vector<int64_t>{1})
    throw InputError("--steps: " + run.cfg.get_string("model.name") + " is feed-forward (one step); omit --steps");
  if (const int64_t trained = run.model->default_steps(); run.model->recurrent() &&
      *std::max_element(steps.begin(), steps.end()) > trained)
    std::fprintf(stderr, "note: --steps %s goes past the %lld steps %s was trained with; the network runs on, and the "
                 "accuracy there measures how it extrapolates\n", printable(o.steps).c_str(), (long long)trained,
                 run.cfg.get_string("model.name").c_str());
  if (!run.model->recurrent() && !o.exit_thresholds.empty())
    throw InputError("--exit-threshold: " + run.cfg.get_string("model.name") +
                     " is feed-forward (one step), so there is no step to exit early at; omit --exit-threshold");
  for (double t : o.exit_thresholds)
    if (!(t >= 0 && t <= 1))
      throw InputError("--exit-threshold: " + format_number("%g", t) + " is not a confidence in [0, 1]");
  std::vector<Condition> conditions;
  try {
    conditions = parse_conditions(o.perturb);
  } catch (const InputError& e) {
    throw InputError(std::string("--perturb: ") + e.what());
  }
  check_feature_areas(*run.model, o.features);
  std::vector<int64_t> presents;
  if (!o.mask.empty() && o.present.empty()) throw InputError("--mask: needs --present K (the steps the image is shown before the mask)");
  if (!o.present.empty()) {
    if (!run.model->takes_input_every_step())
      throw InputError("--present: " + run.cfg.get_string("model.name") +
                       " does not take the image at every step, so nothing can replace it; backward masking needs "
                       "cortical models with model.input_every_step, cornet_r or cornet_rt");
    try {
      presents = parse_steps(o.present);
    } catch (const InputError& e) {
      std::string why = e.what();
      if (why.rfind("--steps: ", 0) == 0) why = why.substr(9);
      throw InputError("--present: " + why);
    }
    if (presents.back() >= steps.back())
      throw InputError("--present: K = " + std::to_string(presents.back()) + " shows the image at every evaluated step (the last is " +
                       std::to_string(steps.back()) + "), so nothing would be masked; use K below " +
                       std::to_string(steps.back()) + " or evaluate more --steps");
    if (!o.mask.empty() && o.mask != "blank" && o.mask != "noise")
      throw InputError("--mask: expects blank or noise, got '" + o.mask + "'");
  }
  const std::string out = !o.out.empty()       ? o.out
                          : o.weights.empty() ? (fs::path(o.run_dir) / "eval").string()
                                              : fs::path(o.weights).replace_extension("").string() + "_eval";
  // An evaluation replaces the evaluation files in its folder, so the folder must be new, empty or
  // an evaluation's: never a run's own folder, its checkpoints, or / (which --out once accepted).
  {
    std::error_code ec;
    for (const auto& [flag, folder] : {std::pair<const char*, std::string>{"--out", out}, {"--features-out", o.features_out}})
      if (!folder.empty() && fs::exists(folder, ec) && !fs::is_directory(folder, ec))
        throw InputError(std::string(flag) + " " + printable(folder) + ": is a file, not a folder; give a folder");
    if (fs::is_directory(out, ec) && holds_files(out)) {
      // An evaluation's summary.json names its model, dataset and image count (a file that is only
      // called results.csv is someone's table).
      const bool evaluation = json_file_matches((fs::path(out) / "summary.json").string(), [](const nlohmann::json& j) {
        return j.is_object() && j.contains("model") && j.contains("dataset") && j.contains("n");
      });
      if (!evaluation)
        throw InputError("--out " + printable(out) + ": the folder holds files but no evaluation (a summary.json "
                         "written by ventral eval); give a new or empty folder");
    }
  }
  // Features go into a new or empty folder, or over an earlier feature export (its index.json):
  // never into a run's checkpoints or a folder of other files.
  if (!o.features.empty()) {
    const std::string features = o.features_out.empty() ? out + "/features" : o.features_out;
    std::error_code ec;
    if (fs::is_directory(features, ec) && !fs::is_empty(features, ec)) {
      const bool earlier = json_file_matches((fs::path(features) / "index.json").string(), [](const nlohmann::json& j) {
        return j.is_object() && j.contains("files") && j.value("labels", std::string()) == "labels.npy";
      });
      if (!earlier)
        throw InputError("--features-out " + printable(features) + ": the folder holds files but no feature export "
                         "(index.json); give a new or empty folder");
    }
  }
  // Everything that can be checked before minutes of evaluation is: the output folders can be
  // written, and the reference run loads.
  for (const std::string& folder : {out, o.features.empty() ? out : o.features_out.empty() ? out + "/features" : o.features_out}) {
    make_directories(folder);
    const std::string probe = (fs::path(folder) / ".ventral_write_check").string();
    write_file_atomic(probe, "");
    std::error_code ec;
    fs::remove(probe, ec);
  }
  std::optional<LoadedRun> reference_run;
  if (!o.reference.empty()) {
    if (std::error_code ec; !o.run_dir.empty() && fs::equivalent(o.reference, o.run_dir, ec))
      throw InputError("--reference " + printable(o.reference) + ": is the evaluated run itself; give the feed-forward "
                       "baseline's run directory");
    reference_run.emplace(load_run(o.reference, "", o.precision));
    configure_threads(run.cfg.get_int_or_auto("threads"));  // loading set the reference's; this run's first
    // The reference is scored on this evaluation's images and labels: its outputs must mean the
    // same classes, in the same order, and it must take images of the same shape.
    const LoadedRun& ref = *reference_run;
    const std::string evaluated = o.run_dir.empty() ? printable(o.weights) : printable(o.run_dir);
    auto first_names = [](std::vector<std::string> names) {
      const size_t n = names.size();
      if (n > 6) names.resize(5), names.push_back("... " + std::to_string(n) + " in all");
      for (auto& name : names) name = printable(name);
      return join(names, ", ");
    };
    if (ref.classes != run.classes)
      throw InputError("--reference " + printable(o.reference) + ": its classes (" + first_names(ref.classes) +
                       ") are not those of " + evaluated + " (" + first_names(run.classes) +
                       "), in that order; a reference is scored on the same labels: give a run of the same task");
    if (ref.channels != run.channels || ref.image_size != run.image_size)
      throw InputError("--reference " + printable(o.reference) + ": takes " + std::to_string(ref.channels) + "x" +
                       std::to_string(ref.image_size) + "x" + std::to_string(ref.image_size) + " images, " + evaluated +
                       " takes " + std::to_string(run.channels) + "x" + std::to_string(run.image_size) + "x" +
                       std::to_string(run.image_size) + "; a reference is scored on the same images: give a run trained "
                       "on them");
  }
  std::string unknown;
  Dataset data = evaluation_data(run, o.data, o.split, o.limit, o.class_map, o.weights.empty() ? nullptr : &unknown);
  if (o.limit > 0 && static_cast<int64_t>(data.size()) < o.limit)
    throw InputError("--limit " + std::to_string(o.limit) + ": the dataset holds only " + std::to_string(data.size()) +
                     " images; give at most that (0 = all)");
  bool numbered = true;  // no --classes and no export description: the outputs are named by index
  for (size_t c = 0; c < run.classes.size(); ++c) numbered = numbered && run.classes[c] == std::to_string(c);
  if (!unknown.empty() && !o.weights.empty() && numbered && o.class_map.empty())
    unknown = "the model's outputs have no names (no --classes) to match the classes of " + o.data +
              " against; give --classes FILE (the model's class names, one per line in output order)";
  if (o.features_n > static_cast<int64_t>(data.size()))  // checked before the sweep, not after it
    throw InputError("--features-n " + std::to_string(o.features_n) + ": " +
                     (o.limit > 0 ? "--limit " + std::to_string(o.limit) + " evaluates only "
                                  : std::string("the dataset holds only ")) +
                     std::to_string(data.size()) + " images; give at most that");
  const std::string source = o.weights.empty() ? o.run_dir : o.weights;
  auto export_features_if_asked = [&](int64_t step) {
    if (!o.features.empty())
      export_features(run, data, step,
                      {o.features, o.features_out.empty() ? (fs::path(out) / "features").string() : o.features_out,
                       o.features_n, o.features_full});
  };
  if (!unknown.empty()) {
    if (!o.reference.empty() || !presents.empty() || !o.exit_thresholds.empty())
      throw InputError("--data: " + unknown + " (--reference, --present and --exit-threshold need labels)");
    std::vector<std::string> folder_of;
    for (int64_t l : data.labels) folder_of.push_back(data.classes[static_cast<size_t>(l)]);
    SweepResult result = sweep(run, data, conditions, steps, o.seed, "", nullptr, /*labelled=*/false);
    write_predictions_only(out, result, folder_of, run.classes,
                           {source, o.data + "/" + o.split, count_parameters(*run.model), run.model->recurrent(), o.seed,
                            "", precision_name(run.model->precision())},
                           unknown);
    std::fprintf(stderr, "eval: accuracy not computed: %s; per_image.csv holds every prediction\n", unknown.c_str());
    export_features_if_asked(result.steps().back());
    return out;
  }

  SweepResult result = sweep(run, data, conditions, steps, o.seed);
  std::vector<MaskedSweep> masked;
  for (int64_t k : presents) {
    const MaskSchedule schedule{k, o.mask.empty() ? "blank" : o.mask, o.seed};
    masked.push_back({k, schedule.mask,
                      sweep(run, data, conditions, steps, o.seed, "present " + std::to_string(k) + " ", &schedule)});
  }
  std::optional<SweepResult> reference;
  if (reference_run) {
    LoadedRun& ref = *reference_run;
    reference = sweep(ref, data, conditions, {ref.model->default_steps()}, o.seed, "reference ");
  }
  Summary summary = summarize(result, reference ? &*reference : nullptr, o.exit_thresholds);
  const std::string spec = o.data.empty() ? run.cfg.get_string("data.dataset") : o.data;
  // A folder or list without splits is one set: named as such in summary.json, not as a "test" split.
  const bool one_set = one_image_set(spec);
  const std::string dataset = !one_set       ? spec + "/" + o.split
                              : o.data.empty() ? spec + " (the training images: no separate test split)"
                                               : spec;
  if (one_set && o.data.empty())
    std::fprintf(stderr, "note: %s has no separate test split: these numbers are on the images the run trained on\n",
                 printable(spec).c_str());
  EvalProvenance from{source, dataset,
                      count_parameters(*run.model), run.model->recurrent(), o.seed, o.reference,
                      precision_name(run.model->precision())};
  write_evaluation(out, result, summary, from, masked);
  export_features_if_asked(result.steps().back());
  return out;
}

}  // namespace ventral
