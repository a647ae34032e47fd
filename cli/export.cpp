// `ventral export RUN_DIR [--checkpoint best|last|PATH] --out model.pt`: a run's weights as a
// PyTorch state_dict (torch.load returns {name: tensor}) plus model.json describing the model.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "inference/checkpoint.hpp"
#include "inference/run.hpp"
#include "inference/run_dir.hpp"

namespace ventral::cli {

void add_export_command(CLI::App& app) {
  struct Args {
    std::string run_dir, checkpoint = "last", out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", "Write a run's weights as a PyTorch state_dict (torch.load) plus model.json");
  cmd->add_option("run_dir", a->run_dir, "run directory")->required();
  cmd->add_option("--checkpoint", a->checkpoint, "best, last (default) or a checkpoint file");
  cmd->add_option("--out", a->out, "the state_dict file to write, e.g. model.pt (its metadata goes beside it as model.json)")->required();
  cmd->footer(
      "In Python: state = torch.load('model.pt') is a dict {name: tensor} with ventral's parameter names;\n"
      "model.json holds the model name and options, read-out steps, input shape, normalisation and class names.");
  cmd->callback([a] {
    namespace fs = std::filesystem;
    if (fs::path(a->out).extension() == ".json")
      throw InputError("--out " + a->out + ": the state_dict needs another name than .json (model.json-style metadata is "
                       "written beside it, named after it)");
    const RunDir dir(a->run_dir);
    LoadedRun run = load_run(a->run_dir, dir.checkpoint(a->checkpoint), "fp32");
    save_state_dict(a->out, *run.model);
    const Config& c = run.cfg;
    const nlohmann::json options = {{"width", c.get_int("model.width")},
                                    {"steps", c.get_int("model.steps")},
                                    {"unroll", c.get_string("model.unroll")},
                                    {"input_every_step", c.get_bool("model.input_every_step")},
                                    {"cumulative_readout", c.get_bool("model.cumulative_readout")},
                                    {"shortcut", c.get_string("model.shortcut")},
                                    {"stem", c.get_string("model.stem")}};
    nlohmann::json meta = {{"format", "PyTorch state_dict (torch.save zip format); torch.load returns {name: tensor}"},
                           {"model", run.cfg.get_string("model.name")},
                           {"options", options},
                           {"steps", run.model->default_steps()},
                           {"input", {{"channels", run.channels}, {"image_size", run.image_size}, {"layout", "NCHW"},
                                      {"channel_order", run.channels == 3 ? "RGB" : "gray"},
                                      {"scale", "pixel / 255, then (x - mean) / std per channel"}}},
                           {"normalisation", {{"mean", run.mean}, {"std", run.std}}},
                           {"classes", run.classes},
                           {"source", {{"run_dir", a->run_dir}, {"checkpoint", dir.checkpoint(a->checkpoint)}}}};
    const std::string json_path = fs::path(a->out).replace_extension(".json").string();
    write_file_atomic(json_path, meta.dump(2) + "\n");
    std::printf("wrote %s (%zu tensors) and %s\n", a->out.c_str(), model_state(*run.model).size(), json_path.c_str());
  });
}

}  // namespace ventral::cli
