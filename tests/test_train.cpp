#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "datasets/experiment.hpp"
#include "inference/evaluate.hpp"
#include "eval/sweep.hpp"
#include "helpers.hpp"
#include "inference/run_dir.hpp"
#include "models/registry.hpp"
#include "inference/checkpoint.hpp"
#include "train/schedule.hpp"
#include "train/trainer.hpp"

using namespace ventral;
using ventral::test::TempDir;

namespace {

// A small model on the synthetic shapes (cortical BLT unless `extra` names another): seconds
// per epoch. Width 4 and 3 steps where the model reads those options.
Config tiny_config(std::vector<std::string> extra = {}) {
  std::string name = "cortical_blt";
  for (const auto& e : extra)
    if (e.rfind("model.name=", 0) == 0) name = e.substr(11);
  std::vector<std::string> o = {"data.dataset=synthetic:400", "model.name=" + name, "train.epochs=2",
                                "train.batch_size=32", "train.lr=0.05", "data.augment.crop_padding=2",
                                "data.augment.hflip=true", "threads=1", "data.loader_threads=2", "train.log_every=5"};
  const auto& reads = find_model(name).options;
  for (const auto& [key, value] : {std::pair<std::string, std::string>{"model.width", "4"}, {"model.steps", "3"}})
    if (std::find(reads.begin(), reads.end(), key) != reads.end()) o.push_back(key + "=" + value);
  o.insert(o.end(), extra.begin(), extra.end());
  return Config::load("", o);
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Model weights and buffers of a run's last checkpoint.
std::vector<std::pair<std::string, torch::Tensor>> final_weights(const Config& cfg, const std::string& run) {
  ModelPtr m = create_model(cfg.get_string("model.name"), model_options(cfg, 1, 10, 28));
  load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr);
  return model_state(*m);
}

}  // namespace

TEST(Schedule, DocumentedCurves) {
  LrSchedule s;
  s.lr = 0.1;
  s.total_steps = 100;
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(99), 0.1);
  s.kind = "step";
  s.milestones = {30, 60};
  EXPECT_DOUBLE_EQ(s.at(29), 0.1);
  EXPECT_NEAR(s.at(30), 0.01, 1e-15);
  EXPECT_NEAR(s.at(60), 0.001, 1e-15);
  s.kind = "cosine";
  s.min_lr = 0.0;
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_NEAR(s.at(50), 0.05, 1e-12);
  EXPECT_NEAR(s.at(100), 0.0, 1e-12);
  s.warmup_steps = 10;
  EXPECT_NEAR(s.at(0), 0.01, 1e-12);  // (0 + 1) / 10 of the peak
  EXPECT_NEAR(s.at(4), 0.05, 1e-12);
  EXPECT_NEAR(s.at(10), 0.1, 1e-12);
  EXPECT_NEAR(s.at(55), 0.05, 1e-12);  // half way through the cosine part
  s.kind = "onecycle";
  EXPECT_NEAR(s.at(0), 0.1 / 25, 1e-12);
  EXPECT_NEAR(s.at(30), 0.1, 1e-12);
  EXPECT_NEAR(s.at(100), 0.1 / 25 / 1e4, 1e-12);
  for (int64_t t = 1; t < 30; ++t) EXPECT_GT(s.at(t), s.at(t - 1));
  for (int64_t t = 31; t <= 100; ++t) EXPECT_LT(s.at(t), s.at(t - 1));
}

TEST(Schedule, FromConfigCountsEpochsInSteps) {
  Config cfg = Config::load("", {"train.epochs=10", "train.schedule=step", "train.milestones=[5, 8]",
                                 "train.warmup_epochs=0.5", "train.lr=0.2"});
  LrSchedule s = LrSchedule::from_config(cfg, 100);
  EXPECT_EQ(s.total_steps, 1000);
  EXPECT_DOUBLE_EQ(s.warmup_steps, 50);
  EXPECT_NEAR(s.at(499), 0.2, 1e-12);
  EXPECT_NEAR(s.at(500), 0.02, 1e-12);
}

TEST(StepLoss, MatchesAHandComputation) {
  // Two steps, one image, two classes. CE = log(1 + e^(other − true)).
  std::vector<torch::Tensor> logits = {torch::tensor({{0.0, 0.0}}), torch::tensor({{2.0, 0.0}})};
  torch::Tensor label = torch::tensor({0}, torch::kInt64);
  double ce0 = std::log(2.0), ce1 = std::log(1 + std::exp(-2.0));
  EXPECT_NEAR(step_loss(logits, label, "last", {}, 0).item<double>(), ce1, 1e-6);
  EXPECT_NEAR(step_loss(logits, label, "mean", {}, 0).item<double>(), (ce0 + ce1) / 2, 1e-6);
  EXPECT_NEAR(step_loss(logits, label, "weights", {0.25, 2.0}, 0).item<double>(), 0.25 * ce0 + 2 * ce1, 1e-6);
  // Label smoothing ε: (1 − ε) CE + ε · mean over classes of −log p.
  double lp0 = std::log(1 / (1 + std::exp(-2.0))), lp1 = std::log(std::exp(-2.0) / (1 + std::exp(-2.0)));
  EXPECT_NEAR(step_loss(logits, label, "last", {}, 0.1).item<double>(), -(0.95 * lp0 + 0.05 * lp1), 1e-6);
  EXPECT_THROW(step_loss(logits, label, "weights", {1.0}, 0), InputError);
}

