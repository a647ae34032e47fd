// Weights in and out of PyTorch (issue 16): state_dict files as Python's torch.save writes them,
// in C++ and through Python's own torch.load / torch.save where python3-torch is installed.
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"
#include "helpers.hpp"
#include "inference/checkpoint.hpp"
#include "inference/model_json.hpp"
#include "inference/run.hpp"
#include "datasets/dataset.hpp"
#include "inference/predict.hpp"
#include "models/registry.hpp"

using namespace ventral;
using ventral::test::run_shell;
using ventral::test::run_ventral;
using ventral::test::TempDir;

namespace {

ModelOptions tiny() {
  ModelOptions o;
  o.in_channels = 1;
  o.num_classes = 5;
  o.image_size = 16;
  o.width = 4;
  o.steps = 3;
  return o;
}

int64_t steps_for(const VisionModelImpl& m) { return m.recurrent() ? std::max<int64_t>(2, m.default_steps()) : 1; }

// A model with non-trivial batch-norm statistics (one train-mode pass), then in eval mode.
ModelPtr trained_a_little(const std::string& name, const ModelOptions& o = tiny()) {
  torch::manual_seed(0);
  ModelPtr m = create_model(name, o);
  m->train();
  torch::NoGradGuard no_grad;
  m->forward(torch::randn({4, 1, 16, 16}), steps_for(*m));
  m->eval();
  return m;
}

void expect_same_outputs(VisionModelImpl& a, VisionModelImpl& b, const std::string& where) {
  torch::manual_seed(9);
  torch::Tensor x = torch::randn({2, 1, 16, 16});
  torch::NoGradGuard no_grad;
  a.eval(), b.eval();
  auto ya = a.forward(x, steps_for(a)), yb = b.forward(x, steps_for(b));
  ASSERT_EQ(ya.size(), yb.size()) << where;
  for (size_t t = 0; t < ya.size(); ++t)
    EXPECT_TRUE(torch::equal(ya[t], yb[t])) << where << " step " << t << ": max difference "
                                            << (ya[t] - yb[t]).abs().max().item<double>();
}

void write_pickle(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

c10::impl::GenericDict dict_of(const std::map<std::string, torch::Tensor>& state, const std::string& prefix = "") {
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [k, v] : state) d.insert(prefix + k, v);
  return d;
}

std::string load_error(VisionModelImpl& m, const std::string& path, bool strict = true) {
  return ventral::test::error_text<InputError>([&] { load_state_dict(m, read_state_dict(path), path, strict); });
}

bool python_torch() { return run_shell("/usr/bin/python3 -c 'import torch'").status == 0; }

}  // namespace

class EveryModelWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryModelWeights, StateDictRoundTripGivesIdenticalOutputs) {
  ModelPtr a = trained_a_little(GetParam());
  if (count_parameters(*a) > 10'000'000) GTEST_SKIP() << "large model: covered by smaller ones";
  TempDir dir;
  save_state_dict(dir / "a.pt", *a);
  const auto state = read_state_dict(dir / "a.pt");
  EXPECT_EQ(state.size(), model_state(*a).size());
  torch::manual_seed(123);
  ModelPtr b = create_model(GetParam(), tiny());
  EXPECT_TRUE(load_state_dict(*b, state, "a.pt", true).empty());
  expect_same_outputs(*a, *b, GetParam());
  // DataParallel's "module." prefix, and the {"state_dict": ...} wrapper training scripts save.
  c10::impl::GenericDict wrapped(c10::StringType::get(), c10::AnyType::get());
  wrapped.insert("epoch", int64_t{70});
  wrapped.insert("state_dict", dict_of(state, "module."));
  write_pickle(dir / "wrapped.pt", wrapped);
  torch::manual_seed(321);
  ModelPtr c = create_model(GetParam(), tiny());
  EXPECT_TRUE(load_state_dict(*c, read_state_dict(dir / "wrapped.pt"), "wrapped.pt", true).empty());
  expect_same_outputs(*a, *c, GetParam() + " (module. prefix)");
}

