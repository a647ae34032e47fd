// `ventral export RUN_DIR [--checkpoint best|last|PATH] --out model.pt`: a run's weights as a
// PyTorch state_dict (torch.load returns {name: tensor}) plus model.json describing the model.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "inference/checkpoint.hpp"
#include "inference/model_json.hpp"
#include "inference/run.hpp"
#include "inference/run_dir.hpp"

namespace ventral::cli {

namespace {

// The export must not replace what it reads: a file of the run directory (its checkpoints,
// config, classes, logs), as --out or as the .json written beside it.
void refuse_run_files(const RunDir& dir, const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path checkpoints = fs::weakly_canonical(dir.checkpoints(), ec);
  for (const fs::path& target : {fs::path(out), fs::path(out).replace_extension(".json")}) {
    const fs::path t = fs::weakly_canonical(target, ec);
    const auto files = dir.files();
    const bool run_file = std::any_of(files.begin(), files.end(), [&](const std::string& f) {
      return fs::weakly_canonical(f, ec) == t;
    });
    if (t.parent_path() == checkpoints || run_file)
      throw InputError("--out " + out + ": would replace " + target.string() + ", a file of the run being exported; "
                       "write the export elsewhere");
  }
}

}  // namespace

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
    if (a->out.empty()) throw InputError("--out: give the state_dict file to write, e.g. --out model.pt");
    const RunDir dir(a->run_dir);
    refuse_run_files(dir, a->out);
    LoadedRun run = load_run(a->run_dir, dir.checkpoint(a->checkpoint), "fp32");
    nlohmann::json meta = model_json({run.cfg, run.model->default_steps(), run.channels, run.image_size, run.mean,
                                      run.std, run.classes});
    meta["source"] = {{"run_dir", a->run_dir}, {"checkpoint", dir.checkpoint(a->checkpoint)}};
    const std::string json_path = export_model(a->out, *run.model, meta);
    std::printf("wrote %s (%zu tensors) and %s\n", a->out.c_str(), model_state(*run.model).size(), json_path.c_str());
  });
}

}  // namespace ventral::cli