TEST(Train, LossFallsAndTheRunDirectoryIsComplete) {
  TempDir dir;
  std::string run = dir / "run";
  TrainReport r = train(tiny_config({"train.epochs=4", "model.width=8", "train.lr=0.1"}), run, false);
  ASSERT_TRUE(r.finished) << r.message;
  for (const char* f : {"config.yaml", "log.jsonl", "metrics.csv", "test.json", "checkpoints/last.pt",
                        "checkpoints/best.pt"})
    EXPECT_TRUE(std::filesystem::exists(run + "/" + f)) << f;
  std::string csv = read(run + "/metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "epoch,lr,train_loss,train_acc,val_loss,val_acc_step1,val_acc_step2,val_acc_step3,seconds");
  // Training loss falls from epoch 1 to epoch 4.
  std::vector<double> losses;
  std::stringstream rows(csv);
  std::string line;
  std::getline(rows, line);
  while (std::getline(rows, line)) {
    losses.push_back(std::stod(split_csv_row(line).at(2)));
  }
  ASSERT_EQ(losses.size(), 4u);
  EXPECT_LT(losses[3], losses[0] * 0.8);
  EXPECT_EQ(r.test.steps, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.test.n, 100);
  EXPECT_GT(r.test.accuracy.back(), 0.3);  // 10 classes: chance is 0.1
  // The resolved config records the normalisation used and loads back.
  Config saved = Config::load(run + "/config.yaml");
  EXPECT_EQ(saved.get_floats("data.mean").size(), 1u);
  EXPECT_EQ(saved.get_string("model.name"), "cortical_blt");
  // A second run into the same directory must not clobber it.
  EXPECT_THROW(train(tiny_config(), run, false), InputError);
}

TEST(Train, TinyModelOverfitsATinySet) {
  TempDir dir;
  Config cfg = tiny_config({"data.dataset=synthetic:40", "data.val_fraction=0", "model.name=resnet20",
                            "model.width=8", "train.epochs=60", "train.batch_size=8", "train.optimizer=adam",
                            "train.lr=0.003", "train.weight_decay=0", "train.schedule=constant",
                            "data.augment.crop_padding=0", "data.augment.hflip=false"});
  TrainReport r = train(cfg, dir / "run", false);
  ASSERT_TRUE(r.finished) << r.message;
  std::string csv = read(dir / "run/metrics.csv");
  std::string last = csv.substr(csv.rfind('\n', csv.size() - 2) + 1);
  EXPECT_DOUBLE_EQ(std::stod(split_csv_row(last).at(3)), 1.0) << last;  // train accuracy in the final epoch
}

TEST(Train, ResumeIsBitIdenticalToAnUninterruptedRun) {
  TempDir dir;
  Config cfg = tiny_config();
  ASSERT_TRUE(train(cfg, dir / "full", false).finished);
  // Interrupt mid-way through the first epoch (11 batches an epoch), then resume.
  TrainReport stopped = train(tiny_config({"train.stop_after_steps=7"}), dir / "split", false);
  EXPECT_FALSE(stopped.finished);
  EXPECT_EQ(stopped.exit_status, kExitStoppedAfterSteps);
  Config again = Config::load(dir / "split/config.yaml", {"train.stop_after_steps=0"});
  TrainReport resumed = train(again, dir / "split", true);
  ASSERT_TRUE(resumed.finished) << resumed.message;
  auto a = final_weights(cfg, dir / "full");
  auto b = final_weights(cfg, dir / "split");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  EXPECT_EQ(read(dir / "full/test.json").substr(0, 200).find("accuracy") != std::string::npos, true);
  EXPECT_EQ(resumed.test.accuracy, train(cfg, dir / "full2", false).test.accuracy);
}

TEST(Train, CheckpointRoundTripRestoresEverything) {
  TempDir dir;
  Config cfg = tiny_config();
  ModelPtr m = create_model("cortical_blt", model_options(cfg, 1, 10, 28));
  torch::optim::SGD opt(m->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  auto loss = m->forward(torch::randn({4, 1, 28, 28}), 3).back().sum();
  loss.backward();
  opt.step();
  TrainState s;
  s.epoch = 3;
  s.step_in_epoch = 5;
  s.global_step = 38;
  s.best_val = 0.75;
  s.metrics_csv = "epoch,lr\n1,0.1\n";
  save_checkpoint(dir / "c.pt", *m, &opt, s);
  torch::manual_seed(99);
  ModelPtr m2 = create_model("cortical_blt", model_options(cfg, 1, 10, 28));
  torch::optim::SGD opt2(m2->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  TrainState back = load_checkpoint(dir / "c.pt", *m2, &opt2);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.step_in_epoch, 5);
  EXPECT_EQ(back.global_step, 38);
  EXPECT_DOUBLE_EQ(back.best_val, 0.75);
  EXPECT_EQ(back.metrics_csv, s.metrics_csv);
  auto p1 = m->parameters(), p2 = m2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i]));
  // Momentum buffers came back too: one more identical step keeps the weights identical.
  for (auto* o : {&opt, &opt2}) o->zero_grad();
  m->forward(torch::ones({4, 1, 28, 28}), 3).back().sum().backward();
  m2->forward(torch::ones({4, 1, 28, 28}), 3).back().sum().backward();
  opt.step();
  opt2.step();
  p1 = m->parameters(), p2 = m2->parameters();
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i]));
  // A truncated checkpoint is a clear error naming the file.
  std::filesystem::resize_file(dir / "c.pt", 100);
  try {
    load_checkpoint(dir / "c.pt", *m2, &opt2);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("c.pt: damaged zip archive (no end-of-directory record: truncated?)"),
              std::string::npos) << e.what();
  }
}

