// `ventral bench`: throughput of a model (training step and inference on random data of its
// input shape), of the batch loader with augmentation, and of the perturbation library.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/json.hpp"
#include "core/precision.hpp"
#include "core/threads.hpp"
#include "core/text.hpp"
#include "datasets/experiment.hpp"
#include "datasets/loader.hpp"
#include "datasets/perturb.hpp"
#include "inference/infer.hpp"
#include "models/fused.hpp"
#include "models/registry.hpp"

namespace ventral::cli {

namespace {

struct Args {
  std::string model = "resnet20", memory_format = "auto", precision = "fp32", profile, data = "fashion-mnist", perturb;
  std::string fused = "on";
  std::string fused_training = "off";
  int64_t batch = 128, iters = 20, warmup = 3, steps = 0, threads = 0, channels = 1, size = 28, classes = 10;
  int64_t loader_threads = 0, images = 2000, loader_images = 0;
  bool images_given = false;  ///< --images was given (the default is capped at the test set)
  bool loader = false, peak = false, json = false;
  std::vector<std::string> overrides;  ///< key=value for --loader: data.augment.perturb, data.augment.perturb_fraction
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Peak resident memory of this process so far, MiB.
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

void print(const Args& a, const nlohmann::json& result, const std::string& text) {
  if (a.json) {
    std::cout << result.dump() << "\n";
  } else {
    std::cout << text << "\n";
  }
}

void bench_model(const Args& a, int64_t threads) {
  if (!a.profile.empty()) {  // before minutes of timing (opening a FIFO to test it would block)
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path path(a.profile), folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    if (fs::exists(path, ec) && !fs::is_regular_file(path, ec))
      throw InputError("--profile: " + printable(a.profile) + " exists and is not a regular file; give a file name");
    if (fs::exists(path, ec)) {  // replaces an earlier profile (a JSON array of trace events), nothing else
      const bool trace = json_file_matches(a.profile, [](const nlohmann::json& j) {
        return j.is_array() && (j.empty() || (j.front().is_object() && j.front().contains("ph")));
      });
      if (!trace)
        throw InputError("--profile: " + printable(a.profile) + " exists and is not a profile bench wrote (a JSON "
                         "array of trace events); give a new file name");
    }
    if (!fs::is_directory(folder, ec) || ::access(folder.c_str(), W_OK) != 0)
      throw InputError("--profile: cannot write " + printable(a.profile) + ": " + (ec ? ec.message() : std::strerror(errno)) +
                       " (the folder must exist and be writable)");
  }
  torch::manual_seed(0);
  ModelOptions o;
  o.in_channels = a.channels;
  o.num_classes = a.classes;
  o.image_size = a.size;
  o.steps = a.steps;
  ModelPtr m = create_model(a.model, o);
  const PrecisionChoice precision = choose_precision(*m, a.precision, a.memory_format, a.channels, a.size);
  if (a.steps > 1 && !m->recurrent())
    throw InputError("--steps: " + a.model + " is feed-forward (one step); omit --steps");
  int64_t steps = m->default_steps();
  const int64_t macs = macs_per_image(*m, a.channels, a.size);  // every step's (fp32 and bf16 alike)
  torch::Tensor x = m->inputs(torch::randn({a.batch, a.channels, a.size, a.size}));
  torch::Tensor y = torch::randint(a.classes, {a.batch}, torch::kInt64);
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.01).momentum(0.9));
  auto time = [&](auto&& body) {
    for (int64_t i = 0; i < a.warmup; ++i) body();
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < a.iters; ++i) body();
    return a.batch * a.iters / seconds_since(t0);
  };
  m->train();
  nn::set_fused_training(a.fused_training == "on");
  const int64_t fused_before = nn::fused_batch_norms();
  double train = time([&] {
    opt.zero_grad();
    auto logits = forward_logits(*m, x, steps);
    torch::Tensor loss = torch::cross_entropy_loss(logits[0], y);
    for (size_t t = 1; t < logits.size(); ++t) loss = loss + torch::cross_entropy_loss(logits[t], y);
    loss.backward();
    opt.step();
  });
  double train_peak = peak_rss_mib();
  // Whether the fused training batch norm ran (bf16, NCHW and CORnet's widths take LibTorch's path).
  const bool fused_training = nn::fused_batch_norms() > fused_before;
  if (a.fused_training == "on" && !fused_training)
    std::fprintf(stderr, "note: --fused-training on took no effect here: it runs channels-last fp32 batch norms of "
                         "16 to 512 channels (%s)\n", a.model.c_str());
  m->eval();
  nn::set_fused_inference(a.fused == "on");
  double eval = time([&] { infer(*m, x, steps); });
  if (!a.profile.empty()) {
    std::ostringstream json;
    {
      torch::autograd::profiler::RecordProfile trace(json);
      for (int64_t i = 0; i < a.iters; ++i) infer(*m, x, steps);
    }
    write_file_atomic(a.profile, json.str());  // whole or not at all (a full disk is an error)
  }
  bool nhwc = m->memory_format() == c10::MemoryFormat::ChannelsLast;
  char text[512];
  // GFLOP/s: 2 FLOPs per MAC; a training step is ~3 forward passes (forward, and the two
  // gradient products of the backward).
  const double train_gflops = 2.0 * 3 * macs * train / 1e9, eval_gflops = 2.0 * macs * eval / 1e9;
  std::snprintf(text, sizeof text,
                "%s: %lld parameters, batch %lld, %lld step(s), %lld threads, %s, precision %s: train %.1f images/s "
                "(%.1f ms/batch, %.1f GFLOP/s), eval %.1f images/s (%.1f GFLOP/s), peak memory %.0f MiB",
                a.model.c_str(), (long long)count_parameters(*m), (long long)a.batch, (long long)steps,
                (long long)threads, nhwc ? "channels_last" : "contiguous", precision.reason.c_str(), train, 1000.0 * a.batch / train, train_gflops, eval,
                eval_gflops, train_peak);
  print(a,
        {{"model", a.model}, {"params", count_parameters(*m)}, {"batch", a.batch}, {"threads", threads},
         {"steps", steps}, {"memory_format", nhwc ? "channels_last" : "contiguous"},
         {"precision", precision_name(m->precision())}, {"precision_reason", precision.reason},
         {"train_images_per_s", train}, {"eval_images_per_s", eval}, {"train_ms_per_batch", 1000.0 * a.batch / train},
         {"peak_rss_mib", train_peak}, {"macs_per_image", macs}, {"train_gflops", train_gflops},
         {"eval_gflops", eval_gflops}, {"fused", a.fused == "on"}, {"fused_training", fused_training}},
        text);
}

