// `ventral perturb`: see what each perturbation and severity does, or write a perturbed set.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli/commands.hpp"
#include "core/io.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "core/config.hpp"
#include "datasets/experiment.hpp"
#include "datasets/image.hpp"
#include "datasets/perturb.hpp"
#include "eval/plot.hpp"

namespace ventral::cli {

void add_perturb_command(CLI::App& app) {
  struct Args {
    std::string data = "fashion-mnist", split = "test", family = "all", out, write;
    std::vector<std::string> settings;
    int64_t n = 8;
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("perturb", "Contact sheet of every perturbation and severity; write perturbed sets");
  cmd->add_option("--data", a->data, "dataset SPEC")->capture_default_str();
  cmd->add_option("--split", a->split, "train or test")->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  cmd->add_option("--family", a->family, "a perturbation family, a list (block,jpeg:2-4) or all")->capture_default_str();
  cmd->add_option("--n", a->n, "sample images per row")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--out", a->out, "contact sheet PNG (rows: family x severity 0-5, columns: images)");
  cmd->add_option("--write", a->write,
                  "write the perturbed split as image folders DIR/<family>/<severity>/<class>/<index>.png");
  cmd->add_option("--set", a->settings,
                  "KEY=VALUE for the data.* preprocessing keys, e.g. data.preset=imagenet or data.image_size=64 "
                  "(repeatable)");
  cmd->add_option("--seed", a->seed, "perturbation seed")
      ->check(seed_value(UINT64_MAX))
      ->capture_default_str();
  cmd->callback([a, cmd] {
    refuse_repeated_overrides(a->settings);
    if (a->out.empty() && a->write.empty()) throw InputError("perturb: give --out sheet.png and/or --write DIR");
    if (a->out.empty() && cmd->count("--n") > 0)
      throw InputError("--n: sets the contact sheet's columns, and there is no sheet without --out; give --out sheet.png "
                       "or leave --n out");
    if (!a->out.empty() && std::filesystem::path(a->out).extension() != ".png")
      throw InputError("--out " + a->out + ": the contact sheet is a PNG; name it *.png");
    if (!a->out.empty()) {  // replaces only a PNG ventral wrote, never someone's picture
      std::error_code ec;
      if (std::filesystem::exists(std::filesystem::symlink_status(a->out, ec)) && !png_written_by_ventral(a->out))
        throw InputError("--out " + printable(a->out) + ": exists and is not a PNG ventral wrote; give a new file name");
    }
    if (!a->write.empty()) {  // only into a new folder or one an earlier --write filled
      namespace fs = std::filesystem;
      std::error_code ec;
      const auto& families = perturbation_families();
      if (fs::exists(fs::symlink_status(a->write, ec)) && !fs::is_directory(a->write, ec))
        throw InputError("--write " + printable(a->write) + ": exists and is not a folder");
      for (fs::directory_iterator it(a->write, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name[0] == '.') continue;
        if (!it->is_directory(ec) || std::find(families.begin(), families.end(), name) == families.end())
          throw InputError("--write " + printable(a->write) + ": holds '" + printable(name) +
                           "', which no earlier perturb --write made; write the perturbed sets into a new folder "
                           "(they would be mixed into what is there)");
      }
    }
    Config cfg;
    for (const auto& s : a->settings) {
      const std::string key = s.substr(0, s.find('='));
      if (key != "data.preset" && key != "data.channels" && key != "data.image_size" && key != "data.resize" &&
          key != "data.center_crop")
        throw InputError("--set " + s + ": perturb takes the image keys data.preset, data.channels, data.image_size, "
                         "data.resize and data.center_crop (the dataset is --data)");
      cfg.set(s, "--set");
    }
    Dataset data = load_dataset(a->data, parse_split(a->split), preprocessing(cfg).load);
    std::vector<PerturbationSpec> specs;
    try {
      specs = parse_perturbations(a->family);
    } catch (const InputError& e) {
      throw InputError(std::string("--family: ") + e.what());
    }
    // Written sets are what `eval --perturb` would score, and a sheet's rows are those sets: each
    // family and severity once, and severity 0 (the clean image, which heads every family's rows)
    // is no set of its own.
    try {
      perturbation_sets(specs);
    } catch (const InputError& e) {
      throw InputError("--family " + a->family + ": " + e.what());
    }
    if (!a->out.empty()) {
      if (static_cast<size_t>(a->n) > data.size())
        std::fprintf(stderr, "note: --n %lld: %s has %zu images, so the sheet shows %zu columns\n", (long long)a->n,
                     a->data.c_str(), data.size(), data.size());
      cv::Mat sheet = render_contact_sheet(data, specs, static_cast<int>(a->n), a->seed);
      write_png(a->out, sheet);
      std::printf("wrote %s (%dx%d px)\n", a->out.c_str(), sheet.cols, sheet.rows);
    }
    if (!a->write.empty()) {
      namespace fs = std::filesystem;
      std::vector<uint8_t> buf(data.image_bytes());
      // Folder names cannot hold '/' ("T-shirt/top"); eval matches the names back the same way.
      std::vector<std::string> folders;
      for (const auto& name : data.classes) folders.push_back(folder_name(name));
      size_t files = 0;
      for (const auto& s : specs)
        for (int sev : s.severities) {
          // Each set is written whole into a hidden staging folder and then replaces the set of an
          // earlier --write: never a mix of two datasets' images, never a cut-off set that looks
          // complete after an interruption (the staging folder is hidden from folder: datasets).
          const fs::path base = fs::path(a->write) / s.family / std::to_string(sev);
          const fs::path staging = fs::path(a->write) / s.family / ("." + std::to_string(sev) + ".partial");
          std::error_code ec;
          fs::remove_all(staging, ec);
          for (const auto& name : folders) make_directories((staging / name).string());
          for (size_t i = 0; i < data.size(); ++i) {
            perturb_image(data, static_cast<int64_t>(i), s.family, sev, a->seed, buf.data());
            char file[32];
            std::snprintf(file, sizeof file, "%06zu.png", i);
            write_png((staging / folders[data.labels[i]] / file).string(), to_bgr(data, buf.data()));
            ++files;
          }
          fs::remove_all(base, ec);
          fs::rename(staging, base, ec);
          if (ec) throw InputError("--write: cannot move " + printable(staging.string()) + " to " + printable(base.string()) + ": " + ec.message());
        }
      std::printf("wrote %zu images under %s (each DIR/<family>/<severity> is a folder: dataset)\n", files,
                  a->write.c_str());
    }
  });
}

}  // namespace ventral::cli