TEST(Train, NanLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  // One good epoch of CORnet-Z, which has no normalisation ...
  ASSERT_TRUE(train(tiny_config({"model.name=cornet_z", "train.epochs=1", "train.lr=0.01"}), dir / "run", false).finished);
  std::string good = read(dir / "run/checkpoints/last.pt");
  // ... then a second epoch at lr = 100, where its activations overflow within a few steps.
  Config hot = Config::load(dir / "run/config.yaml", {"train.epochs=2", "train.lr=100", "train.schedule=constant"});
  TrainReport r = train(hot, dir / "run", true);
  EXPECT_FALSE(r.finished);
  EXPECT_EQ(r.exit_status, kExitDiverged);
  EXPECT_NE(r.message.find("loss became"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("at epoch 2, step"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("last.pt"), std::string::npos) << r.message;
  EXPECT_EQ(read(dir / "run/checkpoints/last.pt"), good);  // the last good checkpoint is untouched
}

// Batch norm in training normalises with each batch's own statistics, so a running variance
// that overflowed left the loss finite: the run ended "finished" with NaN in last.pt.
TEST(Train, NonFiniteBatchNormStatisticsAreDivergenceNotAFinishedRun) {
  TempDir dir;
  const Config hot = tiny_config({"model.name=cortical_b", "train.epochs=3", "train.lr=100", "train.schedule=constant"});
  TrainReport r = train(hot, dir / "run", false);
  EXPECT_FALSE(r.finished);
  EXPECT_EQ(r.exit_status, kExitDiverged);
  EXPECT_NE(r.message.find("became NaN or infinite"), std::string::npos) << r.message;
  EXPECT_FALSE(std::filesystem::exists(dir / "run/test.json"));
  // Whatever checkpoint was kept holds only finite numbers.
  if (std::filesystem::exists(dir / "run/checkpoints/last.pt")) {
    for (const auto& [name, t] : final_weights(hot, dir / "run")) {
      if (t.is_floating_point()) {
        EXPECT_TRUE(torch::isfinite(t).all().item<bool>()) << name;
      }
    }
  }
}

TEST(Train, SigtermLeavesALoadableCheckpoint) {
  TempDir dir;
  std::string run = dir / "run";
  // Start a long run in the background, wait until it has logged steps, then SIGTERM it.
  ventral::test::write_text(dir / "long.yaml", "train:\n  epochs: 50\n");
  std::string script = std::string(VENTRAL_BINARY) + " train " + (dir / "long.yaml") + " --run-dir " + run +
                       " data.dataset=synthetic:2000 model.name=cortical_blt model.width=8 "
                       "train.batch_size=16 train.log_every=2 threads=1 "
                       "2>/dev/null & pid=$!; "
                       "for i in $(seq 600); do grep -q step " + run + "/log.jsonl 2>/dev/null && break; sleep 0.1; done; "
                       "kill -TERM $pid; wait $pid; echo status=$?";
  auto r = ventral::test::run_shell(script);
  EXPECT_NE(r.output.find("status=143"), std::string::npos) << r.output;
  ASSERT_TRUE(std::filesystem::exists(run + "/checkpoints/last.pt"));
  Config cfg = Config::load(run + "/config.yaml");
  ModelPtr m = create_model("cortical_blt", model_options(cfg, 1, 10, 28));
  TrainState s = load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr);
  EXPECT_GT(s.global_step, 0);
}

TEST(Train, BadInputIsAnInputError) {
  TempDir dir;
  EXPECT_THROW(train(tiny_config({"model.name=resnet21"}), dir / "a", false), InputError);
  EXPECT_THROW(train(tiny_config({"data.mean=[0.1, 0.2]"}), dir / "b", false), InputError);
  EXPECT_THROW(train(tiny_config(), dir / "none", true), InputError);
  EXPECT_THROW(train(tiny_config({"train.batch_size=5000"}), dir / "c", false), InputError);
  auto message = [&](const std::vector<std::string>& options) {
    try {
      train(tiny_config(options), dir / "e", false);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(trained)");
  };
  EXPECT_NE(message({"train.min_lr=1"}).find("train.min_lr 1 is above train.lr 0.05"), std::string::npos);
  EXPECT_NE(message({"train.step_loss=weights", "train.step_weights=[0, 0, 0]"}).find("positive sum"), std::string::npos);
  EXPECT_NE(message({"train.step_weights=[1, 2, 3]"}).find("train.step_loss is 'mean'"), std::string::npos);
  // Step weights must fit the readouts, and mean something: a feed-forward model reads out once.
  EXPECT_NE(message({"train.step_loss=weights", "train.step_weights=[1, 2]"}).find("has 2 values but cortical_blt reads out at 3 steps"),
            std::string::npos);
  EXPECT_NE(message({"model.name=cortical_b", "train.step_loss=weights", "train.step_weights=[1]"})
                .find("cortical_b reads out once (one step): the weights would be ignored"),
            std::string::npos);
  // A second YAML document would be ignored: refused.
  ventral::test::write_text(dir / "two_docs.yaml", "train:\n  epochs: 2\n---\ntrain:\n  epochs: 5\n");
  EXPECT_NE(ventral::test::error_text<InputError>([&] { Config::load(dir / "two_docs.yaml"); }).find("holds more than one YAML document"),
            std::string::npos);
  try {  // one class: nothing to classify (it would "train" to 100%)
    train(tiny_config({"data.dataset=synthetic:1", "data.val_fraction=0"}), dir / "d", false);
    ADD_FAILURE() << "a one-class training set was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds 1 class(es); training a classifier needs images of at least 2"),
              std::string::npos) << e.what();
  }
}

