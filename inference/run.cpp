#include "inference/run.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "inference/checkpoint.hpp"
#include "inference/infer.hpp"
#include "inference/model_json.hpp"
#include "inference/run_dir.hpp"
#include "models/registry.hpp"

namespace ventral {

namespace fs = std::filesystem;

LoaderOptions LoadedRun::loader_options() const { return evaluation_loader_options(cfg, mean, std); }

namespace {

// Where two model descriptions differ, as "path: saved vs now" (numbers equal to 1e-9 relative:
// config.yaml keeps them to 17 digits).
void describe_differences(const nlohmann::json& saved, const nlohmann::json& now, const std::string& path,
                          std::vector<std::string>& out) {
  if (saved.is_number() && now.is_number()) {
    const double a = saved.get<double>(), b = now.get<double>();
    if (std::abs(a - b) <= 1e-9 * std::max(std::abs(a), std::abs(b))) return;
  } else if (saved.is_object() && now.is_object()) {
    for (const auto& [key, value] : now.items())
      describe_differences(saved.contains(key) ? saved.at(key) : nlohmann::json(), value, path + (path.empty() ? "" : ".") + key, out);
    return;
  } else if (saved.is_array() && now.is_array() && saved.size() == now.size()) {
    for (size_t i = 0; i < now.size(); ++i) describe_differences(saved[i], now[i], path + "[" + std::to_string(i) + "]", out);
    return;
  } else if (saved == now) {
    return;
  }
  out.push_back(path + ": " + printable(saved.dump(), 120) + " at training, " + printable(now.dump(), 120) + " now");
}

// The keys that decide what a checkpoint's weights compute and what they are fed: the weights
// of a run trained with others (another unrolling, read-out, dataset or normalisation) have the
// same shapes and load, and would be scored as this run's.
std::vector<std::string> weight_meaning_differences(const Config& run, const Config& trained) {
  std::vector<std::string> out;
  for (const std::string& key : run.differing_keys(trained)) {
    const bool model = key.rfind("model.", 0) == 0 && key != "model.weights" && key != "model.weights_strict";
    const bool data = key == "data.dataset" || key == "data.normalize" || key == "data.mean" || key == "data.std" ||
                      key == "data.image_size" || key == "data.channels";
    if (model || data) out.push_back(key + ": " + printable(trained.text(key), 60) + " in the checkpoint, " +
                                     printable(run.text(key), 60) + " in config.yaml");
  }
  return out;
}

// `saved`: the run's model.json, read once by load_run (nullopt: the run has none).
void check_model_json(const RunDir& dir, const LoadedRun& r, const std::optional<nlohmann::json>& saved,
                      bool checkpoint_has_config) {
  if (!saved && checkpoint_has_config)
    throw InputError(dir.model_json() + ": missing, though the run was trained by a version that writes it (its "
                     "checkpoint holds its config): restore it; it records the classes and input the weights were trained on");
  if (!saved) {  // runs trained before model.json
    std::fprintf(stderr, "note: %s: no model.json (runs trained by older versions lack it); config.yaml, classes.txt "
                 "and input.json are taken as they are, unchecked against what the run trained on\n",
                 printable(dir.path()).c_str());
    return;
  }
  const nlohmann::json now = model_json({r.cfg, r.model->default_steps(), r.channels, r.image_size, r.mean, r.std, r.classes});
  std::vector<std::string> differences;
  for (const char* key : {"model", "options", "steps", "input", "normalisation", "classes"})
    describe_differences(saved->contains(key) ? saved->at(key) : nlohmann::json(), now.at(key), key, differences);
  if (differences.empty()) return;
  if (differences.size() > 3) differences.resize(3), differences.push_back("...");
  throw InputError(dir.model_json() + ", written when the run trained, disagrees with its config.yaml, classes.txt and "
                   "input.json as they are now (" + join(differences, "; ") +
                   "): evaluating would score another model than the one trained; restore the edited file");
}

}  // namespace

LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint, const std::string& precision) {
  RunDir dir(run_dir);
  if (!dir.holds_config()) throw InputError(run_dir + ": not a run directory (no config.yaml)");
  LoadedRun r;
  r.cfg = Config::load(dir.config());
  r.classes = dir.read_classes();
  // Classes added to or removed from classes.txt, named before the checkpoint's shapes would
  // blame config.yaml (other edits of the names are model.json's comparison below).
  std::optional<nlohmann::json> saved;  // model.json, written when the run trained
  if (std::error_code ec; std::filesystem::exists(dir.model_json(), ec)) saved = read_json_file(dir.model_json());
  if (saved && saved->contains("classes") && saved->at("classes").is_array() && saved->at("classes").size() != r.classes.size())
    throw InputError(dir.classes() + ": holds " + std::to_string(r.classes.size()) + " class names, but the run trained on " +
                     std::to_string(saved->at("classes").size()) + " (model.json); restore it");
  r.mean = r.cfg.get_floats("data.mean");
  r.std = r.cfg.get_floats("data.std");
  // The input shape the model was built for, as recorded by the trainer; runs from before
  // input.json learn it from the run's dataset as converted by its config.
  r.channels = r.cfg.get_int("data.channels");
  r.image_size = r.cfg.get_int("data.image_size");
  if (auto shape = dir.read_input()) {
    // data.channels and data.image_size, where set, are what the trainer converted the images
    // to: one edited after training would otherwise be overruled by input.json without a word.
    for (const auto& [key, trained] : {std::pair{"data.channels", shape->channels}, std::pair{"data.image_size", shape->image_size}})
      if (const int64_t set = r.cfg.get_int(key); set != 0 && set != trained)
        throw InputError(dir.config() + ": " + key + " is " + std::to_string(set) + " but the run trained on " +
                         std::to_string(trained) + " (input.json): restore config.yaml; another input size needs a new run");
    r.channels = shape->channels;
    r.image_size = shape->image_size;
  } else if (saved) {
    throw InputError(dir.input() + ": missing, though the run was trained by a version that writes it (model.json is "
                     "there): restore it; it records the input shape the model was built for");
  } else if (r.channels == 0 || r.image_size == 0) {
    Dataset probe = load_dataset(r.cfg.get_string("data.dataset"), Split::Test, preprocessing(r.cfg).load);
    r.channels = probe.channels;
    r.image_size = probe.height;
  }
  // Without normalisation the trainer fed pixel / 255; data.mean/std may still hold values it
  // never used (they would make evaluation disagree with training).
  if (!r.cfg.get_bool("data.normalize") || (r.mean.empty() && r.std.empty()))
    r.mean.assign(r.channels, 0.0), r.std.assign(r.channels, 1.0);
  check_mean_std(r.mean, r.std, r.channels, dir.config(), "the model was trained on them");
  torch::Device device = resolve_device(r.cfg.get_string("device"));
  r.model = create_model(r.cfg.get_string("model.name"),
                         model_options(r.cfg, r.channels, static_cast<int64_t>(r.classes.size()), r.image_size));
  const std::string checkpoint_path = dir.checkpoint(checkpoint);
  const TrainState trained = load_checkpoint(checkpoint_path, *r.model, nullptr);
  r.model->to(device);
  configure_threads(r.cfg.get_int_or_auto("threads"));  // as trained; before the `auto` probe times anything
  r.precision = choose_precision(*r.model, precision.empty() ? r.cfg.get_string("precision") : precision,
                                 r.cfg.get_string("memory_format"), r.channels, r.image_size);
  r.model->eval();
  check_model_json(dir, r, saved, !trained.config.empty());  // run files edited since training
  // The checkpoint itself: one of another run (same shapes, another config) passes the above.
  if (!trained.config.empty())
    if (auto d = weight_meaning_differences(r.cfg, Config::from_text(trained.config, checkpoint_path)); !d.empty()) {
      if (d.size() > 3) d.resize(3), d.push_back("...");
      throw InputError(checkpoint_path + ": these weights were trained with another config than " + dir.config() + " (" +
                       join(d, "; ") + "): a checkpoint of another run, or config.yaml edited after training");
    }
  dir.check_run_id(checkpoint_path, trained.run_id);  // another run of the same config (the same shapes and meaning)
  return r;
}

