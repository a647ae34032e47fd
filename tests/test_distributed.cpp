// Data-parallel training (issue 13): the launcher environment, the sharded loaders, synchronised
// batch norm, and end to end through the binary: 2 ranks equal 1 process, determinism, the
// environment torchrun sets by hand and through torchrun itself, errors, a killed rank, resume.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "core/config.hpp"
#include "core/error.hpp"
#include "datasets/loader.hpp"
#include "helpers.hpp"
#include "inference/checkpoint.hpp"
#include "models/layers.hpp"
#include "models/registry.hpp"
#include "train/distributed.hpp"

using namespace ventral;
using ventral::test::run_shell;
using ventral::test::run_ventral;
using ventral::test::TempDir;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

std::string env_error(std::map<std::string, std::string> vars) {
  return ventral::test::error_text<InputError>([&] { read_dist_env(env_of(vars)); });
}

// A collective over threads of this process: each thread is a "rank"; the sum is formed when
// every thread has arrived. Lets synchronised batch norm be checked without sockets.
class ThreadCollective : public Collective {
 public:
  explicit ThreadCollective(int ranks) : ranks_(ranks) {}
  void all_reduce_sum(std::vector<torch::Tensor>& tensors) override {
    std::unique_lock<std::mutex> lock(mutex_);
    const int generation = generation_;
    if (arrived_ == 0) {
      sum_.clear();
      for (const auto& t : tensors) sum_.push_back(t.clone());
    } else {
      for (size_t i = 0; i < tensors.size(); ++i) sum_[i] += tensors[i];
    }
    if (++arrived_ == ranks_) {
      result_ = sum_;
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
    for (size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(result_[i]);
  }
  int64_t size() const override { return ranks_; }

 private:
  int ranks_, arrived_ = 0, generation_ = 0;
  std::vector<torch::Tensor> sum_, result_;
  std::mutex mutex_;
  std::condition_variable cv_;
};

Dataset numbered(int n) {
  Dataset d;
  d.height = d.width = 2;
  d.channels = 1;
  d.classes = {"a", "b"};
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 4; ++p) d.pixels.push_back(static_cast<uint8_t>(i));
    d.labels.push_back(i % 2);
  }
  return d;
}

std::vector<std::vector<int64_t>> epoch_indices(BatchLoader& loader, int64_t epoch) {
  std::vector<std::vector<int64_t>> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) out.push_back(b->indices);
  return out;
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A tiny recurrent model with a batch norm per step (cortical BLT, width 4, 3 steps) on 400
// synthetic images: 11 steps of 32 images per epoch.
std::string write_config(const TempDir& dir, const std::string& extra = "") {
  const std::string path = dir / "ddp.yaml";
  ventral::test::write_text(path,
                            "seed: 3\nthreads: 1\ndata:\n  dataset: synthetic:400\n  loader_threads: 1\n"
                            "  augment:\n    crop_padding: 2\n    hflip: true\n"
                            "model:\n  name: cortical_blt\n  width: 4\n  steps: 3\n"
                            "train:\n  epochs: 2\n  batch_size: 32\n  lr: 0.05\n  log_every: 5\n"
                            "  distributed:\n    timeout_s: 60\n" +
                                extra);
  return path;
}

// A run's model with its last checkpoint loaded, and the checkpoint's position.
std::pair<ModelPtr, TrainState> last_checkpoint(const std::string& run) {
  Config cfg = Config::load(run + "/config.yaml");
  ModelPtr m = create_model(cfg.get_string("model.name"), model_options(cfg, 1, 10, 28));
  TrainState state = load_checkpoint(run + "/checkpoints/last.pt", *m, nullptr);
  return {m, state};
}

std::vector<std::pair<std::string, torch::Tensor>> weights(const std::string& run) {
  return model_state(*last_checkpoint(run).first);
}