// Through Python itself: ventral's file -> torch.load -> torch.save with a "module." prefix ->
// ventral, identical outputs; Python sees a plain dict of tensors with ventral's names.
TEST_P(EveryModelWeights, ThroughPythonsTorchLoadAndSaveGivesIdenticalOutputs) {
  if (!python_torch()) GTEST_SKIP() << "python3-torch is not installed";
  ModelPtr a = trained_a_little(GetParam());
  if (count_parameters(*a) > 10'000'000) GTEST_SKIP() << "large model: covered by smaller ones";
  TempDir dir;
  save_state_dict(dir / "ventral.pt", *a);
  auto r = run_shell("/usr/bin/python3 -c \"import torch, sys\n"
                     "s = torch.load(sys.argv[1])\n"
                     "assert type(s) is dict, type(s)\n"
                     "assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in s.items())\n"
                     "print(len(s), sum(v.numel() for v in s.values()))\n"
                     "torch.save({'module.' + k: v.clone() for k, v in s.items()}, sys.argv[2])\" " +
                     (dir / "ventral.pt") + " " + (dir / "python.pt"));
  ASSERT_EQ(r.status, 0) << r.output;
  int64_t elements = 0;
  for (const auto& [name, t] : model_state(*a)) elements += t.numel();
  EXPECT_EQ(r.output, std::to_string(model_state(*a).size()) + " " + std::to_string(elements) + "\n");
  // model.state_dict() itself: an OrderedDict with _metadata, wrapped as training scripts save it.
  auto od = run_shell("/usr/bin/python3 -c \"import torch, sys, collections\n"
                      "s = collections.OrderedDict(torch.load(sys.argv[1]))\n"
                      "s._metadata = collections.OrderedDict([('', {'version': 1})])\n"
                      "torch.save({'epoch': 3, 'arch': 'x', 'state_dict': s}, sys.argv[2])\" " +
                      (dir / "ventral.pt") + " " + (dir / "ordered.pt"));
  ASSERT_EQ(od.status, 0) << od.output;
  torch::manual_seed(78);
  ModelPtr c = create_model(GetParam(), tiny());
  EXPECT_TRUE(load_state_dict(*c, read_state_dict(dir / "ordered.pt"), "ordered.pt", true).empty());
  expect_same_outputs(*a, *c, GetParam() + " (OrderedDict)");
  torch::manual_seed(77);
  ModelPtr b = create_model(GetParam(), tiny());
  EXPECT_TRUE(load_state_dict(*b, read_state_dict(dir / "python.pt"), "python.pt", true).empty());
  expect_same_outputs(*a, *b, GetParam());
}

// The Python twin package (python/ventral_torch) both ways, for every registered model, large
// ones included: ventral's export -> ventral_torch.load -> the same logits at every step; and a
// twin's torch.save (with a "module." prefix) -> ventral -> the twin's logits. Within 1e-4.
TEST_P(EveryModelWeights, PythonTwinGivesTheSameLogitsAtEveryStepBothWays) {
  if (!python_torch()) GTEST_SKIP() << "python3-torch is not installed";
  const std::string name = GetParam();
  Config cfg;
  for (const std::string& kv : {"model.name=" + name, std::string("model.width=4"), std::string("model.steps=3")})
    cfg.set(kv);
  const ModelOptions o = model_options(cfg, 1, 5, 16);
  ModelPtr a = trained_a_little(name, o);
  const int64_t steps = steps_for(*a);
  TempDir dir;
  export_model(dir / "model.pt", *a,
               model_json({cfg, a->default_steps(), 1, 16, {0.5}, {0.25}, {"a", "b", "c", "d", "e"}}));
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({2, 1, 16, 16});
  write_pickle(dir / "input.pt", x);
  auto r = run_shell("/usr/bin/python3 " + std::string(VENTRAL_SOURCE_DIR) + "/tests/python/twin_round_trip.py " +
                     dir.str() + " " + std::to_string(steps));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, std::to_string(count_parameters(*a)) + "\n") << "parameters in Python";

  auto expect_close = [&](VisionModelImpl& m, const std::string& logits_file, const std::string& what) {
    torch::NoGradGuard no_grad;
    m.eval();
    const auto ours = m.forward(x, steps);
    const auto theirs = read_state_dict(dir / logits_file);
    ASSERT_EQ(theirs.size(), ours.size()) << what << ": read-out steps";
    for (size_t t = 0; t < ours.size(); ++t) {
      const torch::Tensor& y = theirs.at(std::to_string(t));
      ASSERT_EQ(y.sizes(), ours[t].sizes()) << what << " step " << t;
      // Relative to the logits' scale where it exceeds 1: deep nets with one pass of batch
      // statistics reach logits in the thousands (resnet110), where float32 rounding alone is 1e-4.
      const double scale = std::max(1.0, ours[t].abs().max().item<double>());
      EXPECT_LT((y - ours[t]).abs().max().item<double>() / scale, 1e-4)
          << what << " step " << t << " (largest logit " << scale << ")";
      EXPECT_GT(ours[t].abs().max().item<double>(), 1e-3) << what << " step " << t << ": logits all zero";
    }
  };
  expect_close(*a, "twin_logits.pt", name + " ventral -> PyTorch");
  torch::manual_seed(5);
  ModelPtr b = create_model(name, o);
  EXPECT_TRUE(load_state_dict(*b, read_state_dict(dir / "python.pt"), "python.pt", true).empty());
  expect_close(*b, "python_logits.pt", name + " PyTorch -> ventral");
}

