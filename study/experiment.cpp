#include "study/experiment.hpp"

#include "core/text.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "core/error.hpp"
#include "datasets/experiment.hpp"
#include "datasets/perturb.hpp"
#include "eval/sweep.hpp"
#include "models/registry.hpp"
#include "train/trainer.hpp"

namespace ventral {

namespace fs = std::filesystem;

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
    std::string key = key_text(item.first, path);
    if (std::find(valid.begin(), valid.end(), key) == valid.end())
      throw InputError(path + ": unknown key '" + printable(where + key) + "' (did you mean '" + where + closest(key, valid) + "'?)");
  }
}

// A key's value as text: one scalar (not a list, mapping or null), else an error naming the key.
std::string text_at(const YAML::Node& n, const std::string& key, const std::string& path, const std::string& what) {
  if (!n.IsScalar() || n.Scalar().empty())
    throw InputError(path + ": key '" + key + "' expects " + what + ", got " + (n.IsNull() ? std::string("nothing") : printable(render_value(n))));
  return n.Scalar();
}

constexpr int64_t kMaxSeed = 9200000000000000000;  // the config key seed's maximum (core/config.cpp)

int64_t count_at(const YAML::Node& n, const std::string& key, const std::string& path) {
  std::string text = text_at(n, key, path, "a non-negative integer");
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (*end || v < 0 || errno == ERANGE)
    throw InputError(path + ": key '" + key + "' expects a whole number, 0 or more" +
                     (key == "seeds" ? " (at most " + std::to_string(kMaxSeed) + ")" : std::string()) +
                     ", got '" + printable(text) + "'");
  return v;
}

// eval.seed: as `eval --seed` takes it, 0 to 2^64 - 1.
uint64_t eval_seed_at(const YAML::Node& n, const std::string& path) {
  const std::string text = text_at(n, "eval.seed", path, "a non-negative integer");
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || *end || errno == ERANGE)
    throw InputError(path + ": key 'eval.seed' expects a whole number from 0 to " + std::to_string(UINT64_MAX) +
                     " (as eval --seed), got '" + printable(text) + "'");
  return v;
}

void expect_map(const YAML::Node& n, const std::string& key, const std::string& path) {
  if (!n.IsMap()) throw InputError(path + ": key '" + key + "' expects a mapping of keys, got " + printable(render_value(n)));
}

// Dotted-key overrides from a mapping {train.epochs: 2, model: {name: x}}.
void flatten(const YAML::Node& node, const std::string& prefix, std::vector<std::string>& out, const std::string& path) {
  for (const auto& item : node) {
    std::string key = prefix.empty() ? key_text(item.first, path) : prefix + "." + key_text(item.first, path);
    if (item.second.IsMap()) flatten(item.second, key, out, path);
    else out.push_back(key + "=" + render_value(item.second));
  }
}

constexpr const char* kPerturbList = "a perturbation list such as debris:1-5, or none";

// train_perturb: SPEC as the config override it stands for; `none` trains on clean images
// (for an entry under an experiment-wide train_perturb).
std::string perturb_override(const std::string& spec) {
  return "data.augment.perturb=" + (spec == "none" ? std::string("\"\"") : spec);
}

}  // namespace

Config model_config(const Experiment& x, const CompareModel& m, std::optional<uint64_t> seed) {
  // Each value is set with where it came from, which a message about its key then names.
  Config cfg = [&] {
    try {
      return Config::load(m.base.empty() ? x.base : m.base);
    } catch (const InputError& e) {  // name the key that pointed there
      throw InputError(x.path + ": " + (m.base.empty() ? "base" : "models[" + m.name + "].base") + ": " + e.what());
    }
  }();
  for (size_t i = 0; i < x.overrides.size(); ++i)
    cfg.set(x.overrides[i], i < x.file_overrides ? x.path + " (overrides)" : "command line");
  const std::string entry = x.path + " (models[" + m.name + "])";
  for (const auto& o : m.overrides) cfg.set(o, entry);
  // `train_perturb: none` in a model entry trains on clean images: the experiment's share of
  // perturbed images (data.augment.perturb_fraction) does not apply to it.
  if (std::find(m.overrides.begin(), m.overrides.end(), perturb_override("none")) != m.overrides.end())
    cfg.set("data.augment.perturb_fraction=1", entry);
  if (seed) cfg.set("seed=" + std::to_string(*seed), x.path + " (the study's seeds)");
  make_dataset_absolute(cfg);  // each run records the folder it read
  return cfg;
}