// The reference for "how close to the machine's limit": a large 3x3 convolution (64 -> 64
// channels, 28 x 28, batch 128, channels-last, as the models' own) in fp32 and in bf16 tensors
// (oneDNN's bf16 kernel without autocast's casts), forward only, best of --iters runs.
void bench_peak(const Args& a) {
  torch::manual_seed(0);
  const int64_t n = a.batch, c = 64, hw = 28;
  torch::Tensor x = torch::randn({n, c, hw, hw}).contiguous(c10::MemoryFormat::ChannelsLast);
  torch::Tensor w = torch::randn({c, c, 3, 3}).mul_(0.05).contiguous(c10::MemoryFormat::ChannelsLast);
  const double flops = 2.0 * n * c * hw * hw * c * 9;
  auto gflops = [&](const torch::Tensor& xs, const torch::Tensor& ws) {
    c10::InferenceMode guard;
    for (int64_t i = 0; i < a.warmup; ++i) torch::conv2d(xs, ws, {}, 1, 1);
    double best = 1e300;
    for (int64_t i = 0; i < a.iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      torch::conv2d(xs, ws, {}, 1, 1);
      best = std::min(best, seconds_since(t0));
    }
    return flops / best / 1e9;
  };
  double fp32 = gflops(x, w), bf16 = gflops(x.to(torch::kBFloat16), w.to(torch::kBFloat16));
  const std::string hardware = bf16_hardware(cpu_flags());
  char text[256];
  std::snprintf(text, sizeof text, "peak: 3x3 convolution 64->64, 28x28, batch %lld: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (%s)",
                (long long)n, fp32, bf16, hardware.empty() ? "no bf16 hardware flag: emulated" : hardware.c_str());
  print(a, {{"peak", "conv3x3_64_28"}, {"batch", n}, {"fp32_gflops", fp32}, {"bf16_gflops", bf16},
            {"bf16_hardware", hardware}}, text);
}