// `ventral eval --weights` reads the input channels and class count off the tensors, for every
// model (cortical_b_f's widths change with the class count too: only the readout carries it).
TEST_P(EveryModelWeights, LoadWeightsReadsClassesAndChannelsOffTheTensors) {
  const std::string name = GetParam();
  ModelPtr a = trained_a_little(name);
  if (count_parameters(*a) > 10'000'000) GTEST_SKIP() << "large model: covered by smaller ones";
  TempDir dir;
  save_state_dict(dir / "w.pt", *a);
  std::vector<std::string> settings = {"data.image_size=16", "data.mean=[0.5]", "data.std=[0.25]"};
  for (const auto& key : find_model(name).options)
    if (key == "model.width") settings.push_back("model.width=4");
    else if (key == "model.steps") settings.push_back("model.steps=3");
  LoadedRun r = load_weights(dir / "w.pt", name, "", settings, "fp32");
  EXPECT_EQ(r.channels, 1);
  EXPECT_EQ(r.classes, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  // The same weights (the loaded model runs in its preferred memory format, so equal to rounding).
  torch::manual_seed(9);
  const torch::Tensor x = torch::randn({2, 1, 16, 16});
  torch::NoGradGuard no_grad;
  a->eval();
  const auto ya = a->forward(x, steps_for(*a)), yb = r.model->forward(r.model->inputs(x), steps_for(*a));
  ASSERT_EQ(ya.size(), yb.size());
  for (size_t t = 0; t < ya.size(); ++t) EXPECT_TRUE(torch::allclose(ya[t], yb[t], 1e-4, 1e-5)) << name << " step " << t;
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryModelWeights, ::testing::ValuesIn(list_models()),
                         ventral::test::model_param_name);

TEST(Weights, MismatchedFilesAreOneLineErrorsNamingTheEntries) {
  TempDir dir;
  ModelPtr resnet = trained_a_little("resnet20");
  save_state_dict(dir / "resnet20.pt", *resnet);
  ModelPtr blt = create_model("cortical_blt", tiny());
  std::string e = load_error(*blt, dir / "resnet20.pt");
  EXPECT_NE(e.find("resnet20.pt: none of the file's tensors fits the model (missing: "), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected: "), std::string::npos) << e;
  // Same architecture, other width: every conv has the wrong shape, named with both shapes.
  ModelOptions wide = tiny();
  wide.width = 8;
  ModelPtr resnet8 = create_model("resnet20", wide);
  e = load_error(*resnet8, dir / "resnet20.pt");
  EXPECT_NE(e.find("wrong shape or type: "), std::string::npos) << e;
  EXPECT_NE(e.find("in the file, "), std::string::npos) << e;
  // Not a state_dict: a bare tensor, a list, text, a truncated zip, an empty dict.
  write_pickle(dir / "tensor.pt", torch::ones({3}));
  EXPECT_NE(load_error(*resnet, dir / "tensor.pt").find("tensor.pt: holds a tensor, not a state_dict"), std::string::npos);
  ventral::test::write_text(dir / "text.pt", "not a pickle\n");
  EXPECT_NE(load_error(*resnet, dir / "text.pt").find("text.pt: not a zip archive"), std::string::npos);
  std::ifstream in(dir / "resnet20.pt", std::ios::binary);
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), {});
  bytes.resize(bytes.size() / 2);
  ventral::test::write_bytes(dir / "truncated.pt", bytes);
  EXPECT_NE(load_error(*resnet, dir / "truncated.pt").find("truncated.pt: not a zip archive: truncated, not a torch.save file, or torch.save's legacy"),
            std::string::npos);
  write_pickle(dir / "empty.pt", dict_of({}));
  EXPECT_NE(load_error(*resnet, dir / "empty.pt").find("empty.pt: the state_dict is empty"), std::string::npos);
  // A file none of whose tensors fits, even when not strict.
  ModelPtr other = create_model("cortical_b", tiny());
  EXPECT_NE(ventral::test::error_text<InputError>([&] {
              load_state_dict(*other, read_state_dict(dir / "resnet20.pt"), "resnet20.pt", false);
            }).find("none of the file's tensors fits the model"),
            std::string::npos);
  // A damaged tensor.
  auto state = read_state_dict(dir / "resnet20.pt");
  state.at("fc.weight")[0][0] = NAN;
  write_pickle(dir / "nan.pt", dict_of(state));
  EXPECT_NE(load_error(*resnet, dir / "nan.pt").find("fc.weight holds NaN or infinite values"), std::string::npos);
}

