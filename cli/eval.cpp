// `ventral eval RUN_DIR ...`: the robustness and recurrence sweep of a trained run.
#include <cstdio>
#include <filesystem>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "eval/sweep.hpp"

namespace ventral::cli {

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a trained run at every step, on clean and perturbed images");
  cmd->add_option("run_dir", o->run_dir, "run directory written by `ventral train` (or --weights)");
  cmd->add_option("--weights", o->weights,
                  "evaluate a state_dict file (Python's torch.save, `ventral export`) instead of a run; needs --data, "
                  "and --model unless `ventral export` wrote FILE.json beside it (then model, options, input size, "
                  "normalisation and class names are read from there; --model, --set and --classes may only repeat it)");
  cmd->add_option("--model", o->model, "with --weights: the registered model name (`ventral models`)");
  cmd->add_option("--classes", o->classes,
                  "with --weights: the model's class names, one per line in output order (e.g. ImageNet wnids); "
                  "without it, or for --data classes it does not name, every prediction is written but no accuracy");
  cmd->add_option("--set", o->settings,
                  "with --weights: KEY=VALUE for model.* and data.* keys, e.g. data.preset=imagenet (repeatable)");
  cmd->add_option("--checkpoint", o->checkpoint, "checkpoint to evaluate (default RUN_DIR/checkpoints/last.pt)");
  cmd->add_option("--data", o->data, "dataset SPEC (default: the run's), e.g. folder:DIR of 28x28 PNGs");
  cmd->add_option("--split", o->split, "train or test")->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  cmd->add_option("--steps", o->steps, "steps to read out, e.g. 1:8 or 1,2,4,8 (default 1..trained steps)");
  cmd->add_option("--perturb", o->perturb, "perturbations, e.g. block:1-5,gaussian_noise or all");
  cmd->add_option("--reference", o->reference, "feed-forward baseline run for CE, McNemar and challenge images");
  cmd->add_option("--out", o->out, "output folder (default RUN_DIR/eval)");
  cmd->add_option("--exit-threshold", o->exit_thresholds, "confidence thresholds for the early-exit table")
      ->delimiter(',');
  cmd->add_option("--features", o->features, "areas to export, e.g. V1,V2,V4,IT")->delimiter(',');
  cmd->add_option("--features-out", o->features_out, "folder for the .npy features (default OUT/features)");
  cmd->add_option("--features-n", o->features_n,
                  "images to export features for: the first N (default 1000, or all if fewer; more than the "
                  "dataset holds is refused)")
      ->check(CLI::Range(1, 10000000));
  cmd->add_flag("--features-full", o->features_full, "export full maps instead of global-average-pooled vectors");
  cmd->add_option("--limit", o->limit, "evaluate the first N images only (0 = all)")->check(CLI::Range(0, 100000000));
  cmd->add_option("--class-map", o->class_map,
                  "FILE of 'folder name<TAB>model class name' lines, for --data folders whose class names differ "
                  "from the model's (names are otherwise matched ignoring case, spaces and punctuation)");
  cmd->add_option("--precision", o->precision, "fp32 | bf16 | auto (default: the precision the run trained in)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}));
  cmd->add_option("--present", o->present,
                  "backward masking: show the image at steps 1..K only, for each K (e.g. 1:3); models that take "
                  "the image at every step");
  cmd->add_option("--mask", o->mask, "what replaces the image after --present: blank (zeros after normalisation) or noise");
  cmd->add_option("--seed", o->seed, "perturbation seed (same for every model compared)")
      ->check(seed_value(UINT64_MAX))
      ->capture_default_str();
  cmd->callback([o, cmd] {
    for (const char* flag : {"--out", "--features-out", "--weights", "--classes", "--class-map", "--data"})
      if (cmd->count(flag) && cmd->get_option(flag)->as<std::string>().empty())
        throw InputError(std::string(flag) + ": an empty value; give a path");
    for (const auto& r : cmd->get_option("--exit-threshold")->results())
      if (r.empty()) throw InputError("--exit-threshold: an empty value; give thresholds such as 0.5,0.9");
    for (const char* flag : {"--features-n", "--features-out", "--features-full"})
      if (cmd->count(flag) && o->features.empty())
        throw InputError(std::string(flag) + ": only with --features AREAS (e.g. --features V1,IT)");
    refuse_repeated_overrides(o->settings);
    // Options that would change nothing are refused rather than recorded as if they had.
    if (cmd->count("--seed") && o->perturb.empty() && o->mask != "noise")
      throw InputError("--seed: only with --perturb or --mask noise (nothing else in an evaluation is random)");
    if (cmd->count("--class-map") && o->data.empty())
      throw InputError("--class-map: only with --data SPEC (the run's own dataset has the model's class names)");
    for (size_t i = 0; i < o->exit_thresholds.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (o->exit_thresholds[i] == o->exit_thresholds[j])
          throw InputError("--exit-threshold: " + format_number("%g", o->exit_thresholds[i]) +
                           " is given twice; give each threshold once");
    const std::string out = run_eval(*o);
    std::vector<std::string> written;
    // Every file this evaluation wrote (run_eval removed those of an earlier one it did not).
    for (const char* f : {"results.csv", "summary.json", "per_image.csv", "early_exit.csv", "masking.png",
                          "accuracy_vs_steps.png", "accuracy_vs_severity.png"})
      if (std::filesystem::exists(std::filesystem::path(out) / f)) written.push_back(f);
    std::printf("wrote %s/{%s}\n", out.c_str(), join(written, ",").c_str());
    if (!o->features.empty())
      std::printf("wrote features of %s to %s/\n", join(o->features, ",").c_str(),
                  (o->features_out.empty() ? out + "/features" : o->features_out).c_str());
  });
}

}  // namespace ventral::cli