// ‖a − b‖ / ‖b‖ over all the weights and buffers of two runs' last checkpoints (one vector);
// the worst single tensor is printed for the record.
double relative_difference(const std::string& a, const std::string& b) {
  auto wa = weights(a), wb = weights(b);
  EXPECT_EQ(wa.size(), wb.size());
  double diff = 0, norm = 0, worst = 0;
  std::string where;
  for (size_t i = 0; i < wa.size() && i < wb.size(); ++i) {
    EXPECT_EQ(wa[i].first, wb[i].first);
    if (!wa[i].second.is_floating_point()) {
      EXPECT_TRUE(torch::equal(wa[i].second, wb[i].second)) << wa[i].first;
      continue;
    }
    const torch::Tensor x = wa[i].second.to(torch::kDouble), y = wb[i].second.to(torch::kDouble);
    const double d = (x - y).square().sum().item<double>(), n = y.square().sum().item<double>();
    diff += d, norm += n;
    if (n > 0 && std::sqrt(d / n) > worst) worst = std::sqrt(d / n), where = wa[i].first;
  }
  std::printf("relative difference %.3g (worst tensor %.3g, %s)\n", std::sqrt(diff / norm), worst, where.c_str());
  return std::sqrt(diff / norm);
}

bool identical(const std::string& a, const std::string& b) {
  auto wa = weights(a), wb = weights(b);
  if (wa.size() != wb.size()) return false;
  for (size_t i = 0; i < wa.size(); ++i)
    if (!torch::equal(wa[i].second, wb[i].second)) return false;
  return true;
}

// The "step" events of a run's log.jsonl: global step -> loss.
std::map<int64_t, double> step_losses(const std::string& run) {
  std::ifstream in(run + "/log.jsonl");
  std::map<int64_t, double> out;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["event"] == "step") out[j["global_step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

int64_t last_global_step(const std::string& run) { return last_checkpoint(run).second.global_step; }

}  // namespace

TEST(DistEnv, OneProcessWhenNoLauncherVariableIsSet) {
  DistEnv e = read_dist_env(env_of({}));
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  // torchrun with one process: no process group is needed.
  EXPECT_FALSE(read_dist_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}})).distributed());
}