TEST(Weights, NotStrictKeepsTheModelsOwnValuesWhereTheFileDoesNotFit) {
  TempDir dir;
  ModelPtr source = trained_a_little("resnet20");
  save_state_dict(dir / "r.pt", *source);
  ModelOptions ten = tiny();
  ten.num_classes = 10;  // a replaced classifier
  torch::manual_seed(5);
  ModelPtr target = create_model("resnet20", ten);
  const torch::Tensor own_fc = target->named_parameters()["fc.weight"].clone();
  const std::string e = load_error(*target, dir / "r.pt");
  EXPECT_NE(e.find("wrong shape or type: fc.bias [5] Float in the file, [10] Float in the model"), std::string::npos) << e;
  const auto kept = load_state_dict(*target, read_state_dict(dir / "r.pt"), "r.pt", false);
  EXPECT_EQ(kept, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_TRUE(torch::equal(target->named_parameters()["fc.weight"], own_fc));
  EXPECT_TRUE(torch::equal(target->named_parameters()["conv1.weight"], source->named_parameters()["conv1.weight"]));
}

TEST(Weights, ExportThenFineTuneThroughTheCli) {
  TempDir dir;
  ventral::test::write_text(dir / "base.yaml",
                            "data:\n  dataset: synthetic:200\nmodel:\n  name: resnet20\n  width: 4\n"
                            "train:\n  epochs: 1\n  batch_size: 32\nthreads: 1\n");
  const std::string train = std::string(VENTRAL_BINARY) + " train " + (dir / "base.yaml");
  auto trained = run_shell(train + " --run-dir " + (dir / "run"));
  ASSERT_EQ(trained.status, 0) << trained.output;
  // Never over something that is not a regular file (a pipe here; /dev/null as root once), nor as .json.
  ASSERT_EQ(run_shell("mkfifo " + (dir / "fifo")).status, 0);
  auto fifo = run_ventral("export " + (dir / "run") + " --out " + (dir / "fifo"));
  EXPECT_EQ(fifo.status, 2) << fifo.output;
  EXPECT_NE(fifo.output.find("it exists and is not a regular file (a device or pipe)"), std::string::npos) << fifo.output;
  EXPECT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "x.json")).status, 2);
  auto ex = run_ventral("export " + (dir / "run") + " --checkpoint best --out " + (dir / "out/model.pt"));
  ASSERT_EQ(ex.status, 0) << ex.output;
  auto meta = nlohmann::json::parse(std::ifstream(dir / "out/model.json"));
  EXPECT_EQ(meta["model"], "resnet20");
  EXPECT_EQ(meta["options"]["width"], 4);
  EXPECT_EQ(meta["classes"].size(), 10u);
  EXPECT_EQ(meta["input"]["channels"], 1);
  EXPECT_EQ(meta["normalisation"]["mean"].size(), 1u);
  // The export holds the checkpoint's weights: a model loaded from each predicts alike.
  Config cfg = Config::load(dir / "run/config.yaml");
  ModelPtr from_checkpoint = create_model("resnet20", model_options(cfg, 1, 10, 28));
  load_checkpoint(dir / "run/checkpoints/best.pt", *from_checkpoint, nullptr);
  ModelPtr from_export = create_model("resnet20", model_options(cfg, 1, 10, 28));
  load_state_dict(*from_export, read_state_dict(dir / "out/model.pt"), "model.pt", true);
  {
    const auto a = model_state(*from_checkpoint), b = model_state(*from_export);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
  // (Equal values; the checkpoint's convolution weights keep the channels-last layout they were
  // trained in, the export's are contiguous, so the outputs agree to float rounding.)
  torch::Tensor x = torch::randn({2, 1, 28, 28});
  torch::NoGradGuard no_grad;
  from_checkpoint->eval(), from_export->eval();
  EXPECT_TRUE(torch::allclose(from_checkpoint->forward(x, 1).back(), from_export->forward(x, 1).back(), 1e-5, 1e-6));
  // RUN/model.json, written by training, is the export's description without its source and
  // the name of the weights file it describes, plus the run's id.
  auto run_meta = nlohmann::json::parse(std::ifstream(dir / "run/model.json"));
  EXPECT_EQ(meta["weights"], "model.pt");
  meta.erase("source");
  meta.erase("weights");
  EXPECT_EQ(run_meta["run_id"].get<std::string>().size(), 16u) << run_meta.dump();
  run_meta.erase("run_id");
  EXPECT_EQ(run_meta, meta);
  // ventral_torch.load reads the run directory (here its best checkpoint) and the export alike.
  if (python_torch()) {
    auto py = run_shell("/usr/bin/python3 -c \"import sys; sys.path.insert(0, '" + std::string(VENTRAL_SOURCE_DIR) +
                        "/python')\nimport torch, ventral_torch as v\na, b = v.load(sys.argv[1], checkpoint='best'), v.load(sys.argv[2])\n"
                        "x = torch.rand(3, 1, 28, 28)\nprint(bool(torch.equal(a(a.preprocess(x))[0], b(b.preprocess(x))[0])), "
                        "a.classes == b.classes, len(a.classes), a.training)\" " +
                        (dir / "run") + " " + (dir / "out/model.pt"));
    EXPECT_EQ(py.output, "True True 10 False\n");
  }
  // `ventral eval --weights`: the export, evaluated without its run, gives the run's numbers.
  {
    std::ofstream classes(dir / "classes.txt");
    for (const auto& c : meta["classes"]) classes << c.get<std::string>() << "\n";
  }
  const std::string norm = " --set model.width=4 --set data.image_size=28 --set data.mean=[" +
                           format_number("%.17g", meta["normalisation"]["mean"][0].get<double>()) +
                           "] --set data.std=[" + format_number("%.17g", meta["normalisation"]["std"][0].get<double>()) + "]";
  // A state_dict alone (as Python's torch.save writes one): no description beside it.
  std::filesystem::copy_file(dir / "out/model.pt", dir / "bare.pt");
  const std::string any_model = "eval --data synthetic:200 --weights " + (dir / "bare.pt");
  const std::string weights = any_model + " --model resnet20";
  auto of_run = run_ventral("eval " + (dir / "run") + " --checkpoint best --data synthetic:200 --out " + (dir / "e_run"));
  ASSERT_EQ(of_run.status, 0) << of_run.output;
  auto of_weights = run_ventral(weights + norm + " --classes " + (dir / "classes.txt") + " --out " + (dir / "e_w"));
  ASSERT_EQ(of_weights.status, 0) << of_weights.output;
  auto bytes = [](const std::string& path) { return ventral::read_file(path); };
  EXPECT_EQ(bytes(dir / "e_run/results.csv"), bytes(dir / "e_w/results.csv"));
  // The export with its description beside it needs none of --model, --set and --classes.
  auto described = run_ventral("eval --data synthetic:200 --weights " + (dir / "out/model.pt") + " --out " + (dir / "e_d"));
  ASSERT_EQ(described.status, 0) << described.output;
  EXPECT_EQ(bytes(dir / "e_run/results.csv"), bytes(dir / "e_d/results.csv"));
  // Without --classes the model's classes are its output indices: every prediction, no accuracy.
  auto blind = run_ventral(weights + norm + " --out " + (dir / "e_blind"));
  ASSERT_EQ(blind.status, 0) << blind.output;
  EXPECT_NE(blind.output.find("accuracy not computed: the model's outputs have no names (no --classes)"),
            std::string::npos) << blind.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "e_blind/results.csv"));
  auto blind_summary = nlohmann::json::parse(std::ifstream(dir / "e_blind/summary.json"));
  EXPECT_TRUE(blind_summary["accuracy"].is_null());
  EXPECT_EQ(blind_summary["n"], 50);
  const auto per_image_bytes = bytes(dir / "e_blind/per_image.csv");
  const std::string per_image(per_image_bytes.begin(), per_image_bytes.end());
  EXPECT_EQ(per_image.rfind("index,folder,family,severity,pred_step1,class_step1\n", 0), 0u) << per_image.substr(0, 80);
  EXPECT_EQ(std::count(per_image.begin(), per_image.end(), '\n'), 51);
  // Wrong architecture, wrong class list, missing pieces: one error line each, exit 2.
  for (const auto& [args, says] : std::vector<std::pair<std::string, std::string>>{
           {any_model + " --model resnet32" + norm, "the weights do not fit the model"},
           {any_model + " --model resnet21" + norm, "unknown model 'resnet21' (did you mean 'resnet20'?"},
           {weights + norm + " --classes " + (dir / "run/config.yaml"), "names for a model with 10 outputs"},
           {weights + " --set model.width=4 --set data.image_size=28", "the normalisation the weights were trained with is needed"},
           {weights + " --set model.width=4", "the input size is unknown"},
           {"eval --data synthetic --weights " + (dir / "bare.pt"), "needs --model NAME"},
           {"eval " + (dir / "run") + " --model resnet20", "--model: only with --weights"},
           {weights + " --set train.lr=1" + norm, "only model.*, data.*, threads and memory_format keys apply"},
           {weights + " --set data.resize=256" + norm, "needs data.center_crop"},
           {weights + " --set model.name=resnet32" + norm, "--model, --data and --weights say this"},
           {weights + norm + " --out ''", "--out: an empty value"},
           {"eval --data synthetic --model resnet20 --weights " + (dir / "run/checkpoints/last.pt") + norm,
            "a TorchScript/LibTorch archive (a ventral checkpoint?), not a state_dict"},
           {"export " + (dir / "run") + " --out " + (dir / "run/checkpoints/last.pt"), "inside the run directory"},
           {"export " + (dir / "run") + " --out " + (dir / "run/model.pt"), "inside the run directory"},
           {"config data.resize=32", "key 'data.resize' needs data.center_crop"},
           {"config data.preset=cifar data.channels=1", "key 'data.mean' has 3 values for 1-channel images"},
           {"perturb --data synthetic:20 --family block:9 --out " + (dir / "s.png"), "--family: bad severities"},
           {"perturb --data synthetic:20 --set data.val_fraction=0.5 --out " + (dir / "s.png"), "perturb takes the image keys"},
           {"perturb --data synthetic:20 --family block:2 --out " + (dir / "s.jpg"), "the contact sheet is a PNG"},
           {"config data.channels=2", "key 'data.channels': 2 is not supported (0 = as stored, 1 = gray, 3 = RGB)"},
           // Checked before minutes of evaluation, not after: the output folder and the reference run.
           {weights + norm + " --out /proc/self", "--out /proc/self: the folder holds files but no evaluation"},
           {weights + norm + " --classes " + (dir / "classes.txt") + " --reference " + (dir / "out"),
            "not a run directory (no config.yaml)"}}) {
    auto r = run_ventral(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
    EXPECT_EQ(r.output.find("clean "), std::string::npos) << args << ": evaluated before failing\n" << r.output;
  }
  // A later evaluation into the same folder leaves no file of the earlier one behind.
  auto again = run_ventral(weights + norm + " --out " + (dir / "e_w"));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "e_w/results.csv"));
  EXPECT_FALSE(std::filesystem::exists(dir / "e_w/accuracy_vs_steps.png"));
  EXPECT_NE(again.output.find("wrote " + (dir / "e_w") + "/{summary.json,per_image.csv}"), std::string::npos) << again.output;
  // Fine-tuning from the export: the header names the weights.
  auto ft = run_shell(train + " model.weights=" + (dir / "out/model.pt") + " train.stop_after_steps=1 --run-dir " +
                      (dir / "ft"));
  EXPECT_EQ(ft.status, 75) << ft.output;
  EXPECT_NE(ft.output.find("initial weights " + (dir / "out/model.pt")), std::string::npos) << ft.output;
  // Another width: one error line, exit 2; not strict, it trains and says what it kept.
  auto wrong = run_shell(train + " model.width=8 model.weights=" + (dir / "out/model.pt") + " --run-dir " + (dir / "wrong"));
  EXPECT_EQ(wrong.status, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("model.weights " + (dir / "out/model.pt") + ": the weights do not fit the model"),
            std::string::npos)
      << wrong.output;
  EXPECT_EQ(std::count(wrong.output.begin(), wrong.output.end(), '\n'), 1) << wrong.output;
  auto loose = run_shell(train + " model.width=8 model.weights=" + (dir / "out/model.pt") +
                         " model.weights_strict=false train.stop_after_steps=1 --run-dir " + (dir / "loose"));
  EXPECT_EQ(loose.status, 75) << loose.output;
  EXPECT_NE(loose.output.find(" tensors; kept the model's own "), std::string::npos) << loose.output;
}

