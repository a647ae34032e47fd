#include "inference/run.hpp"

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/threads.hpp"
#include "datasets/experiment.hpp"
#include "inference/checkpoint.hpp"
#include "inference/infer.hpp"
#include "inference/run_dir.hpp"
#include "models/registry.hpp"

namespace ventral {

LoaderOptions LoadedRun::loader_options() const { return evaluation_loader_options(cfg, mean, std); }

LoadedRun load_run(const std::string& run_dir, const std::string& checkpoint, const std::string& precision) {
  RunDir dir(run_dir);
  if (!dir.holds_config()) throw InputError(run_dir + ": not a run directory (no config.yaml)");
  LoadedRun r;
  r.cfg = Config::load(dir.config());
  r.classes = dir.read_classes();
  r.mean = r.cfg.get_floats("data.mean");
  r.std = r.cfg.get_floats("data.std");
  // The input shape the model was built for, as recorded by the trainer; runs from before
  // input.json learn it from the run's dataset as converted by its config.
  r.channels = r.cfg.get_int("data.channels");
  r.image_size = r.cfg.get_int("data.image_size");
  if (auto shape = dir.read_input()) {
    r.channels = shape->channels;
    r.image_size = shape->image_size;
  } else if (r.channels == 0 || r.image_size == 0) {
    Dataset probe = load_dataset(r.cfg.get_string("data.dataset"), Split::Test, preprocessing(r.cfg).load);
    r.channels = probe.channels;
    r.image_size = probe.height;
  }
  if (r.mean.empty()) r.mean.assign(r.channels, 0.0), r.std.assign(r.channels, 1.0);
  torch::Device device = resolve_device(r.cfg.get_string("device"));
  r.model = create_model(r.cfg.get_string("model.name"),
                         model_options(r.cfg, r.channels, static_cast<int64_t>(r.classes.size()), r.image_size));
  load_checkpoint(dir.checkpoint(checkpoint), *r.model, nullptr);
  r.model->to(device);
  configure_threads(r.cfg.get_int_or_auto("threads"));  // as trained; before the `auto` probe times anything
  r.precision = choose_precision(*r.model, precision.empty() ? r.cfg.get_string("precision") : precision,
                                 r.cfg.get_string("memory_format"), r.channels, r.image_size);
  r.model->eval();
  return r;
}

}  // namespace ventral
