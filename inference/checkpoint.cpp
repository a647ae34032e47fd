#include "inference/checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"

namespace ventral {

namespace {
torch::Tensor scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }
torch::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat64); }

// Every tensor of a saved module, by dotted name (the layout Module::save writes: a module's
// own parameters and buffers, then one archive per child).
void saved_tensors(torch::serialize::InputArchive& archive, const std::string& prefix,
                   std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : archive.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive child;
    if (archive.try_read(key, t)) out[prefix + key] = t;
    else if (archive.try_read(key, child)) saved_tensors(child, prefix + key + ".", out);
  }
}

std::string shape(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

// "a, b, c (+N more)": the first few of a list, for a one-line message.
std::string first_few(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(items.size(), 4); ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > 4) out += " (+" + std::to_string(items.size() - 4) + " more)";
  return out;
}

// The saved weights must be exactly the model's: same names, shapes and dtypes. LibTorch's
// Module::load checks only that the model's names exist, so a config edited after training
// (another width, shortcut or step count) would otherwise load a part of the weights silently.
// A batch norm's running variance is a mean of squares: a negative one makes every activation
// after it NaN, which eval would score as a constant class.
void require_valid_statistics(const std::map<std::string, torch::Tensor>& tensors, const std::string& origin) {
  for (const auto& [name, t] : tensors)
    if (t.is_floating_point() && name.size() >= 11 && name.compare(name.size() - 11, 11, "running_var") == 0 &&
        (t < 0).any().item<bool>())
      throw InputError(origin + ": " + name + " holds negative variances, which no batch norm computes; the file is "
                       "damaged or was altered");
}

void require_checkpoint_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw InputError(path + ": no such checkpoint (a run's are best and last; otherwise give a checkpoint file's path)");
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError(path + ": is not a regular file (a folder, pipe or device), so no checkpoint");
}

void check_fits(torch::serialize::InputArchive& model_archive, VisionModelImpl& model, const std::string& path) {
  std::map<std::string, torch::Tensor> saved;
  saved_tensors(model_archive, "", saved);
  for (const auto& [name, t] : saved)  // a damaged file must not pass for a model that predicts class 0
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      throw InputError(path + ": " + name + " holds NaN or infinite values; the checkpoint is damaged");
  require_valid_statistics(saved, path);
  const std::string why = weights_mismatch(saved, model);
  if (why.empty()) return;
  throw InputError(path + ": the weights do not fit the model the config describes (is it another run's "
                   "checkpoint, or was config.yaml changed after training?): " + why);
}
}  // namespace

std::string weights_mismatch(const std::map<std::string, torch::Tensor>& saved, VisionModelImpl& model,
                             std::vector<std::string>* mismatched) {
  const auto state = model_state(model);
  const std::map<std::string, torch::Tensor> expected(state.begin(), state.end());
  std::vector<std::string> missing, unexpected, wrong;
  for (const auto& [name, t] : expected) {
    auto it = saved.find(name);
    if (it == saved.end()) {
      missing.push_back(name);
      if (mismatched) mismatched->push_back(name);
    } else if (!it->second.sizes().equals(t.sizes()) ||
               // Floating-point types convert on loading, as in PyTorch's load_state_dict (fp16 and
               // bf16 releases load into fp32 models); integer buffers must match.
               (it->second.scalar_type() != t.scalar_type() && !(it->second.is_floating_point() && t.is_floating_point()))) {
      wrong.push_back(name + " " + shape(it->second) + " " + c10::toString(it->second.scalar_type()) + " in the file, " +
                      shape(t) + " " + c10::toString(t.scalar_type()) + " in the model");
      if (mismatched) mismatched->push_back(name);
    }
  }
  for (const auto& [name, t] : saved)
    if (!expected.count(name)) unexpected.push_back(name);
  std::string why;
  if (!missing.empty()) why += "missing: " + first_few(missing);
  if (!unexpected.empty()) why += std::string(why.empty() ? "" : "; ") + "unexpected: " + first_few(unexpected);
  if (!wrong.empty()) why += std::string(why.empty() ? "" : "; ") + "wrong shape or type: " + first_few(wrong);
  return why;
}

std::vector<std::pair<std::string, torch::Tensor>> model_state(VisionModelImpl& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void save_state_dict(const std::string& path, VisionModelImpl& model) {
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, t] : model_state(model))  // plain NCHW fp32 CPU tensors, as Python expects
    dict.insert(name, t.detach().to(torch::kCPU).contiguous().clone());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::vector<std::string> load_state_dict(VisionModelImpl& model, std::map<std::string, torch::Tensor> state,
                                         const std::string& origin, bool strict, const std::string& hint) {
  // DataParallel and DistributedDataParallel save every name with a "module." prefix.
  if (std::all_of(state.begin(), state.end(), [](const auto& e) { return e.first.rfind("module.", 0) == 0; })) {
    std::map<std::string, torch::Tensor> stripped;
    for (auto& [name, t] : state) stripped[name.substr(7)] = t;
    state = std::move(stripped);
  }
  for (const auto& [name, t] : state)
    if (t.is_floating_point() && !torch::isfinite(t).all().item<bool>())
      throw InputError(origin + ": " + name + " holds NaN or infinite values");
  require_valid_statistics(state, origin);
  std::vector<std::string> skipped;
  const std::string why = weights_mismatch(state, model, &skipped);
  if (!why.empty() && skipped.size() == model_state(model).size())
    throw InputError(origin + ": none of the file's tensors fits the model (" + why + ")");
  if (strict && !why.empty())
    throw InputError(origin + ": the weights do not fit the model: " + why + (hint.empty() ? "" : " (" + hint + ")"));
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : model_state(model)) {
    if (std::find(skipped.begin(), skipped.end(), name) != skipped.end()) continue;
    t.copy_(state.at(name));  // copy_ keeps the model's layout (channels-last) and device
  }
  return skipped;
}