// The official CORnet checkpoints load as they are: a state_dict with exactly the names and
// shapes of dicarlolab/CORnet's models (tests/data/cornet_state_dict_keys.txt, generated from
// its cornet/*.py; the released files cannot be downloaded here), "module." prefix included,
// fits ventral's CORnet-Z/R/RT/S built for ImageNet (3 x 224 x 224, 1000 classes) exactly.
TEST(Weights, OfficialCornetStateDictsLoadWithNoMissingOrUnexpectedKey) {
  std::ifstream in(std::string(VENTRAL_SOURCE_DIR) + "/tests/data/cornet_state_dict_keys.txt");
  ASSERT_TRUE(in.good());
  std::map<std::string, std::map<std::string, torch::Tensor>> official;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::string model, name, shape;
    ss >> model >> name >> shape;
    std::vector<int64_t> sizes;
    if (shape != "scalar") {
      std::stringstream dims(shape);
      for (std::string d; std::getline(dims, d, 'x');) sizes.push_back(std::stoll(d));
    }
    // (Running variances positive, as every trained batch norm's: a negative one is refused.)
    const bool variance = name.size() > 11 && name.compare(name.size() - 11, 11, "running_var") == 0;
    official[model][name] = shape == "scalar" ? torch::zeros({}, torch::kLong)
                            : variance        ? torch::rand(sizes) + 0.5
                                              : torch::randn(sizes);
  }
  ASSERT_EQ(official.size(), 4u);
  ModelOptions imagenet;
  imagenet.in_channels = 3;
  imagenet.num_classes = 1000;
  imagenet.image_size = 224;
  for (const auto& [model, state] : official) {
    ModelPtr m = create_model(model, imagenet);
    TempDir dir;
    write_pickle(dir / "official.pt", dict_of(state));
    EXPECT_EQ(load_error(*m, dir / "official.pt"), "<no error>") << model;
    EXPECT_EQ(model_state(*m).size(), state.size()) << model;
    // The values arrived: ventral's tensor is the file's.
    const auto loaded = model_state(*m);
    EXPECT_TRUE(torch::equal(loaded.front().second, state.at("module." + loaded.front().first))) << model;
    // As the released files are: torch.save({"epoch", "arch", "state_dict": OrderedDict}) from Python.
    if (!python_torch()) continue;
    auto r = run_shell("/usr/bin/python3 -c \"import torch, sys, collections\n"
                       "od = collections.OrderedDict()\n"
                       "for line in open(sys.argv[1]):\n"
                       "    f = line.split()\n"
                       "    if line.startswith('#') or f[0] != sys.argv[2]: continue\n"
                       "    shape = [] if f[2] == 'scalar' else [int(d) for d in f[2].split('x')]\n"
                       "    od[f[1]] = torch.zeros((), dtype=torch.long) if f[2] == 'scalar' else "
                       "torch.rand(*shape) + 0.5 if f[1].endswith('running_var') else torch.randn(*shape)\n"
                       "torch.save({'epoch': 70, 'arch': sys.argv[2], 'state_dict': od}, sys.argv[3])\" " +
                       std::string(VENTRAL_SOURCE_DIR) + "/tests/data/cornet_state_dict_keys.txt " + model + " " +
                       (dir / "released.pt"));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(load_error(*m, dir / "released.pt"), "<no error>") << model;
  }
}