// One number, whichever path computes it (issue 20). After real training (3 epochs of optimizer
// steps and train-mode batch-norm updates, validation run between them), every number the
// trainer reports must equal a fresh evaluation of the checkpoint it wrote: test.json against
// `ventral eval` of last.pt, metrics.csv's last validation row against last.pt on the
// validation split, and best.pt must be the epoch with the highest validation accuracy.
// Counts of correct images are compared, so equality is exact.
void expect_trainer_numbers_equal_fresh_evaluations(const std::string& model, const std::string& precision,
                                                    const std::vector<std::string>& extra = {}) {
  const std::string where = model + " " + precision + " " + join(extra, " ");
  TempDir dir;
  const std::string run = dir / "run";
  std::vector<std::string> options = {"model.name=" + model, "data.dataset=synthetic:320", "train.epochs=3",
                                      "data.val_fraction=0.25", "train.lr=0.1", "precision=" + precision};
  options.insert(options.end(), extra.begin(), extra.end());
  TrainReport r = train(tiny_config(options), run, false);
  ASSERT_TRUE(r.finished) << r.message;
  auto count = [](double fraction, int64_t n) { return std::llround(fraction * static_cast<double>(n)); };

  // test.json against `ventral eval` (results.csv: family,severity,step,accuracy,n,...).
  nlohmann::json test = nlohmann::json::parse(read(run + "/test.json"));
  EXPECT_EQ(test["precision"], precision) << where;
  EXPECT_EQ(Config::load(run + "/config.yaml").get_string("precision"), precision) << where;
  auto ev = ventral::test::run_ventral("eval " + run + " --out " + (dir / "eval"));
  ASSERT_EQ(ev.status, 0) << ev.output;
  // ventral eval ran the run in the precision it trained in, unless told otherwise.
  EXPECT_EQ(nlohmann::json::parse(read(dir / "eval/summary.json"))["precision"], precision) << where;
  if (precision != "fp32") {
    auto fp32 = ventral::test::run_ventral("eval " + run + " --precision fp32 --out " + (dir / "eval_fp32"));
    ASSERT_EQ(fp32.status, 0) << fp32.output;
    EXPECT_EQ(nlohmann::json::parse(read(dir / "eval_fp32/summary.json"))["precision"], "fp32") << where;
  }
  std::map<int64_t, int64_t> eval_correct;
  std::stringstream rows(read(dir / "eval/results.csv"));
  std::string line;
  std::getline(rows, line);
  while (std::getline(rows, line)) {
    auto f = split_csv_row(line);
    ASSERT_EQ(std::stoll(f.at(4)), test["n"].get<int64_t>()) << line;
    if (f.at(0) == "clean") eval_correct[std::stoll(f.at(2))] = count(std::stod(f.at(3)), std::stoll(f.at(4)));
  }
  auto test_steps = test["steps"].get<std::vector<int64_t>>();
  auto test_acc = test["accuracy"].get<std::vector<double>>();
  ASSERT_FALSE(test_steps.empty());
  for (size_t k = 0; k < test_steps.size(); ++k) {
    ASSERT_TRUE(eval_correct.count(test_steps[k])) << "ventral eval has no row for step " << test_steps[k];
    EXPECT_EQ(count(test_acc[k], test["n"]), eval_correct[test_steps[k]])
        << where << " step " << test_steps[k] << ": test.json " << test_acc[k];
  }

  // metrics.csv's validation accuracies against fresh evaluations on the validation split.
  Config saved = Config::load(run + "/config.yaml");
  ExperimentData data = load_experiment_data(saved, false);
  const int64_t n_val = static_cast<int64_t>(data.split.val.size());
  ASSERT_GT(n_val, 0);
  auto val_correct = [&](const std::string& checkpoint) {
    LoadedRun loaded = load_run(run, run + "/checkpoints/" + checkpoint);
    BatchLoader val(data.train, data.split.val, loader_options(saved, data, false));
    std::vector<int64_t> correct;
    for (double a : evaluate(*loaded.model, val, loaded.model->default_steps()).accuracy)
      correct.push_back(count(a, n_val));
    return correct;
  };
  std::stringstream csv(read(run + "/metrics.csv"));
  std::getline(csv, line);
  const auto header = split_csv_row(line);
  std::vector<std::vector<int64_t>> logged;  // per epoch, per step
  while (std::getline(csv, line)) {
    auto f = split_csv_row(line);
    std::vector<int64_t> by_step;
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c].rfind("val_acc_step", 0) == 0) by_step.push_back(count(std::stod(f.at(c)), n_val));
    logged.push_back(by_step);
  }
  ASSERT_EQ(logged.size(), 3u);
  EXPECT_EQ(logged.back(), val_correct("last.pt")) << where << ": metrics.csv's last epoch vs last.pt";

  // best.pt: the first epoch with the highest validation accuracy at the readout step.
  size_t best = 0;
  for (size_t e = 1; e < logged.size(); ++e)
    if (logged[e].back() > logged[best].back()) best = e;
  ModelPtr probe = create_model(model, model_options(saved, 1, 10, 28));
  EXPECT_EQ(load_checkpoint(run + "/checkpoints/best.pt", *probe, nullptr).epoch, static_cast<int64_t>(best) + 1)
      << where << ": best.pt is not the best epoch";
  // Whatever the precision, checkpoints hold fp32.
  for (const auto& t : probe->named_parameters()) EXPECT_EQ(t.value().scalar_type(), torch::kFloat) << where << " " << t.key();
  for (const auto& t : probe->named_buffers())
    if (t.value().is_floating_point()) EXPECT_EQ(t.value().scalar_type(), torch::kFloat) << where << " " << t.key();
  EXPECT_EQ(val_correct("best.pt"), logged[best]) << where << ": best.pt vs its metrics.csv row";
}