// The training loader of the recipes: crop after 2-pixel padding, flip, random erasing,
// normalisation, drop_last, on `loader_threads` threads (default: what training uses). With
// data.augment.random_resized_crop=true, torchvision's ImageNet training transform instead:
// RandomResizedCrop to the image size and a flip (on a streamed folder: decoding included).
// With data.augment.perturb=SPEC the images are also perturbed as in training under perturbation.
void bench_loader(const Args& a) {
  // The keys the timing reads; the rest (splits, normalisation, the augmentation's own settings,
  // loader threads) are fixed here, and were ignored without a word.
  static const std::vector<std::string> reads = {
      "data.preset", "data.channels", "data.image_size", "data.resize", "data.center_crop", "data.stream",
      "data.skip_bad_images", "data.augment.random_resized_crop", "data.augment.perturb", "data.augment.perturb_fraction"};
  for (const auto& o : a.overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (key == "data.dataset")
      throw InputError("bench --loader: '" + printable(o) + "': the dataset is --data");
    if (std::find(reads.begin(), reads.end(), key) == reads.end())
      throw InputError("bench --loader: '" + printable(o) + "': the loader timing reads only " + join(reads, ", ") +
                       " (crop+flip+erasing or RandomResizedCrop+flip at fixed settings; loader threads are "
                       "--loader-threads)");
  }
  Config cfg;
  try {
    refuse_repeated_overrides(a.overrides);
    cfg = Config::load("", a.overrides);
    set_dataset_spec(cfg, a.data, "--data");
    check_keys_take_effect(cfg);  // as train and config refuse keys that would do nothing here
  } catch (const InputError& e) {
    throw InputError(std::string("bench --loader: ") + e.what());
  }
  const auto rss_before = peak_rss_mib();
  Dataset data = load_dataset(a.data, Split::Train, preprocessing(cfg).load);
  LoaderOptions o;
  o.batch_size = a.batch;
  o.drop_last = true;
  o.augment = true;
  const bool rrc = cfg.get_bool("data.augment.random_resized_crop");
  if (rrc) {
    o.augmentation.resized_crop = true;
    o.augmentation.hflip = true;
  } else {
    o.augmentation = {2, true, 0.5};
  }
  o.mean.assign(data.channels, 0.286);
  o.std.assign(data.channels, 0.353);
  o.threads = a.loader_threads ? a.loader_threads : std::max<int64_t>(1, available_cores() / 2);
  try {
    o.perturbation = training_perturbation(cfg);
  } catch (const InputError& e) {  // the settings came from this command line, not a file
    std::string why = e.what();
    throw InputError("bench --loader: " + why.substr(why.find("key '")));
  }
  std::string what = rrc ? "RandomResizedCrop(" + std::to_string(data.height) + ")+flip" : "crop+flip+erasing";
  if (data.streamed()) what = "decode+" + what;
  if (o.perturbation.on())
    what += "+perturbation " + cfg.get_string("data.augment.perturb") + " (" +
            format_number("%g", 100 * o.perturbation.fraction) + "% of images)";
  if (a.loader_images > static_cast<int64_t>(data.size()))
    throw InputError("--loader-images " + std::to_string(a.loader_images) + ": " + printable(a.data) + " holds " +
                     std::to_string(data.size()) + " training images; give at most that (0 = all)");
  std::vector<int64_t> first;  // --loader-images bounds the epoch (empty: all)
  for (int64_t i = 0; i < std::min<int64_t>(a.loader_images, static_cast<int64_t>(data.size())); ++i) first.push_back(i);
  BatchLoader loader(data, first, o);
  int64_t n = 0;
  auto t0 = std::chrono::steady_clock::now();
  loader.start_epoch(0);
  while (auto batch = loader.next()) n += batch->labels.size(0);
  if (n == 0)  // training drops a last partial batch, and so does this timing
    throw InputError("bench --loader: " + std::to_string(first.empty() ? data.size() : first.size()) +
                     " images make no full batch of " + std::to_string(a.batch) + "; give a smaller --batch");
  const double rate = n / seconds_since(t0);
  const double rss = peak_rss_mib();
  char text[768];
  std::snprintf(text, sizeof text,
                "loader: %s (%s), %lld images, batch %lld, %lld loader thread(s), %s: %.0f images/s (%.0f per thread); "
                "peak memory %.0f MiB (%.0f MiB before loading)",
                data.name.c_str(), data.storage.c_str(), (long long)n, (long long)a.batch, (long long)o.threads,
                what.c_str(), rate, rate / static_cast<double>(o.threads), rss, rss_before);
  print(a, {{"loader", data.name}, {"storage", data.storage}, {"transform", what}, {"images", n}, {"batch", a.batch},
            {"loader_threads", o.threads}, {"train_perturb", cfg.get_string("data.augment.perturb")},
            {"perturb_fraction", o.perturbation.fraction}, {"images_per_s", rate},
            {"images_per_s_per_thread", rate / static_cast<double>(o.threads)}, {"peak_rss_mib", rss},
            {"rss_before_loading_mib", rss_before}}, text);
}

