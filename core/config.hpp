#pragma once
/// Schema-checked YAML configuration. A config is the schema's defaults, overlaid by a YAML
/// file, overlaid by `key.sub=value` overrides from the command line. Every key is checked
/// against the schema: unknown keys (with the closest valid key suggested), wrong types and
/// out-of-range values are InputErrors naming the file and the key.
#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ventral {

enum class ValueType { Int, Float, Bool, String, Choice, IntOrAuto, FloatList };

struct KeySpec {
  std::string key;             ///< dotted path, e.g. "train.lr"
  ValueType type;
  std::string default_value;   ///< YAML text
  std::string help;
  double min = -1e300;         ///< inclusive bounds for Int, Float, IntOrAuto and list items
  double max = 1e300;
  std::vector<std::string> choices;  ///< for Choice
  /// Whether the key changes what a run learns. Keys that only change how fast it runs
  /// (threads, loader threads, evaluation batch size, ...) are false: a run trained with other
  /// values of them is still the same experiment (compare reuses it).
  bool affects_training = true;
};

/// The schema of experiment configs (all sections: data, model, train, eval).
const std::vector<KeySpec>& config_schema();

/// Keys declared by a layer above core, where the code that reads them lives (models/keys.cpp
/// declares the model.* options). A namespace-scope ConfigKeys object adds them to the schema
/// before main() runs, after the last key of the same section; a key declared twice is a bug
/// (std::logic_error).
struct ConfigKeys {
  explicit ConfigKeys(std::vector<KeySpec> keys);
};

/// The keys whose KeySpec::affects_training is false.
std::vector<std::string> keys_not_affecting_training();

/// Reads and parses a YAML file; InputError naming the file (and line) when it is missing or
/// not valid YAML.
YAML::Node load_yaml_file(const std::string& path);

/// Which kind of ventral YAML file a top-level mapping is, by its keys: an experiment lists
/// `models` and has no `model`; a training config has `model`, `train` or `data` and neither
/// `models` nor `base`. Config::load and load_experiment name a file of the other kind as such.
enum class YamlFileKind { TrainingConfig, Experiment, Unclear };
YamlFileKind yaml_file_kind(const YAML::Node& top);

/// A mapping key's text; InputError naming `origin` and the line when the key is not a plain
/// scalar (YAML allows `? [a, b]` or `{x: 1}` as keys; configs never use them).
std::string key_text(const YAML::Node& key, const std::string& origin);

/// Edit distance, used to suggest the closest valid key or name.
size_t edit_distance(const std::string& a, const std::string& b);
/// The candidate closest to `word` by edit distance ("" when there are none).
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

class Config;
/// InputError when a key is set (differs from its default) where it has no effect: the step
/// schedule's milestones and gamma under another schedule, SGD's momentum under Adam, Adam's
/// betas under SGD, data.mean/std without normalisation, ... (a value accepted must mean
/// something). Not data.augment.perturb_fraction: a study shares it among models of which some
/// train without perturbation (train_perturb: none).
void check_keys_take_effect(const Config& cfg);

/// The first line of every config ventral writes (a run's config.yaml, `ventral config --out`,
/// a study's model configs): what tells a file ventral may replace from one a person wrote.
inline constexpr const char* kSavedConfigMark = "# written by ventral: the fully resolved config";
/// Whether the file's first line is kSavedConfigMark.
bool written_by_ventral(const std::string& path);

class Config {
 public:
  /// Defaults only.
  Config();
  /// Defaults, then the file (if non-empty), then each "key=value" override in order.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// Defaults, then YAML text (e.g. dump()'s, kept in a checkpoint); `origin` names it in errors.
  static Config from_text(const std::string& text, const std::string& origin);

  /// Applies one "key.sub=value" override; `origin` names where it came from in errors.
  void set(const std::string& assignment, const std::string& origin = "command line");

  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::vector<double> get_floats(const std::string& key) const;
  /// IntOrAuto keys: nullopt for "auto".
  std::optional<int64_t> get_int_or_auto(const std::string& key) const;

  /// One key's value as YAML flow text (what `key=TEXT` would set).
  std::string text(const std::string& key) const;

  /// The fully resolved config as YAML text (every key, defaults included).
  std::string dump() const;
  /// Keys whose values differ from `other`'s (numbers by value), in schema order; keys in
  /// `ignore` are skipped.
  std::vector<std::string> differing_keys(const Config& other, const std::vector<std::string>& ignore = {}) const;
  /// differing_keys() as "key: mine -> other's", for messages.
  std::vector<std::string> differences(const Config& other, const std::vector<std::string>& ignore = {}) const;
  /// Writes kSavedConfigMark and dump() atomically.
  void save(const std::string& path) const;
  /// Where the config came from ("defaults" or the file path).
  const std::string& source() const { return source_; }
  /// Where `key`'s value was set: the file, "command line" or another override's origin; source()
  /// for a key left at its default. A message about one key names this.
  const std::string& origin(const std::string& key) const;

 private:
  void assign(const std::string& key, const YAML::Node& value, const std::string& origin);
  void merge(const YAML::Node& node, const std::string& prefix, const std::string& origin);
  const YAML::Node& node(const std::string& key) const;

  std::vector<std::pair<std::string, YAML::Node>> values_;  // schema order
  std::string source_ = "defaults";
  std::map<std::string, std::string> origins_;  // key -> where its value was set
};

}  // namespace ventral
