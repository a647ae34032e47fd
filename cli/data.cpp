// `ventral data SPEC`: what a dataset holds, before anyone trains on it.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/text.hpp"
#include "datasets/dataset.hpp"
#include "datasets/experiment.hpp"

namespace ventral::cli {

void add_data_command(CLI::App& app) {
  struct Args {
    std::string spec = "fashion-mnist", split = "train", stream = "auto";
    int64_t channels = 0, size = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("data", "Summarise a dataset: images, shape, classes, pixel statistics");
  cmd->add_option("spec", args->spec,
                  "fashion-mnist (default, the Debian package), fashion-mnist:DIR, mnist:DIR, "
                  "cifar10:DIR, folder:DIR (ROOT/<class>/<image>; names starting with '.' skipped, with a note), list:FILE "
                  "(CSV path,label), synthetic[:N]")
      ->capture_default_str();
  cmd->add_option("--split", args->split, "train or test")
      ->check(CLI::IsMember({"train", "test"}))
      ->capture_default_str();
  cmd->add_option("--channels", args->channels, "convert to 1 or 3 channels (0 = as stored)")
      ->check(CLI::IsMember({0, 1, 3}));
  cmd->add_option("--image-size", args->size, "resize to S×S (0 = as stored)")->check(CLI::Range(0, 4096));
  cmd->add_option("--stream", args->stream,
                  "folders and lists: on = index only, pixel statistics from a sample of 2000 images; auto = on when the "
                  "decoded images would exceed 1 GiB")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd->add_flag("--json", args->json, "print one JSON object instead of a table");
  cmd->callback([args, cmd] {
    if (args->size > 0 && args->size < 8)
      throw InputError("--image-size " + std::to_string(args->size) + ": the smallest image side ventral trains on is 8 "
                       "(0 keeps the dataset's own size)");
    const bool files = args->spec.rfind("folder:", 0) == 0 || args->spec.rfind("list:", 0) == 0;
    if (cmd->count("--stream") && !files)
      throw InputError("--stream: applies to folder: and list: datasets only (" + printable(args->spec) +
                       " is read whole); omit --stream");
    LoadOptions opts{args->channels, args->size};
    opts.stream = args->stream;
    Dataset d = load_dataset(args->spec, parse_split(args->split), opts);
    if (args->split == "test" && one_image_set(args->spec))
      std::fprintf(stderr, "note: %s has no separate test split: these are all its images, the training split's too\n",
                   printable(args->spec).c_str());
    ChannelStats stats = channel_stats(d);
    auto counts = d.class_counts();
    if (args->json) {
      nlohmann::json j;
      j["dataset"] = d.name;
      j["images"] = d.size();
      j["shape"] = {d.channels, d.height, d.width};
      j["classes"] = d.classes;
      j["class_counts"] = counts;
      j["storage"] = d.storage;
      j["mean"] = stats.mean;
      j["std"] = stats.std;
      j["stats_images"] = stats.sampled ? stats.sampled : d.size();
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("dataset  %s\n", d.name.c_str());
    std::printf("images   %zu\n", d.size());
    std::printf("shape    %lldx%lldx%lld (C×H×W)\n", (long long)d.channels, (long long)d.height,
                (long long)d.width);
    std::printf("storage  %s\n", d.storage.c_str());
    std::string mean, sd;
    for (size_t c = 0; c < stats.mean.size(); ++c) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%.4f", c ? " " : "", stats.mean[c]);
      mean += buf;
      std::snprintf(buf, sizeof buf, "%s%.4f", c ? " " : "", stats.std[c]);
      sd += buf;
    }
    const std::string sample = stats.sampled ? ", from a sample of " + std::to_string(stats.sampled) + " of the " +
                                                   std::to_string(d.size()) + " images, evenly spaced"
                                             : "";
    std::printf("pixels   mean %s  std %s (in [0,1]%s)\n", mean.c_str(), sd.c_str(), sample.c_str());
    std::printf("classes  %zu\n", d.classes.size());
    for (size_t c = 0; c < d.classes.size(); ++c)
      std::printf("  %2zu  %-14s %lld\n", c, d.classes[c].c_str(), (long long)counts[c]);
  });
}

}  // namespace ventral::cli