class EveryModelTrained : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryModelTrained, TrainerNumbersEqualFreshEvaluationsOfItsCheckpoints) {
  Config cfg = tiny_config({"model.name=" + GetParam()});
  if (count_parameters(*create_model(GetParam(), model_options(cfg, 1, 10, 28))) > 40'000'000)
    GTEST_SKIP() << "CORnet-S-sized (100 s on 2 cores): reading out once is covered by shared_resnet";
  expect_trainer_numbers_equal_fresh_evaluations(GetParam(), "fp32");
}

// data.normalize: false: training feeds pixel / 255, and so must every evaluation (`ventral
// eval` once applied a mean and std given beside it: 71% at training, 10% in eval; giving them
// with normalize: false is now refused, tests/test_cli.cpp).
TEST(Train, WithoutNormalisationEvaluationMatchesTraining) {
  expect_trainer_numbers_equal_fresh_evaluations("cortical_b", "fp32", {"data.normalize=false"});
}

// The same under bf16 (emulated where the CPU lacks it): validation, test and `ventral eval`
// (which runs a run in the precision it trained in) all go through infer(), so they agree
// exactly; the checkpoints hold fp32 weights.
TEST(Bf16Trained, TrainerNumbersEqualFreshEvaluationsAndCheckpointsAreFp32) {
  for (const std::string model : {"resnet20", "cortical_blt"}) {
    expect_trainer_numbers_equal_fresh_evaluations(model, "bf16");
  }
}

INSTANTIATE_TEST_SUITE_P(Registry, EveryModelTrained, ::testing::ValuesIn(list_models()),
                         ventral::test::model_param_name);