// Every listed family (or all) at every severity on the first `images` test images.
void bench_perturb(const Args& a) {
  Dataset full = load_dataset(a.data, Split::Test);
  std::vector<int64_t> first;
  if (a.images_given && a.images > static_cast<int64_t>(full.size()))
    throw InputError("--images " + std::to_string(a.images) + ": " + a.data + " holds only " + std::to_string(full.size()) +
                     " test images");
  for (int64_t i = 0; i < std::min<int64_t>(a.images, full.size()); ++i) first.push_back(i);
  Dataset data = full.subset(first);
  nlohmann::json families = nlohmann::json::object();
  int64_t total = 0;
  double total_s = 0;
  std::vector<PerturbationSpec> specs;
  try {
    specs = parse_perturbations(a.perturb);
  } catch (const InputError& e) {
    throw InputError(std::string("--perturb: ") + e.what());
  }
  for (const auto& spec : specs) {
    auto t0 = std::chrono::steady_clock::now();
    for (int severity : spec.severities) perturb_dataset(data, spec.family, severity, 0);
    double s = seconds_since(t0);
    int64_t n = static_cast<int64_t>(data.size() * spec.severities.size());
    families[spec.family] = n / s;
    total += n;
    total_s += s;
    if (!a.json) std::printf("perturb %-12s %8.0f images/s\n", spec.family.c_str(), n / s);
  }
  char text[256];
  std::snprintf(text, sizeof text, "perturb: %lld images of %s (all cores): %.0f images/s overall",
                (long long)total, data.name.c_str(), total / total_s);
  print(a, {{"perturb", data.name}, {"images", total}, {"images_per_s", total / total_s}, {"families", families}},
        text);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "bench", "Time a model's training step (forward + backward + SGD) and inference, the loader, or perturbations");
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
  cmd->add_option("--precision", a->precision, "fp32 | bf16 | auto (bf16: CPU autocast)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}))
      ->capture_default_str();
  cmd->add_option("--fused", a->fused,
                  "inference: batch norms, sums and ReLUs in the convolutions' own oneDNN passes where the model and "
                  "layout allow (channels-last, fp32 or bf16); off: LibTorch's operations one by one")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd->add_option("--fused-training", a->fused_training,
                  "training: each batch norm with its ReLU (and residual sum) as one operation over channels-last fp32 "
                  "(off by default: slower here at 2 threads, bench/RESULTS.md)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  cmd->add_option("--profile", a->profile, "write a chrome://tracing profile of the timed inference iterations to FILE");
  cmd->add_flag("--peak", a->peak, "time a large 3x3 convolution in fp32 and bf16: the GFLOP/s the models are measured against");
  cmd->add_flag("--loader", a->loader,
                "time the training loader (crop, flip, erasing; or RandomResizedCrop and flip) over one epoch of --data");
  cmd->add_option("--loader-threads", a->loader_threads, "loader threads (0 = cores/2, as training)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--perturb", a->perturb, "time these perturbations (e.g. all, occluder,noise:3) on --images test images");
  cmd->add_option("--data", a->data, "dataset SPEC for --loader / --perturb")->capture_default_str();
  cmd->add_option("--images", a->images, "test images for --perturb")->check(CLI::Range(1, 10000000))->capture_default_str();
  cmd->add_option("--loader-images", a->loader_images, "--loader: time the first N images only (0 = one whole epoch)")
      ->check(CLI::Range(0, 100000000));
  cmd->add_option("overrides", a->overrides,
                  "with --loader: data.* settings, e.g. data.image_size=224 data.stream=on "
                  "data.augment.random_resized_crop=true data.augment.perturb=SPEC");
  cmd->add_flag("--json", a->json, "print one JSON object (model: model, params, batch, threads, train_images_per_s, "
                                   "eval_images_per_s, ...)");
  cmd->callback([a, cmd] {
    // One measurement a call, and no option it does not read (they were ignored without a word).
    if (int(a->peak) + int(a->loader) + int(!a->perturb.empty()) > 1)
      throw InputError("bench: --peak, --loader and --perturb are separate measurements; give one of them");
    const bool model = !a->peak && !a->loader && a->perturb.empty();
    auto only = [&](std::initializer_list<const char*> flags, bool applies, const std::string& where) {
      for (const char* flag : flags)
        if (cmd->count(flag) && !applies) throw InputError(std::string("bench: ") + flag + " applies to " + where + " only");
    };
    only({"--loader-threads", "--loader-images"}, a->loader, "--loader");
    only({"--threads"}, !a->loader, "timing a model, --peak and --perturb (the loader's threads are --loader-threads)");
    only({"--images"}, !a->perturb.empty(), "--perturb");
    only({"--data"}, a->loader || !a->perturb.empty(), "--loader and --perturb");
    // The loader and the perturbation library time what the dataset holds, once through.
    only({"--image-size", "--in-channels"}, model || a->peak, "timing a model or --peak (--loader and --perturb time "
         "the dataset's own images; set data.image_size for the loader)");
    only({"--iters", "--warmup"}, model || a->peak, "timing a model or --peak (--loader and --perturb go through the data once)");
    only({"--batch"}, a->perturb.empty(), "timing a model, --peak and --loader (--perturb works image by image)");
    only({"--model", "--steps", "--classes", "--memory-format", "--precision", "--profile", "--fused", "--fused-training"}, model,
         "timing a model (without --peak, --loader or --perturb)");
    a->images_given = cmd->count("--images") > 0;
    if (a->threads > available_cores())  // measured, but oversubscribed: not what the cores give
      std::fprintf(stderr, "note: --threads %lld is more than the %lld cores this process may use; threads share cores\n",
                   (long long)a->threads, (long long)available_cores());
    int64_t threads = configure_threads(a->threads ? std::optional<int64_t>(a->threads) : std::nullopt);
    if (a->peak)
      bench_peak(*a);
    else if (a->loader)
      bench_loader(*a);
    else if (!a->overrides.empty())
      throw InputError("bench: '" + a->overrides.front() + "': key=value settings apply to --loader only");
    else if (!a->perturb.empty())
      bench_perturb(*a);
    else
      bench_model(*a, threads);
  });
}

}  // namespace ventral::cli