TEST(DistEnv, ReadsTorchrunsAndSlurmsVariables) {
  DistEnv t = read_dist_env(env_of({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                                    {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"},
                                    {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_EQ(t.rank, 5);
  EXPECT_EQ(t.world_size, 8);
  EXPECT_EQ(t.local_rank, 1);
  EXPECT_EQ(t.local_world_size, 4);
  EXPECT_EQ(t.master_addr, "node7");
  EXPECT_EQ(t.port, 29500);
  EXPECT_TRUE(t.agent_store);
  EXPECT_EQ(t.restart, 2);
  EXPECT_EQ(t.source, "RANK/WORLD_SIZE");
  DistEnv s = read_dist_env(env_of({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"},
                                    {"SLURM_LOCALID", "1"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x2)"},
                                    {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "12345"}}));
  EXPECT_EQ(s.rank, 3);
  EXPECT_EQ(s.world_size, 4);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.local_world_size, 2);
  EXPECT_FALSE(s.agent_store);
  EXPECT_EQ(s.source, "SLURM_PROCID/SLURM_NTASKS");
  // An allocation's shell or batch script (no job step) runs one process, whatever it holds.
  EXPECT_FALSE(read_dist_env(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}})).distributed());
  EXPECT_FALSE(read_dist_env(env_of({{"SLURM_NTASKS", "4"}})).distributed());
}

TEST(DistEnv, InconsistentVariablesAreInputErrorsNamingThem) {
  const std::map<std::string, std::string> ok = {
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  auto with = [&](const std::string& k, const std::string& v) {
    auto m = ok;
    m[k] = v;
    return m;
  };
  auto without = [&](const std::string& k) {
    auto m = ok;
    m.erase(k);
    return m;
  };
  EXPECT_EQ(env_error(ok), "<no error>");
  EXPECT_NE(env_error(with("WORLD_SIZE", "0")).find("WORLD_SIZE=0 is not a world size"), std::string::npos);
  EXPECT_NE(env_error(with("RANK", "2")).find("RANK=2 but WORLD_SIZE=2: ranks run from 0 to 1"), std::string::npos);
  EXPECT_NE(env_error(with("RANK", "-1")).find("RANK=-1 is not a rank"), std::string::npos);
  EXPECT_NE(env_error(with("MASTER_PORT", "abc")).find("MASTER_PORT=abc is not a TCP port"), std::string::npos);
  EXPECT_NE(env_error(with("MASTER_PORT", "70000")).find("MASTER_PORT=70000"), std::string::npos);
  EXPECT_NE(env_error(without("MASTER_ADDR")).find("MASTER_ADDR is not set"), std::string::npos);
  EXPECT_NE(env_error(without("MASTER_PORT")).find("MASTER_PORT is not set"), std::string::npos);
  EXPECT_NE(env_error(without("WORLD_SIZE")).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(env_error({{"SLURM_STEP_ID", "0"}, {"SLURM_PROCID", "0"}}).find("SLURM_PROCID is set but SLURM_NTASKS is not"),
            std::string::npos);
}

TEST(LoaderShards, TrainingPartsAreTheGlobalBatchCutInOrder) {
  const Dataset d = numbered(100);
  LoaderOptions o;
  o.batch_size = 12;
  o.drop_last = true;
  o.seed = 7;
  BatchLoader whole(d, {}, o);
  const auto global = epoch_indices(whole, 3);
  std::vector<std::vector<std::vector<int64_t>>> parts;
  for (int64_t r = 0; r < 3; ++r) {
    LoaderOptions s = o;
    s.shard_rank = r, s.shard_count = 3, s.split_batches = true;
    BatchLoader shard(d, {}, s);
    EXPECT_EQ(shard.batches_per_epoch(), whole.batches_per_epoch());
    EXPECT_EQ(shard.images_per_epoch(), 8 * 4);
    parts.push_back(epoch_indices(shard, 3));
  }
  ASSERT_EQ(global.size(), 8u);
  for (size_t b = 0; b < global.size(); ++b) {
    std::vector<int64_t> joined;
    for (const auto& p : parts) {
      EXPECT_EQ(p[b].size(), 4u);
      joined.insert(joined.end(), p[b].begin(), p[b].end());
    }
    EXPECT_EQ(joined, global[b]) << "batch " << b;
  }
}

TEST(LoaderShards, EvaluationShardsAreDisjointAndHoldEveryImageOnce) {
  const Dataset d = numbered(103);
  LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = false;
  std::multiset<int64_t> seen;
  for (int64_t r = 0; r < 4; ++r) {
    LoaderOptions s = o;
    s.shard_rank = r, s.shard_count = 4, s.split_batches = false;
    BatchLoader shard(d, {}, s);
    EXPECT_EQ(shard.batches_per_epoch(), r < 3 ? 3 : 2);  // 11 batches: 3, 3, 3, 2
    const std::vector<int64_t> served = {30, 30, 23, 20};  // batches r, r + 4, r + 8; batch 10 holds 3
    EXPECT_EQ(shard.images_per_epoch(), served[static_cast<size_t>(r)]);
    for (const auto& b : epoch_indices(shard, 0)) seen.insert(b.begin(), b.end());
  }
  EXPECT_EQ(seen.size(), 103u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 103u);
}

TEST(SyncBatchNorm, InOneProcessItEqualsTorchsBatchNorm) {
  torch::manual_seed(1);
  const torch::Tensor x0 = torch::randn({6, 3, 5, 5}) * 2 + 1, upstream = torch::randn({6, 3, 5, 5});
  torch::nn::BatchNorm2d plain(3);
  nn::BatchNorm2d synced(3);
  {
    torch::NoGradGuard g;
    plain->weight.uniform_(0.5, 1.5), plain->bias.uniform_(-1, 1);
    synced->weight.copy_(plain->weight), synced->bias.copy_(plain->bias);
  }
  torch::Tensor xa = x0.clone().requires_grad_(), xb = x0.clone().requires_grad_();
  torch::Tensor ya = plain(xa);
  (ya * upstream).sum().backward();
  LocalCollective local;
  nn::set_batch_norm_collective(&local);
  torch::Tensor yb = synced(xb);
  (yb * upstream).sum().backward();
  nn::set_batch_norm_collective(nullptr);
  EXPECT_TRUE(torch::allclose(yb, ya, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(xb.grad(), xa.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(synced->weight.grad(), plain->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(synced->bias.grad(), plain->bias.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(synced->running_mean, plain->running_mean, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(synced->running_var, plain->running_var, 1e-6, 1e-6));
  EXPECT_TRUE(torch::equal(synced->num_batches_tracked, plain->num_batches_tracked));
  // Not set: the module is torch's batch norm, bit for bit.
  torch::Tensor xc = x0.clone();
  EXPECT_TRUE(torch::equal(synced(xc), synced->torch::nn::BatchNorm2dImpl::forward(xc)));
}

TEST(SyncBatchNorm, TwoRanksOverHalvesEqualOneProcessOverTheWholeBatch) {
  torch::manual_seed(2);
  const torch::Tensor x0 = torch::randn({8, 4, 3, 3}) * 3 - 2, upstream = torch::randn({8, 4, 3, 3});
  torch::nn::BatchNorm2d whole(4);
  torch::Tensor xw = x0.clone().requires_grad_();
  (whole(xw) * upstream).sum().backward();
  const torch::Tensor y_whole = whole(x0.clone()).detach();  // second call: second running-stat update too

  ThreadCollective two(2);
  std::vector<torch::Tensor> y(2), dx(2), dw(2), db(2), rm(2), rv(2);
  auto rank = [&](int r) {
    torch::Tensor w = torch::ones({4}).requires_grad_(), b = torch::zeros({4}).requires_grad_();
    rm[r] = torch::zeros({4}), rv[r] = torch::ones({4});
    torch::Tensor x = x0.slice(0, 4 * r, 4 * r + 4).clone().requires_grad_();
    torch::Tensor out = nn::sync_batch_norm(x, w, b, rm[r], rv[r], 1e-5, 0.1, two);
    (out * upstream.slice(0, 4 * r, 4 * r + 4)).sum().backward();
    y[r] = nn::sync_batch_norm(x0.slice(0, 4 * r, 4 * r + 4), w, b, rm[r], rv[r], 1e-5, 0.1, two).detach();
    dx[r] = x.grad(), dw[r] = w.grad(), db[r] = b.grad();
  };
  std::thread t0(rank, 0), t1(rank, 1);
  t0.join(), t1.join();
  EXPECT_TRUE(torch::allclose(torch::cat({y[0], y[1]}), y_whole, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(torch::cat({dx[0], dx[1]}), xw.grad(), 1e-5, 1e-5));
  // Each rank's weight and bias gradients are its share; together they are the whole batch's.
  EXPECT_TRUE(torch::allclose(dw[0] + dw[1], whole->weight.grad(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(db[0] + db[1], whole->bias.grad(), 1e-4, 1e-5));
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::allclose(rm[r], whole->running_mean, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(rv[r], whole->running_var, 1e-5, 1e-6));
  }
}

TEST(SyncBatchNorm, EveryModelsBatchNormsAreReachable) {
  for (const auto& name : list_models()) {
    Config cfg = Config::load("", {"model.name=" + name});
    ModelPtr m = create_model(name, model_options(cfg, 3, 10, 32));
    for (const auto& mod : m->modules()) {
      if (mod->as<torch::nn::BatchNorm2dImpl>()) EXPECT_NE(mod->as<nn::BatchNorm2dImpl>(), nullptr) << name << " " << mod->name();
    }
  }
}

TEST(DistributedTrain, TwoRanksWithSyncBnEqualOneProcessAfter20Steps) {
  TempDir dir;
  // After one step the two computations agree to rounding: measured 4.5e-9 on an Intel Xeon
  // (amx_bf16) and 1.8e-7 on an AMD EPYC; without sync_bn the same step differs by 6.1e-3.
  const std::string first = write_config(dir, "  sync_bn: true\n  stop_after_steps: 1\n");
  ASSERT_EQ(run_ventral("train " + first + " --run-dir " + (dir / "one1")).status, 75);
  ASSERT_EQ(run_ventral("train " + first + " --run-dir " + (dir / "two1") + " --nproc 2").status, 75);
  EXPECT_LT(relative_difference(dir / "two1", dir / "one1"), 1e-6);

  const std::string cfg = write_config(dir, "  sync_bn: true\n  stop_after_steps: 20\n");
  auto one = run_ventral("train " + cfg + " --run-dir " + (dir / "one"));
  ASSERT_EQ(one.status, 75) << one.output;
  auto two = run_ventral("train " + cfg + " --run-dir " + (dir / "two") + " --nproc 2");
  ASSERT_EQ(two.status, 75) << two.output;
  EXPECT_NE(two.output.find("2 processes (RANK/WORLD_SIZE, gloo, sync_bn)"), std::string::npos) << two.output;
  EXPECT_EQ(last_global_step(dir / "two"), 20);
  // Over 20 steps rounding differences grow, by how much depends on which oneDNN kernels the CPU
  // gets for a half batch: 1.8e-7 on the AMD EPYC, 4.5e-3 on the Xeon, where one process at 2
  // threads instead of 1 differs from itself by the same 4.5e-3. Without sync_bn: 3.5e-2.
  EXPECT_LT(relative_difference(dir / "two", dir / "one"), 1e-2);
  const auto a = step_losses(dir / "one"), b = step_losses(dir / "two");
  ASSERT_EQ(a.size(), 4u);  // steps 5, 10, 15, 20
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [step, loss] : a) EXPECT_NEAR(b.at(step), loss, 1e-3 * std::abs(loss)) << "step " << step;
  // Only rank 0 wrote: one log, one metrics file, whose epoch-1 validation covers all 40 images.
  std::ifstream metrics(dir / "two/metrics.csv");
  std::string header, row;
  std::getline(metrics, header), std::getline(metrics, row);
  EXPECT_EQ(row.substr(0, 2), "1,");
}

TEST(DistributedTrain, TwoRanksTwiceGiveBitIdenticalWeightsAndFinishOneRunDirectory) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  for (const char* run : {"a", "b"}) {
    auto r = run_ventral("train " + cfg + " --run-dir " + (dir / run) + " --nproc 2");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("test accuracy (100 images)"), std::string::npos) << r.output;
  }
  EXPECT_TRUE(identical(dir / "a", dir / "b"));
  auto test = nlohmann::json::parse(std::ifstream(dir / "a/test.json"));
  EXPECT_EQ(test["n"], 100);
  EXPECT_EQ(test["world_size"], 2);
  // `ventral eval` of the run (one process, all 100 test images) counts what the sharded test counted.
  auto ev = run_ventral("eval " + (dir / "a") + " --out " + (dir / "eval"));
  ASSERT_EQ(ev.status, 0) << ev.output;
  std::ifstream rows(dir / "eval/results.csv");
  std::string line;
  std::getline(rows, line);
  std::map<int64_t, int64_t> eval_correct;
  while (std::getline(rows, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    if (f.at(0) == "clean") eval_correct[std::stoll(f.at(2))] = std::llround(std::stod(f.at(3)) * std::stod(f.at(4)));
  }
  const auto steps = test["steps"].get<std::vector<int64_t>>();
  const auto acc = test["accuracy"].get<std::vector<double>>();
  ASSERT_FALSE(steps.empty());
  for (size_t k = 0; k < steps.size(); ++k)
    EXPECT_EQ(std::llround(acc[k] * 100), eval_correct.at(steps[k])) << "step " << steps[k];
}

TEST(DistributedTrain, TheEnvironmentTorchrunSetsByHandGivesTheNprocRun) {
  TempDir dir;
  const std::string cfg = write_config(dir, "  stop_after_steps: 15\n");
  auto launched = run_ventral("train " + cfg + " --run-dir " + (dir / "launched") + " --nproc 2");
  ASSERT_EQ(launched.status, 75) << launched.output;
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2 ";
  const std::string cmd = std::string(VENTRAL_BINARY) + " train " + cfg + " --run-dir " + (dir / "byhand");
  auto r = run_shell(env + "RANK=1 LOCAL_RANK=1 " + cmd + " > " + (dir / "rank1.log") + " 2>&1 & " + env +
                     "RANK=0 LOCAL_RANK=0 " + cmd + "; s=$?; wait $!; exit $s");
  ASSERT_EQ(r.status, 75) << r.output;
  EXPECT_TRUE(identical(dir / "byhand", dir / "launched"));
}

TEST(DistributedTrain, BadEnvironmentAndBatchAreOneLineErrorsWithStatus2) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  const std::string train = std::string(VENTRAL_BINARY) + " train " + cfg + " --run-dir " + (dir / "run");
  const std::string addr = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port());
  for (const auto& [env, expect] : std::vector<std::pair<std::string, std::string>>{
           {"RANK=0 WORLD_SIZE=0 " + addr, "WORLD_SIZE=0 is not a world size"},
           {"RANK=2 WORLD_SIZE=2 " + addr, "RANK=2 but WORLD_SIZE=2"},
           {"RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=http", "MASTER_PORT=http is not a TCP port"},
           {"RANK=0 WORLD_SIZE=2 MASTER_PORT=29500", "MASTER_ADDR is not set"},
           {"RANK=0 WORLD_SIZE=2 MASTER_ADDR=no-such-host.invalid MASTER_PORT=29500",
            "MASTER_ADDR 'no-such-host.invalid' does not resolve to an address"},
           {"RANK=0 WORLD_SIZE=3 " + addr, "train.batch_size 32 is the global batch and must divide among the 3"},
           {"RANK=0 WORLD_SIZE=32 " + addr, "leaves each of the 32 processes 1 image per step"}}) {
    auto r = run_shell(env + " " + train);
    EXPECT_EQ(r.status, 2) << env << "\n" << r.output;
    EXPECT_NE(r.output.find("error: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << env << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  // A port another program holds: rank 0 cannot host the rendezvous there.
  auto busy = run_shell("python3 -c 'import socket,subprocess,sys; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); "
                        "p=s.getsockname()[1]; sys.exit(subprocess.call(\"RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 "
                        "MASTER_PORT=%d " + train + "\" % p, shell=True))'");
  EXPECT_EQ(busy.status, 2) << busy.output;
  EXPECT_NE(busy.output.find("rendezvous at 127.0.0.1:"), std::string::npos) << busy.output;
  // --nproc inside a rank.
  auto nested = run_shell("RANK=0 WORLD_SIZE=2 " + train + " --nproc 2");
  EXPECT_EQ(nested.status, 2) << nested.output;
  EXPECT_NE(nested.output.find("already a rank"), std::string::npos) << nested.output;
  // Ranks that fail alike under --nproc: the launcher prints their line once, not once per rank.
  auto both = run_shell(train + " --nproc 2 model.weights=" + (dir / "missing.pt"));
  EXPECT_EQ(both.status, 2) << both.output;
  EXPECT_EQ(std::count(both.output.begin(), both.output.end(), '\n'), 1) << both.output;
  EXPECT_NE(both.output.find("error: "), std::string::npos) << both.output;
  EXPECT_NE(both.output.find("missing.pt"), std::string::npos) << both.output;
}

TEST(DistributedTrain, AKilledRankStopsTheOtherAndTheRunResumesWithTwoOrOneRanks) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  // 12 epochs of 11 steps: rank 1 is killed in the second.
  const std::string run = dir / "run";
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2 ";
  const std::string cmd = std::string(VENTRAL_BINARY) + " train " + cfg + " train.epochs=12 train.distributed.timeout_s=20 --run-dir " + run;
  // Rank 1 in the background, killed with SIGKILL once the first checkpoint is written.
  auto r = run_shell(env + "RANK=1 " + cmd + " > /dev/null 2>&1 & victim=$!; " +
                     "( while [ ! -f " + run + "/checkpoints/last.pt ]; do sleep 0.1; done; sleep 0.5; kill -9 $victim ) & " +
                     "start=$(date +%s); " + env + "RANK=0 " + cmd + "; s=$?; echo \"rank0 status $s after $(( $(date +%s) - start ))s\"; exit $s");
  EXPECT_EQ(r.status, kExitPeerLost) << r.output;
  EXPECT_NE(r.output.find("error: rank 0 of 2: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("across the process group failed: another rank failed, was killed or timed out"),
            std::string::npos)
      << r.output;
  ASSERT_TRUE(std::filesystem::exists(run + "/checkpoints/last.pt"));
  const int64_t at = last_global_step(run);
  EXPECT_GE(at, 11);
  // Resumed with 2 ranks for 4 steps ...
  auto two = run_ventral("train --run-dir " + run + " --resume --nproc 2 train.stop_after_steps=4");
  ASSERT_EQ(two.status, 75) << two.output;
  EXPECT_EQ(last_global_step(run), at + 4);
  // ... and one process completes it: 12 epochs of 11 steps, tested.
  auto one = run_ventral("train --run-dir " + run + " --resume train.stop_after_steps=0");
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_EQ(last_global_step(run), 12 * 11);
  EXPECT_TRUE(std::filesystem::exists(run + "/test.json"));
}

TEST(DistributedTrain, TorchrunLaunchesTheBinary) {
  // Debian's python3-torch belongs to /usr/bin/python3 (a python3 earlier on PATH may lack it).
  if (run_shell("/usr/bin/python3 -c 'import torch.distributed.run'").status != 0)
    GTEST_SKIP() << "python3-torch is not installed: torchrun not tested";
  TempDir dir;
  const std::string cfg = write_config(dir);
  auto launched = run_ventral("train " + cfg + " train.epochs=1 --run-dir " + (dir / "launched") + " --nproc 2");
  ASSERT_EQ(launched.status, 0) << launched.output;
  // --redirects 1 --tee 1: Debian's torchrun (torch 1.13 on Python 3.11) crashes parsing the
  // default "0" (its Std flag enum lost NONE from iteration in 3.11); stdout is tee'd instead.
  auto r = run_shell("OMP_NUM_THREADS=1 /usr/bin/python3 -m torch.distributed.run --no_python --standalone "
                     "--nproc_per_node 2 --redirects 1 --tee 1 " +
                     std::string(VENTRAL_BINARY) + " train " + cfg + " train.epochs=1 --run-dir " + (dir / "torchrun"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "torchrun/test.json")) << r.output;
  EXPECT_TRUE(identical(dir / "torchrun", dir / "launched"));
}

TEST(DistributedTrain, ComparePlansSelfContainedCommandsAndTrainsThroughTheLauncher) {
  TempDir dir;
  ventral::test::write_text(dir / "base.yaml",
                            "data:\n  dataset: synthetic:300\nmodel:\n  width: 4\ntrain:\n  epochs: 1\n  batch_size: 32\n"
                            "threads: 1\n");
  ventral::test::write_text(dir / "x.yaml",
                            "base: base.yaml\nseeds: [0, 1]\nmodels:\n  - name: cortical_b\n  - name: cortical_blt\n"
                            "    config:\n      model.steps: 3\nreference: cortical_b\neval:\n  perturb: block:2\n  limit: 60\n");
  const std::string exp = (dir / "x.yaml") + " --out " + (dir / "out");
  auto plan = run_ventral("compare " + exp + " --plan --nproc 2");
  ASSERT_EQ(plan.status, 0) << plan.output;
  std::vector<std::string> lines;
  std::stringstream ss(plan.output);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u) << plan.output;  // 2 models x 2 seeds
  EXPECT_EQ(lines[0], "ventral train " + (dir / "out/plan/cortical_b/seed0.yaml") + " --run-dir " +
                          (dir / "out/runs/cortical_b/seed0") + " --nproc 2");
  // One planned command, run by hand, is picked up: the plan shrinks and compare reuses the run.
  auto first = run_shell(std::string(VENTRAL_BINARY) + lines[0].substr(std::string("ventral").size()));
  ASSERT_EQ(first.status, 0) << first.output;
  auto rest = run_ventral("compare " + exp + " --plan");
  ASSERT_EQ(rest.status, 0) << rest.output;
  EXPECT_EQ(std::count(rest.output.begin(), rest.output.end(), '\n'), 3) << rest.output;
  auto r = run_ventral("compare " + exp + " --nproc 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("already trained, reusing"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "out/REPORT.md"));
  for (const char* run : {"cortical_b/seed0", "cortical_b/seed1", "cortical_blt/seed0", "cortical_blt/seed1"})
    EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir / ("out/runs/" + std::string(run) + "/test.json")))["world_size"], 2)
        << run;
  EXPECT_EQ(run_ventral("compare " + exp + " --plan").output, "");
}

TEST(DistributedTrain, ARestartedTorchrunGroupResumesFromLastPtByItself) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  const std::string run = dir / "run";
  const std::string cmd = std::string(VENTRAL_BINARY) + " train " + cfg + " train.stop_after_steps=5 --run-dir " + run;
  auto first = run_shell(cmd);
  ASSERT_EQ(first.status, 75) << first.output;
  // The command torchrun repeats after a failure, now with TORCHELASTIC_RESTART_COUNT=1.
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) +
                          " WORLD_SIZE=2 TORCHELASTIC_RESTART_COUNT=1 ";
  auto again = run_shell(env + "RANK=1 " + cmd + " > /dev/null 2>&1 & " + env + "RANK=0 " + cmd + "; s=$?; wait $!; exit $s");
  ASSERT_EQ(again.status, 75) << again.output;
  EXPECT_NE(again.output.find("torchrun restart 1: resuming " + run + " from checkpoints/last.pt"), std::string::npos)
      << again.output;
  EXPECT_EQ(last_global_step(run), 10);
  // Without the restart count the same command refuses to overwrite the run.
  auto fresh = run_shell(cmd);
  EXPECT_EQ(fresh.status, 2) << fresh.output;
  EXPECT_NE(fresh.output.find("already holds a run"), std::string::npos) << fresh.output;
}

TEST(DistributedTrain, RanksStartedWithDifferentConfigsStopWithOneLineEach) {
  TempDir dir;
  const std::string cfg = write_config(dir);
  const std::string env = "MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_port()) + " WORLD_SIZE=2 ";
  const std::string cmd = std::string(VENTRAL_BINARY) + " train " + cfg + " --run-dir " + (dir / "run");
  // Rank 1 builds a wider model: its gradient message would not match rank 0's.
  auto r = run_shell(env + "RANK=1 " + cmd + " model.width=8 > " + (dir / "rank1.log") + " 2>&1 & " + env + "RANK=0 " +
                     cmd + "; s=$?; wait $!; echo \"rank1 $?\"; cat " + (dir / "rank1.log") + "; exit $s");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("rank1 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error: rank 1 was started with another config than rank 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error: 1 rank(s) were started with another config than rank 0"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run/checkpoints/last.pt"));
}
