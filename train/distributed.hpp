#pragma once
/// Data-parallel training on torch.distributed's engine (c10d): the environment a launcher sets
/// (torchrun, Slurm, `ventral train --nproc N`), the rendezvous (c10d::TCPStore) and the process
/// group (c10d::ProcessGroupGloo) whose collectives the trainer uses.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/collective.hpp"
#include "core/config.hpp"
#include "inference/evaluate.hpp"

namespace ventral {

/// Exit status of a rank whose peers failed or vanished mid-run (a collective broke).
constexpr int kExitPeerLost = 4;

/// Where this process stands in a data-parallel job.
struct DistEnv {
  int64_t rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr;  ///< the rendezvous (TCPStore) host
  int port = 0;             ///< and port
  bool agent_store = false; ///< torchrun's agent already hosts the store (TORCHELASTIC_USE_AGENT_STORE)
  int64_t restart = 0;      ///< torchrun's restart count (TORCHELASTIC_RESTART_COUNT): keys of an agent store
  std::string source;       ///< "RANK/WORLD_SIZE", "SLURM_PROCID/SLURM_NTASKS" or "" (one process)
  bool distributed() const { return world_size > 1; }
};

/// Reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
/// MASTER_ADDR, MASTER_PORT) or, when RANK is unset, Slurm's (SLURM_PROCID, SLURM_NTASKS,
/// SLURM_LOCALID, SLURM_NTASKS_PER_NODE, with MASTER_ADDR/MASTER_PORT from the job script).
/// Neither set: one process. Inconsistent values are an InputError naming the variable.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
DistEnv read_dist_env(const EnvLookup& lookup);
DistEnv read_dist_env();  ///< from this process's environment

/// The group of processes of one job. Joining blocks until every rank has arrived (or the
/// timeout passes: an InputError naming the rendezvous). A collective that fails because a peer
/// died throws PeerLost.
class ProcessGroup final : public Collective {
 public:
  struct PeerLost : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout);
  ~ProcessGroup() override;
  int64_t rank() const { return env_.rank; }
  int64_t size() const override { return env_.world_size; }
  void all_reduce_sum(std::vector<torch::Tensor>& tensors) override;
  /// Overwrites every tensor with rank `root`'s (in place).
  void broadcast(std::vector<torch::Tensor>& tensors, int64_t root = 0);
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  std::unique_ptr<Impl> impl_;
};

/// Refuses (InputError) a train.batch_size that does not divide among `world` processes, or
/// leaves a process fewer than 2 images while batch norm uses per-process statistics (one
/// image has no batch statistics). `who` names the launcher ("--nproc 2", "RANK/WORLD_SIZE").
void check_global_batch(const Config& cfg, int64_t world, const std::string& who);

/// Averages the gradients of `parameters` across the group in one flattened all-reduce, and
/// sums `totals` (per-step counters: loss × images, correct, images, stop requests) in the same
/// message, so a step costs one collective.
void average_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& parameters, std::vector<double>& totals);

/// Combines the StepMetrics of disjoint shards: counts summed, means weighted by images.
StepMetrics combine_shards(const StepMetrics& local, ProcessGroup& group);

}  // namespace ventral