std::vector<Condition> masking_conditions(const std::string& perturb) {
  std::vector<Condition> c = {Condition{}};
  for (const auto& spec : parse_perturbations(perturb))
    c.push_back({spec.family, *std::max_element(spec.severities.begin(), spec.severities.end())});
  return c;
}

std::vector<std::optional<uint64_t>> run_seeds(const Experiment& x) {
  if (x.seeds.empty()) return {std::nullopt};
  return {x.seeds.begin(), x.seeds.end()};
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& overrides,
                           const std::vector<std::string>& only, const std::vector<uint64_t>& seeds) {
  YAML::Node root = load_yaml_file(path);
  if (!root.IsMap()) throw InputError(path + ": expected a mapping with base, models, reference, eval");
  if (yaml_file_kind(root) == YamlFileKind::TrainingConfig)
    throw InputError(path + ": is a training config (it has no 'models' list), not an experiment file; train it with "
                     "`ventral train " + path + "`, or name it as an experiment's 'base' (configs/compare_quick.yaml "
                     "is an experiment)");
  check_keys(root, {"base", "overrides", "train_perturb", "seeds", "models", "reference", "eval"}, "", path);
  Experiment x;
  x.path = path;
  std::string steps_source;  // where eval.steps was set, for a message
  try {
    if (!root["base"]) throw InputError(path + ": missing key 'base' (the training config every model starts from)");
    x.base = (fs::path(path).parent_path() / text_at(root["base"], "base", path, "a config file name")).string();
    if (std::error_code ec; fs::equivalent(x.base, path, ec))
      throw InputError(path + ": key 'base' names this experiment file itself; give the training config every model "
                       "starts from (e.g. configs/resnet20.yaml)");
    if (root["overrides"]) {
      expect_map(root["overrides"], "overrides", path);
      flatten(root["overrides"], "", x.overrides, path);
    }
    if (root["train_perturb"])
      x.overrides.push_back(perturb_override(text_at(root["train_perturb"], "train_perturb", path, kPerturbList)));
    if (root["seeds"]) {
      const YAML::Node& list = root["seeds"];
      if (!list.IsSequence() || list.size() == 0)
        throw InputError(path + ": key 'seeds' expects a list of seeds such as [0, 1, 2], got " + render_value(list));
      for (const auto& item : list) {
        const int64_t seed = count_at(item, "seeds", path);
        if (seed > kMaxSeed)  // what the config key seed takes
          throw InputError(path + ": key 'seeds': " + std::to_string(seed) + " is out of range [0, " +
                           std::to_string(kMaxSeed) + "]");
        x.seeds.push_back(static_cast<uint64_t>(seed));
      }
    }
    if (!seeds.empty()) x.seeds = seeds;
    for (size_t i = 0; i < x.seeds.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (x.seeds[i] == x.seeds[j])
          throw InputError((seeds.empty() ? path + ": seed " + std::to_string(x.seeds[i]) + " is listed twice in 'seeds'"
                                          : "--seeds: seed " + std::to_string(x.seeds[i]) + " is listed twice"));
    std::vector<std::string> eval_overrides;
    x.file_overrides = x.overrides.size();
    for (const auto& o : overrides) (o.rfind("eval.", 0) == 0 ? eval_overrides : x.overrides).push_back(o);
    if (!root["models"] || !root["models"].IsSequence() || root["models"].size() == 0)
      throw InputError(path + ": key 'models' must list the models to compare");
    for (const auto& m : root["models"]) {
      if (!m.IsMap()) throw InputError(path + ": each entry of 'models' needs a name (and optional config)");
      check_keys(m, {"name", "base", "config", "train_perturb"}, "models[].", path);
      if (!m["name"]) throw InputError(path + ": a model entry has no 'name'");
      const std::string name = text_at(m["name"], "models[].name", path, "a model name");
      // The name names files and folders (OUT/runs/NAME, OUT/plan/NAME.yaml): one plain word.
      if (name.empty() || name[0] == '.' || name.size() > 100 ||
          name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-") != std::string::npos)
        throw InputError(path + ": key 'models[].name': '" + printable(name) + "' names run folders and files: use letters, digits "
                         "and _ . + - only, not starting with '.' (at most 100 characters)");
      CompareModel cm{name, "", {"model.name=" + name}};
      if (m["base"]) cm.base = (fs::path(path).parent_path() / text_at(m["base"], "models[].base", path, "a config file name")).string();
      if (std::any_of(x.models.begin(), x.models.end(), [&](const CompareModel& o) { return o.name == cm.name; }))
        throw InputError(path + ": model '" + cm.name + "' is listed twice (names label the runs: give each entry its own)");
      if (m["config"]) {
        if (!m["config"].IsMap()) throw InputError(path + ": models[" + cm.name + "].config must be a mapping of keys");
        flatten(m["config"], "", cm.overrides, path);
        // An entry named after a registered model trains that model: a config naming another would
        // run (and label in the report) something else under its name.
        const auto registered = list_models();
        for (const auto& o : cm.overrides)
          if (o.rfind("model.name=", 0) == 0 && o != "model.name=" + name &&
              std::find(registered.begin(), registered.end(), name) != registered.end())
            throw InputError(path + ": models[" + name + "] is named after the registered model " + name +
                             " but its config sets " + o + "; give the variant a name of its own (e.g. " + name +
                             "_variant)");
      }
      if (m["train_perturb"])
        cm.overrides.push_back(perturb_override(text_at(m["train_perturb"], "models[].train_perturb", path, kPerturbList)));
      x.models.push_back(cm);
    }
    for (size_t i = 0; i < only.size(); ++i)
      if (std::find(only.begin(), only.begin() + static_cast<std::ptrdiff_t>(i), only[i]) != only.begin() + static_cast<std::ptrdiff_t>(i))
        throw InputError("--models: names '" + only[i] + "' twice");
    for (const auto& name : only)
      if (std::none_of(x.models.begin(), x.models.end(), [&](const CompareModel& m) { return m.name == name; }))
        throw InputError(path + ": --models names '" + name + "', which the experiment does not list");
    std::vector<std::string> listed;
    for (const auto& m : x.models) listed.push_back(m.name);
    if (!only.empty())
      x.models.erase(std::remove_if(x.models.begin(), x.models.end(),
                                    [&](const CompareModel& m) {
                                      return std::find(only.begin(), only.end(), m.name) == only.end();
                                    }),
                     x.models.end());
    x.reference = root["reference"] ? text_at(root["reference"], "reference", path, "a model name") : x.models.front().name;
    if (std::none_of(x.models.begin(), x.models.end(), [&](const CompareModel& m) { return m.name == x.reference; }))
      throw InputError(std::find(listed.begin(), listed.end(), x.reference) != listed.end()
                           ? "--models: leaves out the reference '" + x.reference + "' (" + path +
                                 "), which every model is compared with; add it to --models"
                           : path + ": reference '" + x.reference + "' is not one of the models");
    if (root["eval"]) {
      expect_map(root["eval"], "eval", path);
      check_keys(root["eval"], {"steps", "perturb", "limit", "seed", "present", "mask"}, "eval.", path);
      if (root["eval"]["present"]) x.present = text_at(root["eval"]["present"], "eval.present", path, "a step list such as 1:3");
      if (root["eval"]["mask"]) x.mask = text_at(root["eval"]["mask"], "eval.mask", path, "blank or noise");
      if (root["eval"]["steps"]) x.steps = text_at(root["eval"]["steps"], "eval.steps", path, "a step list such as 1:8");
      if (root["eval"]["perturb"]) x.perturb = text_at(root["eval"]["perturb"], "eval.perturb", path, "a perturbation list");
      if (root["eval"]["limit"]) x.limit = count_at(root["eval"]["limit"], "eval.limit", path);
      if (root["eval"]["seed"]) x.seed = eval_seed_at(root["eval"]["seed"], path);
    }
    if (!x.steps.empty()) steps_source = path + ": key 'eval.steps'";
    for (const auto& o : eval_overrides) {
      std::string key = o.substr(0, o.find('=')), value = o.substr(o.find('=') + 1);
      if (key == "eval.steps") x.steps = value, steps_source = "compare: eval.steps";
      else if (key == "eval.perturb") x.perturb = value;
      else if (key == "eval.present") x.present = value;
      else if (key == "eval.mask") x.mask = value;
      else if (key == "eval.limit" || key == "eval.seed") {
        char* end = nullptr;
        long long v = std::strtoll(value.c_str(), &end, 10);
        if (value.empty() || *end || v < 0) throw InputError("compare: " + key + " must be a non-negative integer, got '" + value + "'");
        if (key == "eval.limit") x.limit = v;
        else x.seed = static_cast<uint64_t>(v);
      }
      else throw InputError("compare: unknown override '" + key +
                            "' (eval keys: eval.steps, eval.perturb, eval.limit, eval.seed, eval.present, eval.mask)");
    }
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": " + e.msg);
  }
  // Each entry of `models` sets model.name (its name, or its config's model.name for a variant):
  // a shared override of it would be silently replaced.
  auto names_model = [](const std::string& o) { return o.rfind("model.name=", 0) == 0; };
  if (std::any_of(x.overrides.begin(), x.overrides.end(), names_model))
    throw InputError(path + ": model.name is set per entry of 'models', not in overrides or on the command line "
                     "(--models NAME,... chooses among them)");
  // Check everything before hours of training: configs, model names, steps, perturbations.
  bool any_recurrent = false, any_maskable = false;
  if (!x.seeds.empty())
    for (const auto& o : x.overrides)
      if (o.rfind("seed=", 0) == 0)
        throw InputError(path + ": seed is set in overrides or on the command line, but 'seeds' (or --seeds) trains every "
                         "model once per seed, which replaces it; remove it");
  for (const auto& m : x.models) {
    const Config cfg = model_config(x, m, x.seeds.empty() ? std::nullopt : std::optional<uint64_t>(x.seeds.front()));
    ModelPtr model;
    try {
      check_training_config(cfg);
      model = create_model(cfg.get_string("model.name"), model_options(cfg, 1, 10, 32));
    } catch (const InputError& e) {  // messages that name no file (an unknown model) get the entry's
      const std::string what = e.what();
      if (what.find(path) != std::string::npos) throw;
      throw InputError(path + ": models[" + m.name + "]: " + what);
    }
    any_recurrent = any_recurrent || model->recurrent();
    any_maskable = any_maskable || model->takes_input_every_step();
    // With seeds, every model trains once per seed: a seed of its own would be replaced.
    if (!x.seeds.empty())
      for (const auto& o : m.overrides)
        if (o.rfind("seed=", 0) == 0)
          throw InputError(path + ": models[" + m.name + "].config sets seed, but 'seeds' (or --seeds) trains every "
                           "model once per seed, which replaces it; remove the entry's seed");
    check_dataset_spec(cfg.get_string("data.dataset"));
    if (x.limit > 0) {  // counted now (folders indexed, not decoded), not after the training
      LoadOptions count;
      count.stream = "on";
      const std::string spec = cfg.get_string("data.dataset");
      if (const size_t n = load_dataset(spec, Split::Test, count).size(); static_cast<size_t>(x.limit) > n)
        throw InputError(path + ": eval.limit " + std::to_string(x.limit) + ": the test images of " + printable(spec) +
                         " (models[" + m.name + "]) are only " + std::to_string(n) + "; give at most that (0 = all)");
    }
    if (const std::string weights = cfg.get_string("model.weights"); !weights.empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(weights, ec))
        throw InputError(cfg.origin("model.weights") + ": key 'model.weights': " + printable(weights) + ": no such file" +
                         (fs::path(weights).is_relative() ? " (relative to the working directory)" : ""));
    }
  }
  if (!x.steps.empty()) {
    try {
      parse_steps(x.steps);
    } catch (const InputError& e) {
      std::string why = e.what();
      throw InputError(steps_source + ": " + (why.rfind("--steps: ", 0) == 0 ? why.substr(9) : why));
    }
  }
  if (!x.steps.empty() && !any_recurrent)
    throw InputError(steps_source + ": every model " + (only.empty() ? "of the experiment" : "that --models chose") +
                     " is feed-forward (one step), so no step but 1 can be evaluated; drop eval.steps");
  try {
    parse_conditions(x.perturb);  // the families and severities, each once and none the clean image
  } catch (const InputError& e) {
    throw InputError(path + ": key 'eval.perturb': " + e.what());
  }
  if (x.mask != "blank" && x.mask != "noise") throw InputError(path + ": key 'eval.mask' expects blank or noise, got '" + x.mask + "'");
  if (x.present.empty() && x.mask != "blank")
    throw InputError(path + ": key 'eval.mask' masks the steps after eval.present, which is not set (e.g. present: 1:2)");
  if (!x.present.empty() && !any_maskable)
    throw InputError(path + ": key 'eval.present': no model of the experiment takes the image at every step, so none "
                     "can be masked (backward masking needs cortical models with model.input_every_step, cornet_r or "
                     "cornet_rt); drop eval.present");
  if (!x.present.empty()) {
    std::vector<int64_t> presents;
    try {
      presents = parse_steps(x.present);
    } catch (const InputError& e) {
      std::string why = e.what();
      throw InputError(path + ": key 'eval.present': " + why.substr(why.find(": ") + 2));
    }
    if (!x.steps.empty() && presents.back() >= parse_steps(x.steps).back())
      throw InputError(path + ": key 'eval.present': K = " + std::to_string(presents.back()) +
                       " shows the image at every evaluated step (eval.steps ends at " +
                       std::to_string(parse_steps(x.steps).back()) + "); nothing would be masked");
  }
  return x;
}

}  // namespace ventral
