#include "core/config.hpp"
#include "core/text.hpp"

#include <yaml-cpp/depthguard.h>
#include <fstream>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"

namespace ventral {

namespace {
using T = ValueType;
constexpr double kBig = 1e300;
}  // namespace

namespace {
// The keys core and the layers that read them through core own; models/ adds the model.*
// options (ConfigKeys in models/keys.cpp).
std::vector<KeySpec>& schema_storage() {
  static std::vector<KeySpec> schema = {
      {"seed", T::Int, "0", "seed for initialisation, splits, shuffling and augmentation", 0, 9.2e18},
      {"threads", T::IntOrAuto, "auto", "compute threads (auto = all cores)", 1, 1024, {}, false},
      {"device", T::Choice, "auto", "where to run", -kBig, kBig, {"auto", "cpu", "cuda"}, false},
      {"memory_format", T::Choice, "auto", "tensor layout (auto: channels_last unless the model runs faster contiguous)",
       -kBig, kBig, {"auto", "channels_last", "contiguous"}, false},
      {"precision", T::Choice, "fp32",
       "forward-pass precision: fp32; bf16 (CPU autocast: convolutions and matrix products in bf16, weights, "
       "optimizer, batch-norm statistics and loss in fp32); auto (bf16 where the CPU flags show avx512_bf16 or "
       "amx_bf16 and a start-up probe finds it faster, else fp32; the choice is saved in the run's config.yaml)",
       -kBig, kBig, {"fp32", "bf16", "auto"}},

      {"data.dataset", T::String, "fashion-mnist",
       "dataset SPEC: fashion-mnist, mnist:DIR, cifar10:DIR, folder:DIR, list:FILE (CSV path,label; list:DIR/{split}.csv "
       "for one list per split), synthetic"},
      {"data.stream", T::Choice, "auto",
       "image folders and lists: decode images in the loader, batch by batch, instead of into memory at start (auto: "
       "when the decoded split would exceed 1 GiB)", -kBig, kBig, {"auto", "on", "off"}, false},
      {"data.skip_bad_images", T::Bool, "false",
       "image folders and lists: skip a file that does not decode (warned once, counted) instead of stopping; in a "
       "streamed dataset the next image of its class stands in"},
      {"data.channels", T::Int, "0", "convert images to this many channels (0 = as stored)", 0, 4},
      {"data.image_size", T::Int, "0", "resize folder images to this size (0 = as stored)", 0, 4096},
      {"data.resize", T::Int, "0",
       "resize every image so that its shorter side is this many pixels, keeping the aspect ratio (torchvision's "
       "Resize(N): PIL's antialiased bilinear); needs data.center_crop (0 = off)", 0, 4096},
      {"data.center_crop", T::Int, "0",
       "crop the central N x N pixels, after data.resize (torchvision's CenterCrop; smaller images are padded with "
       "zeros); the model's input size (0 = off)", 0, 4096},
      {"data.preset", T::Choice, "none",
       "named preprocessing: imagenet (RGB, data.resize 256, data.center_crop 224, ImageNet mean and std), cifar (RGB, "
       "32 px, CIFAR-10 mean and std), mnist (gray, 28 px, MNIST mean and std); keys set explicitly win", -kBig, kBig,
       {"none", "imagenet", "cifar", "mnist"}},
      {"data.val_fraction", T::Float, "0.1", "fraction of the training set held out for validation", 0, 0.9},
      {"data.max_train_images", T::Int, "0", "train on a seeded random subset of this many images (0 = all)", 0, 1e12},
      {"data.normalize", T::Bool, "true", "subtract the per-channel mean and divide by the std"},
      {"data.mean", T::FloatList, "[]", "per-channel mean in [0,1] (empty = measured on the training split)", 0, 1},
      {"data.std", T::FloatList, "[]", "per-channel std (empty = measured on the training split)", 1e-6, 10},
      {"data.augment.crop_padding", T::Int, "0", "random crop after zero padding by this many pixels (0 = off)", 0, 256},
      {"data.augment.hflip", T::Bool, "false", "random horizontal flip with probability 1/2"},
      {"data.augment.erasing", T::Float, "0", "probability of random erasing (Zhong et al. 2017)", 0, 1},
      {"data.augment.random_resized_crop", T::Bool, "false",
       "torchvision's RandomResizedCrop: a random crop (area share in data.augment.random_resized_crop_scale, aspect "
       "ratio 3/4 to 4/3) resized to the image size; on streamed images cut from the file at full resolution"},
      {"data.augment.random_resized_crop_scale", T::FloatList, "[0.08, 1.0]",
       "RandomResizedCrop's range of area shares [min, max]", 1e-4, 1},
      {"data.augment.perturb", T::String, "\"\"",
       "train under perturbation: families and severities in eval --perturb's grammar, e.g. debris:1-5,block:2-4 "
       "(empty = off); each image gets a family and a severity drawn uniformly, new every epoch; validation and a "
       "second test accuracy use the same mix"},
      {"data.augment.perturb_fraction", T::Float, "1",
       "share of training, validation and test images perturbed when data.augment.perturb is set (the rest clean)", 0, 1},
      {"data.loader_threads", T::IntOrAuto, "auto", "threads decoding/augmenting batches", 1, 256, {}, false},
      {"data.prefetch", T::Int, "2", "batches prepared ahead of the consumer", 1, 64, {}, false},

      {"model.weights", T::String, "\"\"",
       "initial weights: a state_dict file as torch.save writes it (or `ventral export`); \"module.\" prefixes are "
       "stripped"},
      {"model.weights_strict", T::Bool, "true",
       "model.weights must fit exactly; false keeps the model's own values where the file's are missing or differ "
       "in shape (a replaced classifier)"},
      // Which registered model to build; the options each family reads are declared in models/.
      {"model.name", T::String, "resnet20", "registered model name (see `ventral models`)"},

      {"train.epochs", T::Int, "10", "training epochs", 1, 100000},
      {"train.batch_size", T::Int, "128", "images per batch", 1, 1 << 20},
      {"train.eval_batch_size", T::Int, "500", "images per batch in validation and test", 1, 1 << 20, {}, false},
      {"train.optimizer", T::Choice, "sgd", "optimizer", -kBig, kBig, {"sgd", "adam", "adamw"}},
      {"train.lr", T::Float, "0.1", "peak learning rate", 0, 100},
      {"train.momentum", T::Float, "0.9", "SGD momentum", 0, 1},
      {"train.nesterov", T::Bool, "true", "SGD Nesterov momentum"},
      {"train.betas", T::FloatList, "[0.9, 0.999]", "Adam/AdamW betas", 0, 0.999999},
      {"train.weight_decay", T::Float, "5e-4", "weight decay (decoupled for AdamW)", 0, 1},
      {"train.decay_bn_and_bias", T::Bool, "false", "also apply weight decay to BN and bias parameters"},
      {"train.schedule", T::Choice, "cosine", "learning-rate schedule", -kBig, kBig,
       {"constant", "step", "cosine", "onecycle"}},
      {"train.warmup_epochs", T::Float, "0", "linear warm-up from 0 to lr over this many epochs", 0, 1000},
      {"train.milestones", T::FloatList, "[]", "step schedule: epochs at which lr is multiplied by gamma", 0, 1e6},
      {"train.gamma", T::Float, "0.1", "step schedule: factor at each milestone", 0, 1},
      {"train.min_lr", T::Float, "0", "cosine schedule: final learning rate", 0, 100},
      {"train.label_smoothing", T::Float, "0", "label smoothing of the cross-entropy", 0, 0.99},
      {"train.grad_clip", T::Float, "0", "clip the global gradient norm to this (0 = off)", 0, 1e6},
      {"train.step_loss", T::Choice, "mean", "loss over a recurrent model's steps", -kBig, kBig,
       {"last", "mean", "weights"}},
      {"train.step_weights", T::FloatList, "[]", "step_loss=weights: one weight per step", 0, 1e6},
      {"train.log_every", T::Int, "50", "log (and print, off a terminal) every this many steps", 1, 1 << 30, {}, false},
      {"train.stop_after_steps", T::Int, "0",
       "stop as if interrupted after this many optimizer steps (0 = off; tests resume)", 0, 1LL << 40, {}, false},
      {"train.sync_bn", T::Bool, "false",
       "multi-process training: batch norm over the statistics of the whole global batch (PyTorch's SyncBatchNorm) "
       "instead of each process's part"},
      {"train.distributed.backend", T::Choice, "auto", "multi-process training: c10d backend (auto: gloo on CPU)",
       -kBig, kBig, {"auto", "gloo", "nccl"}, false},
      {"train.distributed.timeout_s", T::Float, "60",
       "multi-process training: seconds to wait for the other processes (rendezvous, each collective)", 1, 86400, {},
       false},
  };
  return schema;
}
}  // namespace

const std::vector<KeySpec>& config_schema() { return schema_storage(); }

ConfigKeys::ConfigKeys(std::vector<KeySpec> keys) {
  auto& schema = schema_storage();
  for (auto& spec : keys) {
    for (const auto& s : schema)
      if (s.key == spec.key) throw std::logic_error("config key declared twice: " + spec.key);
    // Next to the last key of its section, so dump() keeps each section together.
    std::string section = spec.key.substr(0, spec.key.find('.') + 1);
    auto at = schema.end();
    for (auto it = schema.begin(); it != schema.end(); ++it)
      if (it->key.rfind(section, 0) == 0) at = it + 1;
    schema.insert(at, std::move(spec));
  }
}

std::vector<std::string> keys_not_affecting_training() {
  std::vector<std::string> keys;
  for (const auto& spec : config_schema())
    if (!spec.affects_training) keys.push_back(spec.key);
  return keys;
}

namespace {
// Whether `text` holds a second YAML document: a `---` marker at the start of a line after
// content (a marker before any content only opens the first one). Markers at column 0 are
// always markers in YAML, even inside block scalars. (yaml-cpp 0.7's LoadAll can loop forever
// on malformed input, found by fuzzing: it is not used.)
bool has_second_document(const std::string& text) {
  bool content = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool marker = line.rfind("---", 0) == 0 && (line.size() == 3 || line[3] == ' ' || line[3] == '\t');
    if (marker && content) return true;
    if (marker) continue;
    const size_t first = line.find_first_not_of(" \t");
    if (first != std::string::npos && line[first] != '#' && line[0] != '%') content = true;
  }
  return false;
}
}  // namespace

