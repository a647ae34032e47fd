// `ventral models`: every registered model with its size and cost.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "models/registry.hpp"

namespace ventral::cli {

void add_models_command(CLI::App& app) {
  struct Args {
    int64_t channels = 1, classes = 10, size = 28;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("models", "List every registered model: family, parameters, MACs per step, steps");
  cmd->add_option("--in-channels", args->channels, "input channels")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--classes", args->classes, "number of classes")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--image-size", args->size, "input side in pixels")->check(CLI::Range(8, 1024))->capture_default_str();
  cmd->add_flag("--json", args->json,
                "print a JSON array of {name, family, params, macs_per_step, recurrent, default_steps}");
  cmd->callback([args] {
    torch::manual_seed(0);
    ModelOptions o;
    o.in_channels = args->channels;
    o.num_classes = args->classes;
    o.image_size = args->size;
    nlohmann::json all = nlohmann::json::array();
    if (!args->json)
      std::printf("%-18s %-14s %12s %14s %9s %6s  %s\n", "name", "family", "params", "MACs/step", "recurrent",
                  "steps", "description");
    for (const auto& e : model_registry().entries()) {
      ModelPtr m = e.make(o);
      int64_t params = count_parameters(*m);
      int64_t macs = macs_per_step(*m, args->channels, args->size);
      if (args->json) {
        all.push_back({{"name", e.name}, {"family", e.family}, {"params", params}, {"macs_per_step", macs},
                       {"recurrent", m->recurrent()}, {"default_steps", m->default_steps()},
                       {"description", e.description}, {"options", e.options}});
      } else {
        std::printf("%-18s %-14s %12lld %14lld %9s %6lld  %s\n", e.name.c_str(), e.family.c_str(),
                    (long long)params, (long long)macs, m->recurrent() ? "yes" : "no",
                    (long long)m->default_steps(), e.description.c_str());
      }
    }
    if (args->json) std::cout << all.dump(2) << "\n";
  });
}

}  // namespace ventral::cli