// Issue 17: a checkpoint loads only into the model it was saved from (names, shapes, dtypes),
// so a config.yaml edited after training is an error, not a silently different model.
TEST(Train, ACheckpointLoadsOnlyIntoTheModelItWasSavedFrom) {
  TempDir dir;
  auto save = [&](const std::string& name, const std::vector<std::string>& options) {
    ModelPtr m = create_model(name, model_options(tiny_config(options), 1, 10, 28));
    save_checkpoint(dir / (name + ".pt"), *m, nullptr, TrainState{});
  };
  auto error_loading = [&](const std::string& name, const std::vector<std::string>& options) {
    ModelPtr m = create_model(name, model_options(tiny_config(options), 1, 10, 28));
    try {
      load_checkpoint(dir / (name + ".pt"), *m, nullptr);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(loaded)");
  };
  save("cortical_blt", {"model.name=cortical_blt", "model.width=4", "model.steps=3"});
  EXPECT_EQ(error_loading("cortical_blt", {"model.name=cortical_blt", "model.width=4", "model.steps=3"}), "(loaded)");
  std::string wider = error_loading("cortical_blt", {"model.name=cortical_blt", "model.width=8", "model.steps=3"});
  EXPECT_NE(wider.find("do not fit the model"), std::string::npos) << wider;
  EXPECT_NE(wider.find("wrong shape or type: "), std::string::npos) << wider;
  EXPECT_NE(wider.find("IT.bottom_up.weight [32,16,3,3] Float in the file, [64,32,3,3] Float in the model"), std::string::npos) << wider;
  std::string fewer_steps = error_loading("cortical_blt", {"model.name=cortical_blt", "model.width=4", "model.steps=2"});
  EXPECT_NE(fewer_steps.find("unexpected: "), std::string::npos) << fewer_steps;
  save("resnet20", {"model.name=resnet20", "model.width=4"});
  std::string shortcut = error_loading("resnet20", {"model.name=resnet20", "model.width=4", "model.shortcut=A"});
  EXPECT_NE(shortcut.find("unexpected: "), std::string::npos) << shortcut;
  EXPECT_EQ(shortcut.find("missing"), std::string::npos) << shortcut;
}

// Issue 17: a new run writes only into a new or empty folder, or over an unstarted run of the
// same config; `--resume` continues the run as configured and refuses a config that would
// train differently, naming the keys, while speed-only keys may change.
TEST(Train, RunFoldersAreOnlyWrittenWhenTheyHoldTheSameRun) {
  TempDir dir;
  ventral::test::write_text(dir / "foreign/notes.txt", "mine\n");
  try {
    train(tiny_config(), dir / "foreign", false);
    ADD_FAILURE() << "wrote into a foreign folder";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not empty and holds no ventral run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read(dir / "foreign/notes.txt"), "mine\n");
  tiny_config({"train.epochs=7"}).save(dir / "other/config.yaml");
  try {
    train(tiny_config(), dir / "other", false);
    ADD_FAILURE() << "overwrote another run's config";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train.epochs: 7 -> 2"), std::string::npos) << e.what();
  }
  tiny_config({"threads=2"}).save(dir / "same/config.yaml");  // the same run, stopped before a checkpoint
  EXPECT_TRUE(train(tiny_config(), dir / "same", false).finished);

  // --resume through the CLI: a run stopped after 3 steps.
  const std::string run = dir / "stopped";
  tiny_config({"train.stop_after_steps=3"}).save(dir / "stop.yaml");
  auto first = ventral::test::run_ventral("train " + (dir / "stop.yaml") + " --run-dir " + run);
  ASSERT_EQ(first.status, 75) << first.output;
  auto changed = ventral::test::run_ventral("train --resume --run-dir " + run + " train.epochs=5");
  EXPECT_EQ(changed.status, 2) << changed.output;
  EXPECT_NE(changed.output.find("would train differently"), std::string::npos) << changed.output;
  EXPECT_NE(changed.output.find("train.epochs: 2 -> 5"), std::string::npos) << changed.output;
  tiny_config({"train.lr=0.5"}).save(dir / "other.yaml");
  auto other = ventral::test::run_ventral("train " + (dir / "other.yaml") + " --resume --run-dir " + run);
  EXPECT_EQ(other.status, 2) << other.output;
  EXPECT_NE(other.output.find("train.lr: 0.05 -> 0.5"), std::string::npos) << other.output;
  auto faster = ventral::test::run_ventral("train --resume --run-dir " + run + " threads=2 train.stop_after_steps=0");
  EXPECT_EQ(faster.status, 0) << faster.output;
  EXPECT_TRUE(std::filesystem::exists(run + "/test.json"));
}

// Issue 17: evaluation refuses what has no meaning or cannot be right, instead of exit 0.
TEST(Train, EvaluationRefusesMeaninglessOptionsAndDamagedRuns) {
  TempDir dir;
  const std::string run = dir / "run";
  ASSERT_TRUE(train(tiny_config({"model.name=cortical_b", "train.epochs=1"}), run, false).finished);
  auto expect_error = [&](const std::string& args, const std::string& needle) {
    auto r = ventral::test::run_ventral("eval " + run + " --out " + (dir / "eval") + " " + args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
  };
  expect_error("--steps 1:3", "cortical_b is feed-forward (one step); omit --steps");
  expect_error("--exit-threshold 0.5", "cortical_b is feed-forward (one step), so there is no step to exit early at");
  ventral::test::write_text(run + "/input.json", "{\"channels\": 1, \"image_size\": 100000}\n");
  expect_error("", "input.json: channels must be 1-64 and image_size 8-4096");
  ventral::test::write_text(run + "/input.json", "{\"channels\": 1.5, \"image_size\": 28}\n");
  expect_error("", "input.json: channels and image_size must be whole numbers");
  ventral::test::write_text(run + "/input.json", "{\"channels\": 1, \"image_size\": 28}\n");
  expect_error("--exit-threshold ''", "--exit-threshold: an empty value");
  expect_error("--features-n 10", "--features-n: only with --features");
  // --out on a folder of other files (the run's checkpoints): refused, nothing replaced.
  auto into_checkpoints = ventral::test::run_ventral("eval " + run + " --out " + run + "/checkpoints");
  EXPECT_EQ(into_checkpoints.status, 2) << into_checkpoints.output;
  EXPECT_NE(into_checkpoints.output.find("holds files but no evaluation"), std::string::npos) << into_checkpoints.output;
  // Run files edited after training, in ways the weights' shapes cannot reveal, disagree with
  // model.json (written at training): an error, not a silently different model.
  const std::string classes = read(run + "/classes.txt"), config = read(run + "/config.yaml");
  std::vector<std::string> names;
  std::stringstream lines(classes);
  for (std::string l; std::getline(lines, l);) names.insert(names.begin(), l);
  ventral::test::write_text(run + "/classes.txt", join(names, "\n") + "\n");
  expect_error("", "model.json, written when the run trained, disagrees");
  expect_error("", "classes[0]");
  ventral::test::write_text(run + "/classes.txt", classes);
  Config edited = Config::load(run + "/config.yaml");
  edited.set("data.mean=[0.25]", "test");
  edited.save(run + "/config.yaml");
  expect_error("", "normalisation.mean[0]");
  edited.set("data.std=[]", "test");
  edited.save(run + "/config.yaml");
  expect_error("", "key 'data.std' has 0 values for 1-channel images (the model was trained on them)");
  ventral::test::write_text(run + "/config.yaml", config);
  // A damaged checkpoint (NaN weights) is refused, not scored as "every image is class 0".
  Config cfg = Config::load(run + "/config.yaml");
  ModelPtr m = create_model("cortical_b", model_options(cfg, 1, 10, 28));
  load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr);
  {
    torch::NoGradGuard no_grad;
    m->parameters().front().fill_(NAN);
  }
  save_checkpoint(run + "/checkpoints/last.pt", *m, nullptr, TrainState{});
  expect_error("", "holds NaN or infinite values; the checkpoint is damaged");
}

// Issue 14: training under perturbation. The draws depend on (seed, epoch, index) only, so a
// run interrupted mid-epoch and resumed ends bit-identical; validation measures the trained
// task, and test.json's accuracy under the training perturbation equals a fresh evaluation.
TEST(Train, ResumeUnderTrainingPerturbationIsBitIdentical) {
  TempDir dir;
  const std::vector<std::string> perturb = {"data.augment.perturb=debris:1-5,block:2-4", "data.augment.perturb_fraction=0.7"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.end(), perturb.begin(), perturb.end());
    return tiny_config(extra);
  };
  Config cfg = with({});
  ASSERT_TRUE(train(cfg, dir / "full", false).finished);
  TrainReport stopped = train(with({"train.stop_after_steps=7"}), dir / "split", false);
  EXPECT_FALSE(stopped.finished);
  TrainReport resumed = train(Config::load(dir / "split/config.yaml", {"train.stop_after_steps=0"}), dir / "split", true);
  ASSERT_TRUE(resumed.finished) << resumed.message;
  auto a = final_weights(cfg, dir / "full");
  auto b = final_weights(cfg, dir / "split");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  // The same recipe on clean images learns other weights: the perturbation was really applied.
  ASSERT_TRUE(train(tiny_config(), dir / "clean", false).finished);
  auto c = final_weights(cfg, dir / "clean");
  EXPECT_FALSE(torch::equal(a.front().second, c.front().second));

  // test.json: clean accuracy as before, plus the training perturbation's, which a fresh
  // evaluation through the task loader reproduces exactly.
  nlohmann::json test = nlohmann::json::parse(read(dir / "full/test.json"));
  ASSERT_TRUE(test.contains("train_perturbation")) << test.dump();
  EXPECT_EQ(test["train_perturbation"]["spec"], "debris:1-5,block:2-4");
  EXPECT_DOUBLE_EQ(test["train_perturbation"]["fraction"].get<double>(), 0.7);
  LoadedRun run = load_run(dir / "full");
  ExperimentData data = load_experiment_data(run.cfg);
  BatchLoader task(data.test, {}, task_loader_options(run.cfg, data));
  StepMetrics fresh = evaluate(*run.model, task, run.model->default_steps());
  EXPECT_EQ(fresh.accuracy, test["train_perturbation"]["accuracy"].get<std::vector<double>>());
  // Validation ran on the perturbed mix: the last epoch's val_acc in metrics.csv (trained
  // step) equals a fresh evaluation of last.pt on the task loader, and differs from clean.
  BatchLoader val(data.train, data.split.val, task_loader_options(run.cfg, data));
  BatchLoader val_clean(data.train, data.split.val, loader_options(run.cfg, data, false));
  const std::string metrics = read(dir / "full/metrics.csv");
  std::vector<std::string> last_row = split_csv_row(metrics.substr(metrics.rfind('\n', metrics.size() - 2) + 1));
  const double logged = std::stod(last_row.at(last_row.size() - 2));  // val_acc at the last step, before seconds
  const StepMetrics fresh_val = evaluate(*run.model, val, run.model->default_steps());
  EXPECT_NEAR(logged, fresh_val.accuracy.back(), 1e-6);
  auto images = [](BatchLoader& l) {
    l.start_epoch(0);
    return l.next()->images;
  };
  EXPECT_FALSE(torch::equal(images(val), images(val_clean)));

  // A bad spec names the key.
  EXPECT_NE(ventral::test::error_text<InputError>([&] { train(tiny_config({"data.augment.perturb=debris:9"}), dir / "bad", false); })
                .find("key 'data.augment.perturb': bad severities in 'debris:9'"),
            std::string::npos);
  EXPECT_NE(ventral::test::error_text<InputError>([&] { tiny_config({"data.augment.perturb_fraction=1.5"}); })
                .find("data.augment.perturb_fraction"),
            std::string::npos);
}

