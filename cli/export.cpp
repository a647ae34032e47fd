// `ventral export RUN_DIR [--checkpoint best|last|PATH] --out model.pt`: a run's weights as a
// PyTorch state_dict (torch.load returns {name: tensor}) plus model.json describing the model.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "inference/checkpoint.hpp"
#include "inference/model_json.hpp"
#include "inference/run.hpp"
#include "inference/run_dir.hpp"

namespace ventral::cli {

namespace {

// The export replaces only what an earlier export wrote: never a file of a run directory (any
// run's: its checkpoints, config, classes, logs, model.json), as --out or as the .json written
// beside it, nor another file that happens to have the name.
void refuse_foreign_files(const std::string& out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path pt = fs::weakly_canonical(fs::absolute(out, ec), ec), json = fs::path(pt).replace_extension(".json");
  for (const fs::path& folder : {pt.parent_path(), pt.parent_path().parent_path()})
    if (RunDir(folder.string()).is_run())
      throw InputError("--out " + printable(out) + ": inside the run directory " + printable(folder.string()) +
                       ", whose files the export would replace; write the export elsewhere");
  // q.pt and q share q.json: an earlier export's description goes only with its own weights file.
  std::string described;
  const bool earlier_export = json_file_matches(json.string(), [&](const nlohmann::json& j) {
    if (!j.is_object() || j.value("format", std::string()).rfind("ventral model description", 0) != 0) return false;
    if (j.contains("weights") && j.at("weights").is_string()) described = j.at("weights").get<std::string>();
    return true;
  });
  if (earlier_export && !described.empty() && described != pt.filename().string())
    throw InputError("--out " + printable(out) + ": would replace " + printable(json.string()) +
                     ", which describes the export " + printable(described) + "; choose another name");
  for (const fs::path& target : {pt, json}) {
    try {
      require_replaceable(target.string());
    } catch (const InputError& e) {
      throw InputError("--out " + printable(out) + ": " + e.what());
    }
  }
  for (const fs::path& target : {pt, json})
    if (fs::exists(fs::symlink_status(target, ec)) && !earlier_export)
      throw InputError("--out " + printable(out) + ": would replace " + printable(target.string()) +
                       ", which ventral export did not write; choose another name or remove it first");
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
    refuse_foreign_files(a->out);
    LoadedRun run = load_run(a->run_dir, dir.checkpoint(a->checkpoint), "fp32");
    nlohmann::json meta = model_json({run.cfg, run.model->default_steps(), run.channels, run.image_size, run.mean,
                                      run.std, run.classes});
    meta["source"] = {{"run_dir", a->run_dir}, {"checkpoint", dir.checkpoint(a->checkpoint)}};
    meta["weights"] = fs::path(a->out).filename().string();  // the state_dict this file describes
    const std::string json_path = export_model(a->out, *run.model, meta);
    std::printf("wrote %s (%zu tensors) and %s\n", a->out.c_str(), model_state(*run.model).size(), json_path.c_str());
  });
}

}  // namespace ventral::cli