void save_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer,
                     const TrainState& state) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  model.save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    torch::serialize::OutputArchive opt_archive;
    optimizer->save(opt_archive);
    archive.write("optimizer", opt_archive);
  }
  archive.write("epoch", scalar(state.epoch));
  archive.write("step_in_epoch", scalar(state.step_in_epoch));
  archive.write("global_step", scalar(state.global_step));
  archive.write("best_val", scalar(state.best_val));
  archive.write("train_seconds", scalar(state.train_seconds));
  archive.write("metrics_csv", c10::IValue(state.metrics_csv));
  archive.write("epoch_so_far", torch::tensor({state.epoch_loss_sum, state.epoch_correct, state.epoch_seen,
                                               state.epoch_seconds, state.epoch_lr}, torch::kFloat64));
  archive.write("config", c10::IValue(state.config));
  archive.write("run_id", c10::IValue(state.run_id));
  archive.write("rng_state", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

namespace {
// The error for a file LibTorch's archive reader could not read as a checkpoint. A PyTorch
// pickle archive (torch.save, `ventral export`) has no TorchScript constants record.
InputError not_a_checkpoint(const std::string& path, const c10::Error& e, const std::string& what_for = "") {
  std::string what = e.what_without_backtrace();
  what = what.substr(0, what.find('\n'));
  if (what.find("constants.pkl") != std::string::npos)
    return InputError(path + ": holds weights saved for PyTorch (torch.save or `ventral export`), not a training "
                      "checkpoint of ventral: evaluate them with `ventral eval --weights " + path + "`, or start "
                      "training from them with model.weights=" + path);
  return InputError(path + ": not a loadable ventral checkpoint" + what_for + " (" + what + ")");
}

// The string a checkpoint keeps under `key` ("" when it has none).
std::string checkpoint_string(const std::string& path, const char* key) {
  require_checkpoint_file(path);
  try {
    verify_tensor_records(path, verify_zip_checksums(path));
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue value;
    if (archive.try_read(key, value) && value.isString()) return value.toStringRef();
    return "";
  } catch (const c10::Error& e) {
    throw not_a_checkpoint(path, e);
  }
}
}  // namespace

std::string checkpoint_config(const std::string& path) { return checkpoint_string(path, "config"); }
std::string checkpoint_metrics(const std::string& path) { return checkpoint_string(path, "metrics_csv"); }

TrainState load_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer) {
  require_checkpoint_file(path);
  TrainState s;
  try {
    torch::serialize::InputArchive archive;
    // Before LibTorch parses anything: its reader would load a flipped bit as a different weight,
    // its TorchScript parser crashes on damaged code records (found by fuzz_checkpoint), and it
    // would read past a record cut short and re-checksummed.
    verify_tensor_records(path, verify_zip_checksums(path));
    archive.load_from(path);
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
    check_fits(model_archive, model, path);
    model.load(model_archive);
    if (optimizer) {
      torch::serialize::InputArchive opt_archive;
      archive.read("optimizer", opt_archive);
      optimizer->load(opt_archive);
    }
    auto read = [&](const char* key) {
      torch::Tensor t;  // fresh each time: reading into a defined tensor would resize it in place
      archive.read(key, t);
      return t;
    };
    s.epoch = read("epoch").item<int64_t>();
    s.step_in_epoch = read("step_in_epoch").item<int64_t>();
    s.global_step = read("global_step").item<int64_t>();
    s.best_val = read("best_val").item<double>();
    s.train_seconds = read("train_seconds").item<double>();
    c10::IValue csv;
    archive.read("metrics_csv", csv);
    s.metrics_csv = csv.toStringRef();
    if (torch::Tensor so_far; archive.try_read("epoch_so_far", so_far) && so_far.numel() == 5) {
      const torch::Tensor v = so_far.to(torch::kFloat64).contiguous();
      const double* x = v.data_ptr<double>();
      s.epoch_loss_sum = x[0], s.epoch_correct = x[1], s.epoch_seen = x[2], s.epoch_seconds = x[3], s.epoch_lr = x[4];
    }
    if (c10::IValue config; archive.try_read("config", config) && config.isString()) s.config = config.toStringRef();
    if (c10::IValue id; archive.try_read("run_id", id) && id.isString()) s.run_id = id.toStringRef();
    if (optimizer) {  // resuming training continues its random stream; evaluation leaves it alone
      at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
      generator.set_state(read("rng_state"));
    }
  } catch (const c10::Error& e) {
    throw not_a_checkpoint(path, e, " for this model");
  }
  return s;
}

}  // namespace ventral