namespace {
// yaml-cpp keeps both entries of a key written twice, and a lookup finds the first: a file
// with `limit: 100` and later `limit: 10` would silently mean 100. Every file ventral reads is
// refused instead, at any depth (configs, experiment files).
// Aliases (*name) repeat a node without copying it: a few hundred bytes of nested aliases
// expand to billions of values, which every walk over the file would visit. The walk stops
// past a bound no config or experiment file comes near.
constexpr size_t kMaxYamlValues = 100000;

void reject_duplicate_keys(const YAML::Node& node, const std::string& path, const std::string& prefix,
                           size_t& visited, int depth = 0) {
  if (++visited > kMaxYamlValues)
    throw InputError(path + ": holds more than " + std::to_string(kMaxYamlValues) +
                     " values once its aliases (*name) are expanded (a config holds a few hundred); write the values out");
  // An alias inside its own anchor (`a: &x {b: *x}`) makes a cycle, endless once followed.
  if (depth > 64)
    throw InputError(path + ": line " + std::to_string(node.Mark().line + 1) + ": values nested more than 64 levels "
                     "deep once aliases (*name) are followed (an alias inside its own anchor?); a config is a few levels");
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      reject_duplicate_keys(node[i], path, prefix + "[" + std::to_string(i) + "]", visited, depth + 1);
  } else if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& item : node) {
      if (!item.first.IsScalar()) continue;  // refused where keys are read, with the reason
      const std::string key = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
      if (!seen.insert(item.first.Scalar()).second)
        throw InputError(path + ": line " + std::to_string(item.first.Mark().line + 1) + ": key '" + printable(key) +
                         "' appears twice");
      reject_duplicate_keys(item.second, path, key, visited, depth + 1);
    }
  }
}
}  // namespace

