// `ventral bench --model NAME`: training and inference throughput on random data.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "cli/commands.hpp"
#include "core/threads.hpp"
#include "models/registry.hpp"

namespace ventral::cli {

void add_bench_command(CLI::App& app) {
  struct Args {
    std::string model = "resnet20";
    int64_t batch = 128, iters = 20, warmup = 3, steps = 0, threads = 0, channels = 1, size = 28, classes = 10;
    std::string memory_format = "auto", profile;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "Time training steps (forward + backward + SGD) and inference of a model");
  cmd->add_option("--model", a->model, "registered model name")->capture_default_str();
  cmd->add_option("--batch", a->batch, "images per batch")->check(CLI::Range(1, 65536))->capture_default_str();
  cmd->add_option("--iters", a->iters, "timed iterations (after warm-up)")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "untimed warm-up iterations")->check(CLI::Range(0, 1000))->capture_default_str();
  cmd->add_option("--steps", a->steps, "recurrent steps (0 = the model's default)")->check(CLI::Range(0, 1000));
  cmd->add_option("--threads", a->threads, "compute threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--in-channels", a->channels, "input channels")->check(CLI::Range(1, 64))->capture_default_str();
  cmd->add_option("--image-size", a->size, "input side")->check(CLI::Range(8, 1024))->capture_default_str();
  cmd->add_option("--classes", a->classes, "classes")->check(CLI::Range(1, 100000))->capture_default_str();
  cmd->add_option("--memory-format", a->memory_format, "auto | channels_last | contiguous")
      ->check(CLI::IsMember({"auto", "channels_last", "contiguous"}))
      ->capture_default_str();
  cmd->add_option("--profile", a->profile, "write a chrome://tracing profile of the timed inference iterations to FILE");
  cmd->add_flag("--json", a->json,
                "print {model, params, batch, threads, train_images_per_s, eval_images_per_s}");
  cmd->callback([a] {
    int64_t threads = configure_threads(a->threads ? std::optional<int64_t>(a->threads) : std::nullopt);
    torch::manual_seed(0);
    ModelOptions o;
    o.in_channels = a->channels;
    o.num_classes = a->classes;
    o.image_size = a->size;
    o.steps = a->steps;
    ModelPtr m = create_model(a->model, o);
    apply_memory_format(*m, a->memory_format);
    int64_t steps = m->default_steps();
    torch::Tensor x = m->inputs(torch::randn({a->batch, a->channels, a->size, a->size}));
    torch::Tensor y = torch::randint(a->classes, {a->batch}, torch::kInt64);
    torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
    auto time = [&](auto&& body) {
      for (int64_t i = 0; i < a->warmup; ++i) body();
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < a->iters; ++i) body();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return a->batch * a->iters / s;
    };
    m->train();
    double train = time([&] {
      opt.zero_grad();
      auto logits = m->forward(x, steps);
      torch::Tensor loss = torch::cross_entropy_loss(logits[0], y);
      for (size_t t = 1; t < logits.size(); ++t) loss = loss + torch::cross_entropy_loss(logits[t], y);
      loss.backward();
      opt.step();
    });
    m->eval();
    double eval = time([&] {
      c10::InferenceMode guard;
      m->forward(x, steps);
    });
    if (!a->profile.empty()) {
      torch::autograd::profiler::RecordProfile trace(a->profile);
      c10::InferenceMode guard;
      for (int64_t i = 0; i < a->iters; ++i) m->forward(x, steps);
    }
    if (a->json) {
      std::cout << nlohmann::json{{"model", a->model}, {"params", count_parameters(*m)}, {"batch", a->batch},
                                  {"threads", threads}, {"steps", steps},
                                  {"memory_format", m->memory_format() == c10::MemoryFormat::ChannelsLast
                                                        ? "channels_last" : "contiguous"}, {"train_images_per_s", train},
                                  {"eval_images_per_s", eval}}
                       .dump()
                << "\n";
    } else {
      std::printf("%s: %lld parameters, batch %lld, %lld step(s), %lld threads: train %.1f images/s, eval %.1f images/s\n",
                  a->model.c_str(), (long long)count_parameters(*m), (long long)a->batch, (long long)steps,
                  (long long)threads, train, eval);
    }
  });
}

}  // namespace ventral::cli