// Issue 17: kill -9 at random moments (during steps, checkpoint writes, validation), five
// times, resuming each time: the last checkpoint always loads and the final weights are
// bit-identical to an uninterrupted run's.
TEST(Train, KillNineAtRandomMomentsThenResumeEndsBitIdentical) {
  TempDir dir;
  ventral::test::write_text(dir / "cfg.yaml",
                            "seed: 3\nthreads: 1\ndata:\n  dataset: synthetic:400\n  loader_threads: 2\n"
                            "  augment:\n    crop_padding: 2\n    hflip: true\nmodel:\n  name: cortical_blt\n  width: 4\n"
                            "  steps: 3\ntrain:\n  epochs: 60\n  batch_size: 32\n  lr: 0.05\n  log_every: 3\n");
  const std::string cfg = dir / "cfg.yaml", run = dir / "killed";
  auto full = ventral::test::run_ventral("train " + cfg + " --run-dir " + (dir / "full"));
  ASSERT_EQ(full.status, 0) << full.output;
  std::mt19937 rng(20261130);
  // Seconds after the start (start-up takes ~0.5 s). The run needs ~15 s of work (60 short
  // epochs, a checkpoint after each), more than five attempts can use up, so every attempt is
  // killed mid-run whatever the machine's speed within a factor of two.
  std::uniform_real_distribution<double> when(0.6, 2.0);
  int killed = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const bool started = std::filesystem::exists(run + "/checkpoints/last.pt");
    if (started) {  // whatever moment the kill hit, the checkpoint it left loads
      Config c = Config::load(cfg);
      ModelPtr m = create_model("cortical_blt", model_options(c, 1, 10, 28));
      EXPECT_NO_THROW(load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr)) << "after kill " << attempt;
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.2f", when(rng));
    auto r = ventral::test::run_shell("timeout -s KILL " + std::string(seconds) + " " + VENTRAL_BINARY + " train " +
                                      (started ? "--run-dir " + run + " --resume" : cfg + " --run-dir " + run));
    if (r.status == 137) ++killed;
    else ASSERT_EQ(r.status, 0) << r.output;  // finished before the kill came
  }
  EXPECT_GE(killed, 4);
  auto rest = ventral::test::run_ventral(std::filesystem::exists(run + "/checkpoints/last.pt")
                                             ? "train --run-dir " + run + " --resume"
                                             : "train " + cfg + " --run-dir " + run);
  ASSERT_EQ(rest.status, 0) << rest.output;
  Config c = Config::load(cfg);
  auto a = final_weights(c, dir / "full"), b = final_weights(c, run);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  EXPECT_EQ(nlohmann::json::parse(read(dir / "full/test.json"))["accuracy"],
            nlohmann::json::parse(read(run + "/test.json"))["accuracy"]);
  // No temporary file is mistaken for a result: every file left is one ventral documents or a
  // .tmp the next write replaces.
  std::set<std::string> documented = {"last.pt", "best.pt"};
  for (const auto& f : RunDir(run).files()) documented.insert(std::filesystem::path(f).filename().string());
  for (const auto& f : std::filesystem::recursive_directory_iterator(run)) {
    const std::string name = f.path().filename().string();
    EXPECT_TRUE(f.is_directory() || name.find(".tmp.") != std::string::npos || documented.count(name)) << name;
  }
}