YAML::Node load_yaml_file(const std::string& path) {
  auto bytes = read_file(path);
  const std::string text(bytes.begin(), bytes.end());
  // yaml-cpp reads a NUL byte as the end of its input and reports a syntax error after it.
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + static_cast<long>(nul), '\n'));
    throw InputError(path + ": line " + std::to_string(line) + " holds a NUL byte (byte " + std::to_string(nul) +
                     "): a config is YAML text; is this a binary file?");
  }
  // One document per file: a second one (after `---`) would otherwise be silently ignored.
  if (has_second_document(text))
    throw InputError(path + ": holds more than one YAML document (separated by '---'); a config is one document: "
                     "merge them or split the file");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {  // yaml-cpp's own text for it is "bad file"
    throw InputError(path + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": nested more than " +
                     std::to_string(e.depth()) + " levels deep (a config is a few levels)");
  } catch (const YAML::Exception& e) {
    throw InputError(path + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  size_t visited = 0;
  reject_duplicate_keys(root, path, "", visited);
  return root;
}

std::string key_text(const YAML::Node& key, const std::string& origin) {
  if (key.IsScalar()) return key.Scalar();
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e.SetMapFormat(YAML::Flow);
  e << key;
  throw InputError(origin + ": line " + std::to_string(key.Mark().line + 1) + ": a key must be a plain name, got " +
                   std::string(e.c_str()));
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

namespace {

const KeySpec* find_spec(const std::string& key) {
  for (const auto& s : config_schema())
    if (s.key == key) return &s;
  return nullptr;
}

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  for (const auto& s : config_schema()) keys.push_back(s.key);
  return keys;
}

bool is_section(const std::string& prefix) {
  for (const auto& s : config_schema())
    if (s.key.rfind(prefix + ".", 0) == 0) return true;
  return false;
}

std::string type_name(const KeySpec& s) {
  switch (s.type) {
    case T::Int: return "an integer";
    case T::Float: return "a number";
    case T::Bool: return "true or false";
    case T::String: return "a string";
    case T::IntOrAuto: return "an integer or auto";
    case T::FloatList: return "a list of numbers";
    case T::Choice: {
      std::string out = "one of";
      for (const auto& c : s.choices) out += " " + c;
      return out;
    }
  }
  return "?";
}

std::string render(const YAML::Node& n) {
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return e.c_str();
}

std::string hex_byte(unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

// Checks `value` against `spec` and returns a fresh node holding it (never shared with the
// caller's tree).
YAML::Node check_value(const KeySpec& spec, const YAML::Node& value, const std::string& origin) {
  auto fail = [&](const std::string& why) -> InputError {
    return InputError(origin + ": key '" + spec.key + "' " + why);
  };
  // A YAML tag (`!!float 2`, `!custom 0`) would change how the text reads, or mean nothing here.
  std::function<void(const YAML::Node&)> untagged = [&](const YAML::Node& n) {
    if (const std::string tag = n.Tag(); !tag.empty() && tag != "?" && tag != "!")
      throw fail("has the YAML tag '" + printable(tag) + "', which ventral does not read; write the value alone");
    if (n.IsSequence() || n.IsMap())
      for (const auto& item : n) {
        if (n.IsMap()) untagged(item.second);
        else untagged(static_cast<const YAML::Node&>(item));
      }
  };
  untagged(value);
  // Bounds as written (1048576, not 1.04858e+06).
  auto bound = [](double b) {
    return std::abs(b) < 9e15 && b == std::floor(b) ? std::to_string(static_cast<int64_t>(b)) : format_number("%g", b);
  };
  auto range = [&](double v) {
    if (!(v >= spec.min && v <= spec.max))
      throw fail("value " + (value.IsScalar() ? printable(value.Scalar()) : format_number("%g", v)) +
                 " is out of range [" + bound(spec.min) + ", " + bound(spec.max) + "]");
  };
  // A non-zero number written too small for a double (1e-400) is read as 0 or a denormal:
  // not what was written.
  auto underflow = [&](const std::string& text, double v) {
    const std::string mantissa = text.substr(0, text.find_first_of("eE"));
    if ((v == 0 && mantissa.find_first_of("123456789") != std::string::npos) || std::fpclassify(v) == FP_SUBNORMAL)
      throw fail("value " + printable(text) + " is too close to 0 for a double (it would be read as " +
                 format_number("%g", v) + ")");
  };
  auto expect_scalar = [&]() {
    if (!value.IsScalar()) throw fail("expects " + type_name(spec) + ", got " + printable(render(value)));
  };
  YAML::Node out;
  switch (spec.type) {
    case T::Int:
    case T::IntOrAuto: {
      expect_scalar();
      if (spec.type == T::IntOrAuto && value.Scalar() == "auto") return YAML::Node("auto");
      // Decimal digits only: yaml-cpp reads 010 as octal 8 and 0x10 as 16, which nobody means.
      const std::string& text = value.Scalar();
      int64_t v;
      if (!is_decimal_integer(text))
        throw fail("expects " + type_name(spec) + " in decimal digits (no leading zeros), got '" + printable(text) + "'");
      // Compared as integers: in double, 9200000000000000500 rounds to the bound 9.2e18 and passed.
      // (A bound at or past 2^63, such as kBig, is int64's own: casting it would be undefined.)
      constexpr double kTwo63 = 9223372036854775808.0;
      const int64_t lo = spec.min <= -kTwo63 ? INT64_MIN : static_cast<int64_t>(std::ceil(spec.min));
      const int64_t hi = spec.max >= kTwo63 ? INT64_MAX : static_cast<int64_t>(std::floor(spec.max));
      if (!YAML::convert<int64_t>::decode(value, v) || v < lo || v > hi)  // or digits beyond what 64 bits hold
        throw fail("value " + printable(text) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
      return YAML::Node(value.Scalar());
    }
    case T::Float: {
      expect_scalar();
      double v;
      if (!YAML::convert<double>::decode(value, v) || !std::isfinite(v))
        throw fail("expects " + type_name(spec) + ", got '" + printable(value.Scalar()) + "'");
      underflow(value.Scalar(), v);
      range(v);
      return YAML::Node(value.Scalar());  // keep the user's spelling: 0.1 stays 0.1
    }
    case T::Bool: {
      expect_scalar();
      bool v;
      if (!YAML::convert<bool>::decode(value, v))
        throw fail("expects " + type_name(spec) + ", got '" + printable(value.Scalar()) + "'");
      return YAML::Node(v ? "true" : "false");
    }
    case T::String: {
      expect_scalar();
      // A NUL cut a path short (the rest silently dropped) and a line break split messages and
      // saved configs: no key's text holds a control character.
      const std::string& text = value.Scalar();
      const auto control = std::find_if(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
      });
      if (control != text.end())
        throw fail("value " + printable(text) + " holds a control character (byte " +
                   hex_byte(static_cast<unsigned char>(*control)) + " at position " +
                   std::to_string(control - text.begin()) + "); write the value without it");
      return YAML::Node(text);
    }
    case T::Choice: {
      expect_scalar();
      if (std::find(spec.choices.begin(), spec.choices.end(), value.Scalar()) == spec.choices.end())
        throw fail("expects " + type_name(spec) + ", got '" + printable(value.Scalar()) + "'");
      return YAML::Node(value.Scalar());
    }
    case T::FloatList: {
      if (!value.IsSequence())
        throw fail("expects " + type_name(spec) + ", got " + printable(render(value)) +
                   (value.IsScalar() ? " (write a list in brackets, e.g. [" + printable(value.Scalar()) + "])" : ""));
      out = YAML::Node(YAML::NodeType::Sequence);
      for (const auto& item : value) {
        double v;
        if (!item.IsScalar() || !YAML::convert<double>::decode(item, v) || !std::isfinite(v))
          throw fail("expects " + type_name(spec) + ", got " + printable(render(value)));
        underflow(item.Scalar(), v);
        range(v);
        out.push_back(item.Scalar());
      }
      return out;
    }
  }
  return value;
}

}  // namespace

Config::Config() {
  for (const auto& s : config_schema()) values_.emplace_back(s.key, check_value(s, YAML::Load(s.default_value), "schema default"));
}

void Config::assign(const std::string& key, const YAML::Node& value, const std::string& origin) {
  const KeySpec* spec = find_spec(key);
  if (!spec) {
    std::string hint = closest(key, all_keys());
    throw InputError(origin + ": unknown key '" + printable(key) + "' (did you mean '" + hint + "'?)");
  }
  YAML::Node checked = check_value(*spec, value, origin);
  for (auto& [k, v] : values_)
    if (k == key) v.reset(checked);  // rebind: never write through a shared node
  origins_[key] = origin;
}

const std::string& Config::origin(const std::string& key) const {
  auto it = origins_.find(key);
  return it == origins_.end() ? source_ : it->second;
}

namespace {
// The same key in two forms in one file (`train: {lr: 1}` and `train.lr: 2`): the second value
// silently replaced the first. (Twice in one form is Config::merge's own check.)
void reject_key_in_two_forms(const YAML::Node& node, const std::string& prefix, const std::string& origin,
                             std::set<std::string>& leaves) {
  if (!node.IsMap()) return;
  std::set<std::string> names;
  for (const auto& item : node) {
    // merge names what is wrong with a key that is no scalar, or the same name twice at one level
    if (!item.first.IsScalar() || !names.insert(item.first.Scalar()).second) continue;
    const std::string key = prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar();
    if (item.second.IsMap() && is_section(key) && !find_spec(key)) {
      reject_key_in_two_forms(item.second, key, origin, leaves);
    } else if (!leaves.insert(key).second) {
      throw InputError(origin + ": key '" + key + "' is given twice, nested and dotted (e.g. `train: {lr: ...}` and "
                       "`train.lr: ...`); give it once");
    }
  }
}
}  // namespace

void Config::merge(const YAML::Node& node, const std::string& prefix, const std::string& origin) {
  if (prefix.empty()) {
    std::set<std::string> leaves;
    reject_key_in_two_forms(node, "", origin, leaves);
  }
  std::vector<std::string> seen;
  for (const auto& item : node) {
    std::string name = key_text(item.first, origin);
    std::string key = prefix.empty() ? name : prefix + "." + name;
    if (name == "<<")
      throw InputError(origin + ": key '" + key + "' is a YAML merge key, which ventral does not read (yaml-cpp keeps "
                       "it as a key); write the merged keys out, or use an alias for a whole value");
    if (std::find(seen.begin(), seen.end(), name) != seen.end())
      throw InputError(origin + ": key '" + key + "' appears twice");
    seen.push_back(name);
    if (item.second.IsMap() && is_section(key) && !find_spec(key))
      merge(item.second, key, origin);
    else if (is_section(key) && !find_spec(key))
      throw InputError(origin + ": key '" + key + "' is a section and expects a mapping of keys");
    else
      assign(key, item.second, origin);
  }
}

YamlFileKind yaml_file_kind(const YAML::Node& node) {
  const YAML::Node& top = node;  // const: looking a key up must not add it
  if (!top.IsMap()) return YamlFileKind::Unclear;
  if (top["models"] && !top["model"]) return YamlFileKind::Experiment;
  if (!top["models"] && !top["base"] && (top["model"] || top["train"] || top["data"])) return YamlFileKind::TrainingConfig;
  return YamlFileKind::Unclear;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config cfg;
  if (!path.empty()) {
    YAML::Node root = load_yaml_file(path);
    if (!root.IsNull()) {
      if (!root.IsMap()) throw InputError(path + ": expected a mapping of keys at the top level");
      if (yaml_file_kind(root) == YamlFileKind::Experiment)
        throw InputError(path + ": is an experiment file (it lists 'models'), not a training config; run it with "
                         "`ventral compare " + path + "`, or give a training config (configs/resnet20.yaml is one)");
      cfg.merge(root, "", path);
    }
    cfg.source_ = path;
  }
  for (const auto& o : overrides) cfg.set(o);
  return cfg;
}

Config Config::from_text(const std::string& text, const std::string& origin) {
  Config cfg;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(origin + ": invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsNull()) {
    if (!root.IsMap()) throw InputError(origin + ": expected a mapping of keys at the top level");
    cfg.merge(root, "", origin);
  }
  cfg.source_ = origin;
  return cfg;
}

void Config::set(const std::string& assignment, const std::string& origin) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError(origin + ": override '" + assignment + "' must look like key.sub=value");
  std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw InputError(origin + ": override '" + assignment + "' has an invalid value: " + e.msg);
  }
  if (value.IsNull()) {
    // "key=", "key=~" and "key=null" empty a value; text YAML reads as nothing else (",") is a typo.
    std::string text = assignment.substr(eq + 1);
    text.erase(0, text.find_first_not_of(" \t"));
    text.erase(text.find_last_not_of(" \t") + 1);
    if (!text.empty() && text != "~" && text != "null" && text != "Null" && text != "NULL")
      throw InputError(origin + ": override '" + assignment + "' has no value YAML can read ('" + text +
                       "'); quote it, or give key= to empty it");
    value = YAML::Node(std::string());
  }
  // " #" starts a YAML comment: `data.dataset=folder:../h #b` would read as folder:../h.
  const std::string text = assignment.substr(eq + 1);
  for (size_t hash = text.find('#'); hash != std::string::npos; hash = text.find('#', hash + 1)) {
    if (hash == 0 || (text[hash - 1] != ' ' && text[hash - 1] != '\t')) continue;
    YAML::Emitter e;
    e << value;
    if (std::string(e.c_str()).find('#') == std::string::npos)
      throw InputError(origin + ": override '" + printable(assignment) + "': YAML reads '" + printable(text.substr(hash)) +
                       "' as a comment, leaving " + printable(e.c_str()) + "; quote the value (" + printable(key) +
                       "='\"...\"') to keep the '#'");
    break;
  }
  // A section takes a mapping of its keys (`data.augment={flip: true}`), as it does in a file.
  if (is_section(key) && !find_spec(key)) {
    if (value.IsMap()) return merge(value, key, origin);
    throw InputError(origin + ": override '" + printable(assignment) + "': '" + printable(key) +
                     "' is a section: set one of its keys (" + printable(key) + ".KEY=VALUE) or give a mapping (" +
                     printable(key) + "={KEY: VALUE})");
  }
  assign(key, value, origin);
}