// The state_dict reader is ventral's own parser of untrusted bytes: 3,000 damaged copies of a
// real file (bytes of the pickle and the zip overwritten at random) either load or are an
// InputError; nothing else escapes (no other exception, no crash, no runaway allocation).
// LibTorch's zip reader does not check CRCs: one flipped bit inside a tensor loaded as a
// silently different weight, from a state_dict and from a checkpoint. Both are refused now.
TEST(Weights, AFlippedBitInATensorIsRefusedNotLoaded) {
  TempDir dir;
  ModelPtr m = trained_a_little("resnet20");
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : model_state(*m))
      if (name == "fc.weight") t.fill_(1.0);  // a byte pattern to find in the file
  }
  auto flip_in = [](const std::string& path) {
    auto bytes = ventral::read_file(path);
    const std::vector<unsigned char> ones = {0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f};
    auto at = std::search(bytes.begin(), bytes.end(), ones.begin(), ones.end());
    ASSERT_NE(at, bytes.end()) << path;
    at[5] ^= 0x01;  // 1.0 becomes 1.0000076
    ventral::test::write_bytes(path, bytes);
  };
  save_state_dict(dir / "w.pt", *m);
  flip_in(dir / "w.pt");
  EXPECT_NE(load_error(*m, dir / "w.pt").find("w.pt: damaged: the checksum of"), std::string::npos)
      << load_error(*m, dir / "w.pt");
  save_checkpoint(dir / "c.pt", *m, nullptr, TrainState{});
  EXPECT_NO_THROW(load_checkpoint(dir / "c.pt", *m, nullptr));
  flip_in(dir / "c.pt");
  const std::string e = ventral::test::error_text<InputError>([&] { load_checkpoint(dir / "c.pt", *m, nullptr); });
  EXPECT_NE(e.find("c.pt: damaged: the checksum of"), std::string::npos) << e;
  // Names have no checksum: a renamed directory entry (LibTorch's loader then aborted the process
  // looking for the record) is refused too.
  save_checkpoint(dir / "n.pt", *m, nullptr, TrainState{});
  auto bytes = ventral::read_file(dir / "n.pt");
  const std::string code = "code/__torch__.py";
  auto at = std::find_end(bytes.begin(), bytes.end(), code.begin(), code.end());  // the directory's copy
  ASSERT_NE(at, bytes.end());
  at[0] = 'C';
  ventral::test::write_bytes(dir / "n.pt", bytes);
  const std::string n = ventral::test::error_text<InputError>([&] { load_checkpoint(dir / "n.pt", *m, nullptr); });
  EXPECT_NE(n.find("n.pt: damaged zip archive (entry "), std::string::npos) << n;
}