// Issue 17: a full disk. On a small tmpfs (mounted when the test runs as root), a resumed run
// whose checkpoint no longer fits exits 2 with "no space left", and the previous last.pt loads.
TEST(Train, AFullDiskIsAnInputErrorAndThePreviousCheckpointSurvives) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  TempDir dir;
  const std::string disk = dir / "disk";
  std::filesystem::create_directories(disk);
  if (ventral::test::run_shell("mount -t tmpfs -o size=2m tmpfs " + disk).status != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    std::string path;
    ~Unmount() { ventral::test::run_shell("umount " + path); }
  } unmount{disk};
  ventral::test::write_text(dir / "cfg.yaml",
                            "threads: 1\ndata:\n  dataset: synthetic:400\nmodel:\n  name: cortical_blt\n  width: 4\n"
                            "  steps: 3\ntrain:\n  epochs: 3\n  batch_size: 32\n");
  const std::string run = disk + "/run";
  auto first = ventral::test::run_ventral("train " + (dir / "cfg.yaml") + " --run-dir " + run + " train.stop_after_steps=15");
  ASSERT_EQ(first.status, kExitStoppedAfterSteps) << first.output;
  const std::string before = read(run + "/checkpoints/last.pt");
  ASSERT_GT(before.size(), 10000u);
  // Fill the disk, then give back 8 KiB: room for the small files and log lines, not for a checkpoint.
  ventral::test::run_shell("dd if=/dev/zero of=" + disk + "/filler bs=4k 2>/dev/null; truncate -s -8K " + disk + "/filler");
  auto full = ventral::test::run_ventral("train --run-dir " + run + " --resume");
  EXPECT_EQ(full.status, 2) << full.output;
  EXPECT_NE(full.output.find("error: cannot write " + run + "/checkpoints/"), std::string::npos) << full.output;
  EXPECT_NE(full.output.find("no space left on device"), std::string::npos) << full.output;
  size_t errors = 0;  // one error line (progress lines aside), the last thing printed
  for (size_t at = full.output.find("error:"); at != std::string::npos; at = full.output.find("error:", at + 1)) ++errors;
  EXPECT_EQ(errors, 1u) << full.output;
  EXPECT_EQ(full.output.rfind("error:"), full.output.rfind('\n', full.output.size() - 2) + 1) << full.output;
  EXPECT_EQ(read(run + "/checkpoints/last.pt"), before);
  Config c = Config::load(dir / "cfg.yaml");
  ModelPtr m = create_model("cortical_blt", model_options(c, 1, 10, 28));
  EXPECT_NO_THROW(load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr));
  // With space again, the run resumes and finishes.
  std::filesystem::remove(disk + "/filler");
  auto again = ventral::test::run_ventral("train --run-dir " + run + " --resume train.stop_after_steps=0");
  EXPECT_EQ(again.status, 0) << again.output;
}