const YAML::Node& Config::node(const std::string& key) const {
  for (const auto& [k, v] : values_)
    if (k == key) return v;
  throw std::logic_error("config key not in schema: " + key);
}

int64_t Config::get_int(const std::string& key) const { return node(key).as<int64_t>(); }
double Config::get_float(const std::string& key) const { return node(key).as<double>(); }
bool Config::get_bool(const std::string& key) const { return node(key).as<bool>(); }
std::string Config::get_string(const std::string& key) const { return node(key).as<std::string>(); }
std::vector<double> Config::get_floats(const std::string& key) const {
  return node(key).as<std::vector<double>>();
}
std::optional<int64_t> Config::get_int_or_auto(const std::string& key) const {
  const auto& n = node(key);
  if (n.Scalar() == "auto") return std::nullopt;
  return n.as<int64_t>();
}

std::string Config::dump() const {
  // The schema keeps each section's keys together, so one pass with a stack of open
  // sections emits the nested mapping.
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e << YAML::BeginMap;
  std::vector<std::string> open;
  for (const auto& [key, value] : values_) {
    std::vector<std::string> parts;
    std::stringstream ss(key);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    size_t common = 0;
    while (common < open.size() && common + 1 < parts.size() && open[common] == parts[common]) ++common;
    for (; open.size() > common; open.pop_back()) e << YAML::EndMap;
    for (size_t i = common; i + 1 < parts.size(); ++i) {
      e << YAML::Key << parts[i] << YAML::Value << YAML::BeginMap;
      open.push_back(parts[i]);
    }
    e << YAML::Key << parts.back() << YAML::Value << value;
  }
  for (; !open.empty(); open.pop_back()) e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

namespace {
std::string flow_text(const YAML::Node& n) {
  YAML::Emitter e;
  e.SetSeqFormat(YAML::Flow);
  e << n;
  return std::string(e.c_str());
}
}  // namespace

std::vector<std::string> Config::differing_keys(const Config& other, const std::vector<std::string>& ignore) const {
  auto text = flow_text;
  // Numbers compare by value (5e-4 equals 0.0005), everything else by its text.
  std::function<bool(const YAML::Node&, const YAML::Node&)> same = [&](const YAML::Node& a, const YAML::Node& b) {
    if (a.IsSequence() && b.IsSequence()) {
      if (a.size() != b.size()) return false;
      for (size_t j = 0; j < a.size(); ++j)
        if (!same(a[j], b[j])) return false;
      return true;
    }
    double x, y;
    if (a.IsScalar() && b.IsScalar() && YAML::convert<double>::decode(a, x) && YAML::convert<double>::decode(b, y))
      return x == y;
    return text(a) == text(b);
  };
  std::vector<std::string> out;
  for (size_t i = 0; i < values_.size(); ++i) {
    const std::string& key = values_[i].first;
    if (std::find(ignore.begin(), ignore.end(), key) != ignore.end()) continue;
    if (!same(values_[i].second, other.values_[i].second)) out.push_back(key);
  }
  return out;
}

std::string Config::text(const std::string& key) const { return flow_text(node(key)); }

std::vector<std::string> Config::differences(const Config& other, const std::vector<std::string>& ignore) const {
  std::vector<std::string> out;
  for (const std::string& key : differing_keys(other, ignore))
    out.push_back(key + ": " + flow_text(node(key)) + " -> " + flow_text(other.node(key)));
  return out;
}

void Config::save(const std::string& path) const { write_file_atomic(path, std::string(kSavedConfigMark) + "\n" + dump()); }

bool written_by_ventral(const std::string& path) {
  std::ifstream in(path);
  std::string first;
  return std::getline(in, first) && first == kSavedConfigMark;
}

void check_keys_take_effect(const Config& cfg) {
  static const Config defaults;
  const std::string schedule = cfg.get_string("train.schedule"), optimizer = cfg.get_string("train.optimizer");
  const bool sgd = optimizer == "sgd";
  const std::string perturb = cfg.get_string("data.augment.perturb"), dataset = cfg.get_string("data.dataset");
  const bool files = dataset.rfind("folder:", 0) == 0 || dataset.rfind("list:", 0) == 0;
  struct Rule {
    const char* key;
    bool idle;
    std::string because;
  };
  const std::vector<Rule> rules = {
      {"train.milestones", schedule != "step", "train.schedule is " + schedule + " (milestones are the step schedule's)"},
      {"train.gamma", schedule != "step", "train.schedule is " + schedule + " (gamma is the step schedule's factor)"},
      {"train.min_lr", schedule != "cosine", "train.schedule is " + schedule + " (min_lr is where cosine ends)"},
      {"train.warmup_epochs", schedule == "onecycle", "the onecycle schedule has its own warm-up"},
      {"train.momentum", !sgd, "train.optimizer is " + optimizer + " (momentum is SGD's; Adam's are train.betas)"},
      {"train.nesterov", !sgd, "train.optimizer is " + optimizer + " (Nesterov momentum is SGD's)"},
      {"train.betas", sgd, "train.optimizer is sgd (betas are Adam's and AdamW's)"},
      {"data.mean", !cfg.get_bool("data.normalize"), "data.normalize is false"},
      {"data.std", !cfg.get_bool("data.normalize"), "data.normalize is false"},
      {"data.augment.random_resized_crop_scale", !cfg.get_bool("data.augment.random_resized_crop"),
       "data.augment.random_resized_crop is false"},
      {"model.weights_strict", cfg.get_string("model.weights").empty(), "model.weights is not set"},
      {"train.decay_bn_and_bias", cfg.get_float("train.weight_decay") == 0, "train.weight_decay is 0"},
      {"data.augment.perturb_fraction", perturb.empty(), "data.augment.perturb is not set"},
      {"data.stream", !files, "data.dataset " + printable(dataset) + " is not an image folder or list"},
      {"data.skip_bad_images", !files, "data.dataset " + printable(dataset) + " is not an image folder or list"},
  };
  for (const Rule& r : rules)
    if (r.idle && cfg.text(r.key) != defaults.text(r.key))
      throw InputError(cfg.origin(r.key) + ": key '" + r.key + "' is set to " + printable(cfg.text(r.key)) +
                       " but has no effect: " + r.because + "; remove it or set what it needs");
  // Values that are in range one by one but never reached together.
  const int64_t epochs = cfg.get_int("train.epochs");
  if (schedule == "step") {
    const std::vector<double> milestones = cfg.get_floats("train.milestones");
    for (size_t i = 0; i < milestones.size(); ++i)
      if (std::count(milestones.begin(), milestones.begin() + static_cast<std::ptrdiff_t>(i), milestones[i]))
        throw InputError(cfg.origin("train.milestones") + ": key 'train.milestones' lists " +
                         format_number("%g", milestones[i]) + " twice (gamma would apply twice there); list each epoch once");
    if (!milestones.empty() && *std::min_element(milestones.begin(), milestones.end()) <= 0)
      throw InputError(cfg.origin("train.milestones") + ": key 'train.milestones' holds an epoch at or below 0, so "
                       "train.lr would never be used; give epochs above 0");
    if (!milestones.empty() && cfg.get_float("train.gamma") == 0)
      throw InputError(cfg.origin("train.gamma") + ": key 'train.gamma' is 0, so training would change no weight "
                       "after the first milestone; give a factor above 0 (the default is 0.1)");
    for (double m : milestones)
      if (m >= static_cast<double>(epochs))
        throw InputError(cfg.origin("train.milestones") + ": key 'train.milestones' holds " + format_number("%g", m) +
                         ", which a run of train.epochs " + std::to_string(epochs) +
                         " never reaches; give milestones below " + std::to_string(epochs));
  }
  if (const double warmup = cfg.get_float("train.warmup_epochs"); schedule != "onecycle" && warmup >= static_cast<double>(epochs))
    throw InputError(cfg.origin("train.warmup_epochs") + ": key 'train.warmup_epochs' is " + format_number("%g", warmup) +
                     ", so the warm-up would last the whole run of train.epochs " + std::to_string(epochs) +
                     " and never reach train.lr; give fewer than " + std::to_string(epochs));
  // Nesterov momentum with no momentum was plain SGD without a word (PyTorch refuses the pair).
  if (sgd && cfg.get_float("train.momentum") == 0 && cfg.get_bool("train.nesterov"))
    throw InputError(cfg.origin("train.momentum") + ": key 'train.momentum' is 0 but train.nesterov is true, and Nesterov "
                     "momentum needs momentum; for plain SGD set train.nesterov=false as well");
  if (cfg.get_float("train.lr") == 0)
    throw InputError(cfg.origin("train.lr") + ": key 'train.lr' is 0, so training would change no weight; give a learning rate "
                     "above 0 (the default is 0.1)");
  if (!perturb.empty() && cfg.get_float("data.augment.perturb_fraction") == 0)
    throw InputError(cfg.origin("data.augment.perturb_fraction") + ": key 'data.augment.perturb_fraction' is 0, so data.augment.perturb " +
                     printable(perturb) + " perturbs no image; remove data.augment.perturb or give a fraction in (0, 1]");
}

}  // namespace ventral