namespace {

// The size along `dim` of the weights' tensor that carries a model option: in two models built
// with the option at `value_a` and `value_b` (`a`, `b`), the entry whose size along `dim` is
// exactly those values (the classifier for the class count, the first convolution for the
// input channels). Matching the values, not any difference: cortical_b_f's widths change with
// the class count too (its parameters are matched to BLT's, readout included).
int64_t read_off(const std::map<std::string, torch::Tensor>& weights, const std::string& model_name,
                 const ModelOptions& a, const ModelOptions& b, int64_t value_a, int64_t value_b, int64_t dim,
                 const std::string& what, const std::string& origin) {
  auto state_a = model_state(*create_model(model_name, a)), state_b = model_state(*create_model(model_name, b));
  for (size_t i = 0; i < state_a.size() && i < state_b.size(); ++i) {
    const auto& [name, ta] = state_a[i];
    const torch::Tensor& tb = state_b[i].second;
    if (ta.dim() <= dim || tb.dim() <= dim || ta.size(dim) != value_a || tb.size(dim) != value_b) continue;
    auto w = weights.find(name);
    if (w == weights.end() || w->second.dim() <= dim)
      throw InputError(origin + ": no tensor '" + name + "' of " + std::to_string(dim + 1) + "+ dimensions to read the " +
                       what + " from: these are not " + model_name + " weights (--model names the architecture)");
    return w->second.size(dim);
  }
  throw std::logic_error("read_off: no tensor of " + model_name + " depends on the " + what);
}

std::vector<std::string> read_class_names(const std::string& path) {
  auto bytes = read_file(path);
  if (bytes.size() >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF)
    bytes.erase(bytes.begin(), bytes.begin() + 3);  // a UTF-8 byte-order mark (editors on Windows)
  std::vector<std::string> names;
  std::set<std::string> seen;
  std::string line;
  int64_t line_no = 0;
  for (size_t i = 0; i <= bytes.size(); ++i) {
    if (i < bytes.size() && bytes[i] != '\n') {
      line += static_cast<char>(bytes[i]);
      continue;
    }
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) {
      if (!valid_utf8(line) || std::any_of(line.begin(), line.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
        throw InputError(printable(path) + ":" + std::to_string(line_no) + ": class '" + printable(line) +
                         "' is not UTF-8 text without control characters");
      if (!seen.insert(line).second)
        throw InputError(path + ":" + std::to_string(line_no) + ": class '" + line + "' is listed twice");
      names.push_back(line);
    }
    line.clear();
  }
  if (names.empty()) throw InputError(path + ": no class names (one per line, in the model's output order)");
  return names;
}

}  // namespace

namespace {

// load_weights() with the class names given (`classes_from` names where they came from in
// messages; none: the output indices).
// The first `described` settings come from the description `described_from` (named in messages).
LoadedRun weights_model(const std::string& weights, const std::string& model_name, std::vector<std::string> classes,
                        const std::string& classes_from, const std::vector<std::string>& settings,
                        const std::string& precision, size_t described = 0, const std::string& described_from = "") {
  LoadedRun r;
  r.cfg.set("model.name=" + model_name, described ? described_from : "--model");
  for (size_t i = 0; i < settings.size(); ++i) {
    const std::string& s = settings[i];
    if (i < described) {
      r.cfg.set(s, described_from);
      continue;
    }
    const std::string key = s.substr(0, s.find('='));
    if (s.find('=') == std::string::npos || key.empty())
      throw InputError("--set " + s + ": expected KEY=VALUE, e.g. --set data.preset=imagenet");
    if (key == "model.name" || key == "data.dataset" || key == "model.weights")
      throw InputError("--set " + s + ": with --weights, --model, --data and --weights say this");
    if (key.rfind("model.", 0) != 0 && key.rfind("data.", 0) != 0 && key != "threads" && key != "memory_format")
      throw InputError("--set " + s + ": with --weights only model.*, data.*, threads and memory_format keys apply");
    if (key.rfind("data.augment.", 0) == 0 || key == "data.val_fraction" || key == "data.max_train_images")
      throw InputError("--set " + s + ": " + key + " shapes training only; an evaluation does not read it");
    r.cfg.set(s, "--set");
  }
  find_model(model_name);  // an unknown name lists the valid ones before the weights are read
  check_model_options(r.cfg);
  const auto state = read_state_dict(weights);  // a file that holds no weights is said before what it lacks
  const Preprocessing pre = preprocessing(r.cfg);
  r.image_size = pre.load.center_crop ? pre.load.center_crop : pre.load.image_size;
  if (r.image_size == 0)
    throw InputError("--weights: the input size is unknown: set data.preset (e.g. --set data.preset=imagenet), "
                     "data.center_crop or data.image_size");
  std::map<std::string, torch::Tensor> named;
  const bool prefixed = !state.empty() && std::all_of(state.begin(), state.end(), [](const auto& kv) {
    return kv.first.rfind("module.", 0) == 0;
  });
  for (const auto& [k, v] : state) named[prefixed ? k.substr(7) : k] = v;
  ModelOptions o = model_options(r.cfg, 1, 7, r.image_size), o2 = o;
  o2.num_classes = 11;
  const int64_t num_classes = read_off(named, model_name, o, o2, 7, 11, 0, "class count", weights);
  o2 = o, o2.in_channels = 2;
  const int64_t file_channels = read_off(named, model_name, o, o2, 1, 2, 1, "input channels", weights);
  r.channels = pre.load.channels ? pre.load.channels : file_channels;
  if (r.channels != file_channels)
    throw InputError("data.channels: " + std::to_string(r.channels) + " but the weights in " + weights + " take " +
                     std::to_string(file_channels) + "-channel images");
  if (classes.empty()) {
    for (int64_t c = 0; c < num_classes; ++c) r.classes.push_back(std::to_string(c));
  } else {
    r.classes = std::move(classes);
    if (static_cast<int64_t>(r.classes.size()) != num_classes)
      throw InputError(classes_from + ": " + std::to_string(r.classes.size()) + " names for a model with " +
                       std::to_string(num_classes) + " outputs (" + weights + ")");
  }
  if (r.cfg.get_bool("data.normalize")) {
    r.mean = pre.mean, r.std = pre.std;
    if (r.mean.size() != static_cast<size_t>(r.channels) || r.std.size() != r.mean.size())
      throw InputError("--weights: the normalisation the weights were trained with is needed: data.preset (e.g. "
                       "--set data.preset=imagenet) or data.mean and data.std with " + std::to_string(r.channels) +
                       " values each (or data.normalize=false)");
    r.cfg.set("data.mean=" + yaml_list(r.mean), "normalisation");
    r.cfg.set("data.std=" + yaml_list(r.std), "normalisation");
  } else {
    r.mean.assign(static_cast<size_t>(r.channels), 0.0), r.std.assign(r.mean.size(), 1.0);
  }
  r.model = create_model(model_name, model_options(r.cfg, r.channels, num_classes, r.image_size));
  load_state_dict(*r.model, state, weights, /*strict=*/true,
                  "--model and its model.* options must describe the architecture the weights are of: e.g. "
                  "--set model.width=..., model.steps=... (per-step norms), model.stem=imagenet (a 7x7 stem below 64 px)");
  r.model->to(resolve_device(r.cfg.get_string("device")));
  configure_threads(r.cfg.get_int_or_auto("threads"));
  r.precision = choose_precision(*r.model, precision.empty() ? "fp32" : precision, r.cfg.get_string("memory_format"),
                                 r.channels, r.image_size);
  r.model->eval();
  return r;
}

}  // namespace

LoadedRun load_weights(const std::string& weights, const std::string& model_name, const std::string& classes_file,
                       const std::vector<std::string>& settings, const std::string& precision) {
  return weights_model(weights, model_name, classes_file.empty() ? std::vector<std::string>{} : read_class_names(classes_file),
                       "--classes " + classes_file, settings, precision);
}

std::optional<WeightsDescription> read_weights_description(const std::string& weights, std::string* why_not) {
  const fs::path path = fs::path(weights).replace_extension(".json");
  const std::string name = fs::path(weights).filename().string();
  std::error_code ec;
  if (path == fs::path(weights) || !fs::exists(path, ec)) return std::nullopt;
  // Only the description written for these weights: an export records the file it describes.
  nlohmann::json j;
  try {
    j = read_json_file(path.string());
  } catch (const InputError& e) {  // the description's name, damaged: read as one, it would say what to fix
    throw InputError(std::string(e.what()) + "; it is read as the description of " + printable(weights) +
                     ": restore it from `ventral export`, or move it away");
  }
  if (!j.is_object() || !j.value("format", nlohmann::json()).is_string() ||
      j["format"].get<std::string>().rfind("ventral model description", 0) != 0) {
    if (why_not) *why_not = printable(path.string()) + " is not a description written by `ventral export` (no \"format\": \"ventral model description ...\")";
    return std::nullopt;
  }
  if (const std::string format = j["format"].get<std::string>();
      format != "ventral model description 1" && format.rfind("ventral model description 1;", 0) != 0)
    throw InputError(printable(path.string()) + ": field 'format' is \"" + printable(format) +
                     "\": this ventral reads descriptions of format 1; export the weights again with it");
  if (!j.value("weights", nlohmann::json()).is_string() || j["weights"].get<std::string>() != name) {
    if (why_not) *why_not = printable(path.string()) + " describes " + j.value("weights", nlohmann::json()).dump() + ", not " + printable(name);
    return std::nullopt;
  }
  WeightsDescription d;
  d.path = path.string();
  // One field, of the JSON type asked for, named in the message when it is missing or another type.
  auto field = [&](const std::string& pointer, nlohmann::json::value_t type) -> const nlohmann::json& {
    const nlohmann::json::json_pointer at(pointer);
    std::string dotted = pointer.substr(1);
    std::replace(dotted.begin(), dotted.end(), '/', '.');
    if (!j.contains(at))
      throw InputError(printable(d.path) + ": field '" + dotted + "' is missing; restore the file from `ventral export`");
    const nlohmann::json& v = j.at(at);
    // A whole number past int64 (2**63) would wrap around negative when read.
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw InputError(printable(d.path) + ": field '" + dotted + "' is " + v.dump() +
                       ", larger than any value ventral takes; restore the file from `ventral export`");
    const bool ok = type == nlohmann::json::value_t::number_integer ? v.is_number_integer() : v.type() == type;
    if (!ok)
      throw InputError(printable(d.path) + ": field '" + dotted + "' is " + v.dump() + ", not " +
                       (type == nlohmann::json::value_t::number_integer ? "a whole number"
                        : type == nlohmann::json::value_t::string       ? "a string"
                        : type == nlohmann::json::value_t::boolean      ? "true or false"
                                                                        : "a list") +
                       "; restore the file from `ventral export`");
    return v;
  };
  using t = nlohmann::json::value_t;
  auto integer = [&](const std::string& p) { return std::to_string(field(p, t::number_integer).get<int64_t>()); };
  auto text = [&](const std::string& p) { return field(p, t::string).get<std::string>(); };
  auto flag = [&](const std::string& p) { return std::string(field(p, t::boolean).get<bool>() ? "true" : "false"); };
  auto numbers = [&](const std::string& p) {
    std::vector<double> v;
    for (const auto& x : field(p, t::array)) {
      if (!x.is_number())
        throw InputError(printable(d.path) + ": field '" + p.substr(1) + "' holds " + x.dump() + ", not a number");
      v.push_back(x.get<double>());
    }
    return v;
  };
  // Only the fields an export writes: anything else is from another writer, or a typo.
  const std::map<std::string, std::vector<std::string>> known = {
      {"", {"format", "model", "options", "steps", "input", "normalisation", "classes", "weights", "source"}},
      {"/options", {"width", "steps", "unroll", "input_every_step", "cumulative_readout", "shortcut", "stem"}},
      {"/input", {"channels", "image_size", "layout", "channel_order", "scale", "resize", "center_crop"}},
      {"/normalisation", {"mean", "std"}}};
  for (const auto& [object, names] : known) {
    const nlohmann::json& o = object.empty() ? j : j.value(nlohmann::json::json_pointer(object), nlohmann::json::object());
    if (!o.is_object()) continue;  // field() names its type below
    for (const auto& item : o.items())
      if (std::find(names.begin(), names.end(), item.key()) == names.end())
        throw InputError(printable(d.path) + ": field '" + (object.empty() ? "" : object.substr(1) + ".") +
                         printable(item.key()) + "' is not one `ventral export` writes; restore the file from it");
  }
  d.model = text("/model");
  try {
    find_model(d.model);
  } catch (const InputError& e) {
    throw InputError(printable(d.path) + ": field 'model': " + e.what());
  }
  // What the export states about the input: the only values ventral writes.
  const int64_t channels = field("/input/channels", t::number_integer).get<int64_t>();
  if (channels != 1 && channels != 3)
    throw InputError(printable(d.path) + ": field 'input.channels' is " + std::to_string(channels) +
                     ", not 1 (gray) or 3 (RGB)");
  for (const auto& [pointer, value] : std::vector<std::pair<std::string, std::string>>{
           {"/input/layout", "NCHW"},
           {"/input/channel_order", channels == 3 ? "RGB" : "gray"},
           {"/input/scale", "pixel / 255, then (x - mean) / std per channel"}})
    if (text(pointer) != value)
      throw InputError(printable(d.path) + ": field '" + pointer.substr(1, pointer.find('/', 1) - 1) + "." +
                       pointer.substr(pointer.find('/', 1) + 1) + "' is \"" + printable(text(pointer)) +
                       "\", but ventral's models take \"" + value + "\"; restore the file from `ventral export`");
  const int64_t side = field("/input/image_size", t::number_integer).get<int64_t>();
  const int64_t resize = field("/input/resize", t::number_integer).get<int64_t>();
  const int64_t crop = field("/input/center_crop", t::number_integer).get<int64_t>();
  // As data.* allows them: a crop alone, or a resize and a crop; the crop is the model's input.
  if (side < 8 || side > 4096 || resize < 0 || resize > 4096 || crop < 0 || (resize > 0 && crop == 0) ||
      (crop > 0 && side != crop))
    throw InputError(printable(d.path) + ": fields 'input.image_size' " + std::to_string(side) + ", 'input.resize' " +
                     std::to_string(resize) + " and 'input.center_crop' " + std::to_string(crop) +
                     " do not describe an input (image_size 8 to 4096 and equal to center_crop where there is one; "
                     "a resize only with a crop); restore the file from `ventral export`");
  d.steps = field("/steps", t::number_integer).get<int64_t>();
  if (d.steps < 1 || d.steps > 1000)
    throw InputError(printable(d.path) + ": field 'steps' is " + std::to_string(d.steps) +
                     ", not a number of steps (1 to 1000); restore the file from `ventral export`");
  d.settings = {"model.width=" + integer("/options/width"), "model.steps=" + integer("/options/steps"),
                "model.unroll=" + text("/options/unroll"), "model.input_every_step=" + flag("/options/input_every_step"),
                "model.cumulative_readout=" + flag("/options/cumulative_readout"),
                "model.shortcut=" + text("/options/shortcut"), "model.stem=" + text("/options/stem"),
                "data.channels=" + integer("/input/channels"),
                // Written out even when 0, so that a --set of another resize or crop contradicts them.
                "data.resize=" + integer("/input/resize"), "data.center_crop=" + integer("/input/center_crop")};
  if (field("/input/center_crop", t::number_integer).get<int64_t>() == 0)
    d.settings.push_back("data.image_size=" + integer("/input/image_size"));
  d.settings.push_back("data.normalize=true");  // an export without normalisation records mean 0, std 1
  const std::vector<double> mean = numbers("/normalisation/mean"), std = numbers("/normalisation/std");
  if (mean.size() != static_cast<size_t>(channels) || std.size() != mean.size() ||
      std::any_of(std.begin(), std.end(), [](double s) { return !(s > 0) || !std::isfinite(s); }) ||
      std::any_of(mean.begin(), mean.end(), [](double m) { return !std::isfinite(m); }))
    throw InputError(printable(d.path) + ": fields 'normalisation.mean' and 'normalisation.std' need " +
                     std::to_string(channels) + " finite value(s) each (one per channel of 'input.channels'), the "
                     "std above 0; restore the file from `ventral export`");
  d.settings.push_back("data.mean=" + yaml_list(mean));
  d.settings.push_back("data.std=" + yaml_list(std));
  for (const auto& c : field("/classes", t::array)) {
    if (!c.is_string())
      throw InputError(printable(d.path) + ": field 'classes' holds " + c.dump() + ", not a class name");
    const std::string name = c.get<std::string>();
    if (name.empty() || std::any_of(name.begin(), name.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20; }))
      throw InputError(printable(d.path) + ": field 'classes' holds " + c.dump() +
                       ", not a class name (empty, or with a line break or control character)");
    d.classes.push_back(name);
  }
  if (d.classes.empty())
    throw InputError(printable(d.path) + ": field 'classes' is empty; it names the model's classes in output order");
  std::vector<std::string> sorted = d.classes;
  std::sort(sorted.begin(), sorted.end());
  if (const auto twice = std::adjacent_find(sorted.begin(), sorted.end()); twice != sorted.end())
    throw InputError(printable(d.path) + ": field 'classes' names '" + printable(*twice) + "' twice");
  return d;
}