// Floating-point types convert on loading, as PyTorch's load_state_dict does: a bf16 or fp16
// release loads into the fp32 model (its values rounded as stored); an integer buffer in another
// integer type is still a mismatch.
TEST(Weights, HalfAndBfloat16WeightsLoadIntoTheFloatModel) {
  ModelPtr a = trained_a_little("cortical_bl");
  for (auto type : {torch::kBFloat16, torch::kHalf}) {
    std::map<std::string, torch::Tensor> state;
    for (const auto& [name, t] : model_state(*a)) state[name] = t.is_floating_point() ? t.to(type) : t;
    ModelPtr b = create_model("cortical_bl", tiny());
    EXPECT_TRUE(load_state_dict(*b, state, "half.pt", true).empty());
    for (const auto& [name, t] : model_state(*b))
      if (t.is_floating_point()) EXPECT_TRUE(torch::equal(t, state.at(name).to(torch::kFloat))) << name;
  }
  std::map<std::string, torch::Tensor> state;
  for (const auto& [name, t] : model_state(*a)) state[name] = t.is_floating_point() ? t : t.to(torch::kInt);
  EXPECT_NE(ventral::test::error_text<InputError>([&] { load_state_dict(*a, state, "int.pt", true); })
                .find("num_batches_tracked [] Int in the file, [] Long in the model"),
            std::string::npos);
}

