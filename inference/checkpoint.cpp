#include "inference/checkpoint.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"

namespace ventral {

namespace {
torch::Tensor scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }
torch::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat64); }
}  // namespace

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
  archive.write("rng_state", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

TrainState load_checkpoint(const std::string& path, VisionModelImpl& model, torch::optim::Optimizer* optimizer) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path + ": no such checkpoint");
  TrainState s;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::serialize::InputArchive model_archive;
    archive.read("model", model_archive);
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
    if (optimizer) {  // resuming training continues its random stream; evaluation leaves it alone
      at::Generator generator = at::detail::getDefaultCPUGenerator();  // a handle to the global one
      generator.set_state(read("rng_state"));
    }
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw InputError(path + ": not a loadable ventral checkpoint for this model (" + what.substr(0, what.find('\n')) + ")");
  }
  return s;
}

}  // namespace ventral