LoadedRun load_described_weights(const std::string& weights, const std::string& model_name,
                                 const std::string& classes_file, const std::vector<std::string>& settings,
                                 const std::string& precision) {
  std::string why_not;
  const std::optional<WeightsDescription> d = read_weights_description(weights, &why_not);
  if (!d) {
    if (model_name.empty())
      throw InputError("--weights: needs --model NAME (the architecture; see `ventral models`): " + printable(weights) +
                       (why_not.empty() ? " has no description from `ventral export` beside it" : ": " + why_not));
    if (!why_not.empty()) std::fprintf(stderr, "note: %s; not read\n", why_not.c_str());
    return load_weights(weights, model_name, classes_file, settings, precision);
  }
  const std::string from = printable(d->path) + ", the description exported with " + printable(weights);
  if (!model_name.empty() && model_name != d->model)
    throw InputError("--model " + model_name + ": contradicts " + from + " (model " + d->model + "); leave --model out");
  // A setting given may repeat the description's value, never change it.
  for (const std::string& given : settings) {
    const std::string key = given.substr(0, given.find('='));
    if (key == "data.preset")
      throw InputError("--set " + given + ": " + from + " sets the input size and normalisation; leave data.preset out");
    for (const std::string& described : d->settings) {
      if (described.substr(0, described.find('=')) != key) continue;
      Config mine, theirs;
      mine.set(given, "--set");
      theirs.set(described, d->path);
      if (mine.text(key) != theirs.text(key))
        throw InputError("--set " + given + ": contradicts " + from + " (" + key + "=" + theirs.text(key) +
                         "); leave it out");
    }
  }
  std::vector<std::string> merged = d->settings;
  merged.insert(merged.end(), settings.begin(), settings.end());
  std::vector<std::string> classes = d->classes;
  if (!classes_file.empty() && read_class_names(classes_file) != d->classes)
    throw InputError("--classes " + classes_file + ": names other classes, or another order, than " + from +
                     "; leave --classes out");
  LoadedRun r = weights_model(weights, d->model, std::move(classes), from, merged, precision, d->settings.size(),
                              printable(d->path));
  if (r.model->default_steps() != d->steps)
    throw InputError(printable(d->path) + ": field 'steps' is " + std::to_string(d->steps) + ", but the model it " +
                     "describes runs " + std::to_string(r.model->default_steps()) + " step(s); restore the file from " +
                     "`ventral export`");
  std::fprintf(stderr, "note: %s: read the model, input size, normalisation and class names from %s\n",
               printable(weights).c_str(), printable(d->path).c_str());
  return r;
}

}  // namespace ventral