// Weights that overflow float32 give NaN logits, whose argmax (class 0) would be scored as a
// prediction: evaluation refuses to report a number.
TEST(Weights, NonFiniteOutputsAreAnErrorNotAnAccuracy) {
  ModelPtr m = trained_a_little("resnet20");
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : model_state(*m))
      if (name == "conv1.weight") t.fill_(3e38);
  }
  Dataset d = load_dataset("synthetic:40", Split::Test, {1, 16});
  LoaderOptions o;
  o.batch_size = 10, o.shuffle = false;
  const std::string e = ventral::test::error_text<InputError>([&] { predict(*m, d, {1}, o); });
  EXPECT_NE(e.find("the model's outputs are NaN or infinite at step 1"), std::string::npos) << e;
}

TEST(Weights, DamagedFilesLoadOrAreInputErrorsNeverAnythingElse) {
  TempDir dir;
  ModelPtr m = trained_a_little("cortical_bl");
  save_state_dict(dir / "good.pt", *m);
  std::ifstream in(dir / "good.pt", std::ios::binary);
  const std::vector<unsigned char> good((std::istreambuf_iterator<char>(in)), {});
  // Where data.pkl lies: the pickle (most of the parser's work) is damaged half of the time.
  const std::string marker = "data.pkl";
  const auto at = std::search(good.begin(), good.end(), marker.begin(), marker.end()) - good.begin();
  std::mt19937_64 rng(7);
  int loaded = 0, refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<unsigned char> bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = trial % 2 ? static_cast<size_t>(at + 30 + static_cast<int64_t>(rng() % 600)) % bytes.size()
                                   : rng() % bytes.size();
      bytes[pos] = static_cast<unsigned char>(rng());
    }
    ventral::test::write_bytes(dir / "bad.pt", bytes);
    try {
      read_state_dict(dir / "bad.pt");
      ++loaded;
    } catch (const InputError&) {
      ++refused;
    }
  }
  EXPECT_EQ(loaded + refused, 3000);
  EXPECT_GT(refused, 300);  // the damage is seen, not only survived
}

// A pickle can name a dict entry twice (a dict torch.save wrote cannot): torch.load keeps the
// second value silently; ventral refuses the file. tests/fuzz/corpus/state_dict's
// regression_duplicate_key.pt was written by torch.save with a pickle._Pickler subclass whose
// save_dict emits EMPTY_DICT, then SETITEMS of ("w", zeros(2)) and ("w", ones(2)).
TEST(Weights, AStateDictNamingAnEntryTwiceIsRefused) {
  const std::string path = std::string(VENTRAL_SOURCE_DIR) + "/tests/fuzz/corpus/state_dict/regression_duplicate_key.pt";
  const std::string error = ventral::test::error_text<InputError>([&] { read_state_dict(path); });
  EXPECT_NE(error.find("regression_duplicate_key.pt: not a state_dict: the entry w appears twice"), std::string::npos) << error;
}

// LibTorch 1.13's TorchScript reader trusts the pickle's element counts and tensor sizes: a
// storage record cut short (its zip checksum recomputed) or a tensor size edited upwards would
// load as the memory past the record, and evaluation would report numbers made from heap bytes.
// Both regression inputs in tests/fuzz/corpus/checkpoint are the corpus's cortical_b checkpoint
// rewritten with Python's zipfile: archive/data/18 (a 4608-byte weight) cut to 64 bytes, and
// V1.bottom_up.weight's size [2,1,3,3] edited to [3,1,3,3] in data.pkl over its 18-element storage.
TEST(Weights, ACheckpointWhoseTensorsReachPastTheirRecordsIsRefused) {
  ModelOptions o;
  o.width = 2;
  ModelPtr model = create_model("cortical_b", o);
  const std::string corpus = std::string(VENTRAL_SOURCE_DIR) + "/tests/fuzz/corpus/checkpoint/";
  EXPECT_NO_THROW(load_checkpoint(corpus + "cortical_b_w2_last.pt", *model, nullptr));  // the checks pass real files
  EXPECT_NO_THROW(checkpoint_config(corpus + "cortical_b_w2_last.pt"));
  const std::string short_record = ventral::test::error_text<InputError>(
      [&] { load_checkpoint(corpus + "regression_short_tensor_record", *model, nullptr); });
  EXPECT_NE(short_record.find("regression_short_tensor_record: a damaged or altered checkpoint: storage 18 holds 64 "
                              "bytes, not the 4608 its tensors need"),
            std::string::npos)
      << short_record;
  EXPECT_THROW(checkpoint_config(corpus + "regression_short_tensor_record"), InputError);
  const std::string view = ventral::test::error_text<InputError>(
      [&] { load_checkpoint(corpus + "regression_view_past_storage", *model, nullptr); });
  EXPECT_NE(view.find("regression_view_past_storage: a damaged or altered checkpoint: a tensor reaching beyond its storage"),
            std::string::npos)
      << view;
}
