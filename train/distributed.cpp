// The only translation unit that includes c10d: the environment, the rendezvous and the Gloo
// process group behind train/distributed.hpp.
#include "train/distributed.hpp"

// c10d declares its Gloo process group only under USE_C10D_GLOO (Debian's LibTorch is built
// with Gloo); defined here, in the one file that includes it.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <netdb.h>
#include <sys/socket.h>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.hpp"
#include "core/text.hpp"

namespace ventral {

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

int64_t env_integer(const EnvLookup& lookup, const std::string& name, int64_t lo, int64_t hi, const std::string& why) {
  const std::string value = *lookup(name);
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end || errno || v < lo || v > hi)
    throw InputError("environment: " + name + "=" + value + " is not " + why + " (an integer in [" + std::to_string(lo) +
                     ", " + std::to_string(hi) + "])");
  return v;
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1"; }

}  // namespace

DistEnv read_dist_env(const EnvLookup& lookup) {
  DistEnv e;
  constexpr int64_t kMaxWorld = 1 << 20;
  std::string rank_var, world_var, local_var, local_world_var;
  if (lookup("RANK") || lookup("WORLD_SIZE")) {
    rank_var = "RANK", world_var = "WORLD_SIZE", local_var = "LOCAL_RANK", local_world_var = "LOCAL_WORLD_SIZE";
  } else if (lookup("SLURM_STEP_ID") && (lookup("SLURM_PROCID") || lookup("SLURM_NTASKS"))) {
    // Only inside a job step (srun): an allocation's shell or batch script also carries
    // SLURM_NTASKS (and SLURM_PROCID=0) but runs one ventral, which must train alone.
    rank_var = "SLURM_PROCID", world_var = "SLURM_NTASKS", local_var = "SLURM_LOCALID";
    local_world_var = lookup("SLURM_NTASKS_PER_NODE") ? "SLURM_NTASKS_PER_NODE" : "SLURM_STEP_TASKS_PER_NODE";
  } else {
    return e;  // one process
  }
  for (const auto& v : {rank_var, world_var})
    if (!lookup(v))
      throw InputError("environment: " + (v == rank_var ? world_var : rank_var) + " is set but " + v +
                       " is not; a launcher sets both (torchrun: RANK and WORLD_SIZE; Slurm: SLURM_PROCID and SLURM_NTASKS)");
  e.source = rank_var + "/" + world_var;
  e.world_size = env_integer(lookup, world_var, 1, kMaxWorld, "a world size");
  e.rank = env_integer(lookup, rank_var, 0, kMaxWorld, "a rank");
  if (e.rank >= e.world_size)
    throw InputError("environment: " + rank_var + "=" + std::to_string(e.rank) + " but " + world_var + "=" +
                     std::to_string(e.world_size) + ": ranks run from 0 to " + std::to_string(e.world_size - 1));
  e.local_rank = lookup(local_var) ? env_integer(lookup, local_var, 0, kMaxWorld, "a local rank") : 0;
  if (auto lw = lookup(local_world_var)) {
    // Slurm writes tasks per node as "4" or "4(x2)" (4 on each of 2 nodes): the leading count.
    const std::string digits = lw->substr(0, lw->find('('));
    e.local_world_size = env_integer([&](const std::string&) { return std::optional<std::string>(digits); },
                                     local_world_var, 1, kMaxWorld, "a per-node process count");
  }
  if (lookup("TORCHELASTIC_RESTART_COUNT"))
    e.restart = env_integer(lookup, "TORCHELASTIC_RESTART_COUNT", 0, 1 << 30, "a restart count");
  if (!e.distributed()) return e;
  if (!lookup("MASTER_ADDR") || lookup("MASTER_ADDR")->empty())
    throw InputError("environment: MASTER_ADDR is not set: " + e.source +
                     " say this is one of several processes, and they meet at MASTER_ADDR:MASTER_PORT "
                     "(torchrun sets both; under Slurm export them in the job script)");
  if (!lookup("MASTER_PORT"))
    throw InputError("environment: MASTER_PORT is not set (the rendezvous port on MASTER_ADDR; torchrun sets it)");
  e.master_addr = *lookup("MASTER_ADDR");
  e.port = static_cast<int>(env_integer(lookup, "MASTER_PORT", 1, 65535, "a TCP port"));
  if (e.local_rank >= e.local_world_size && lookup(local_world_var))
    throw InputError("environment: " + local_var + "=" + std::to_string(e.local_rank) + " but " + local_world_var + "=" +
                     std::to_string(e.local_world_size));
  e.agent_store = lookup("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  return e;
}

DistEnv read_dist_env() {
  return read_dist_env([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

void check_global_batch(const Config& cfg, int64_t world, const std::string& who) {
  const int64_t batch = cfg.get_int("train.batch_size");
  if (batch % world != 0)
    throw InputError(cfg.origin("train.batch_size") + ": train.batch_size " + std::to_string(batch) +
                     " is the global batch and must divide among the " + std::to_string(world) + " processes (" + who +
                     "); choose a multiple of " + std::to_string(world));
  if (batch / world < 2 && !cfg.get_bool("train.sync_bn"))
    throw InputError(cfg.origin("train.batch_size") + ": train.batch_size " + std::to_string(batch) + " leaves each of the " +
                     std::to_string(world) + " processes " + std::to_string(batch / world) +
                     " image per step: batch norm needs at least 2 (or set train.sync_bn: true)");
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

ProcessGroup::ProcessGroup(const DistEnv& env, std::chrono::milliseconds timeout)
    : env_(env), impl_(std::make_unique<Impl>()) {
  const std::string where = env.master_addr + ":" + std::to_string(env.port);
  {  // a name that does not resolve: said here, before the store's retries and Gloo's log lines
    addrinfo hints{}, *found = nullptr;
    hints.ai_socktype = SOCK_STREAM;
    if (const int rc = ::getaddrinfo(env.master_addr.c_str(), nullptr, &hints, &found); rc != 0)
      throw InputError("environment: MASTER_ADDR '" + printable(env.master_addr) + "' does not resolve to an address (" +
                       ::gai_strerror(rc) + "); give the host name or IP address of rank 0's machine");
    ::freeaddrinfo(found);
  }
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.port);
    o.isServer = env.rank == 0 && !env.agent_store;
    o.numWorkers = static_cast<std::size_t>(env.world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    if (env.agent_store)  // the agent's store outlives restarts: each attempt keeps its own keys, as torch's env:// does
      impl_->store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart), impl_->store);
  } catch (const std::exception& e) {
    throw InputError("rendezvous at " + where + " (MASTER_ADDR:MASTER_PORT) failed for rank " + std::to_string(env.rank) +
                     " of " + std::to_string(env.world_size) + ": " + first_line(e.what()));
  }
  try {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (is_loopback(env.master_addr))  // one machine: talk over loopback only
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 1;
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(env.rank),
                                                              static_cast<int>(env.world_size), options);
  } catch (const std::exception& e) {
    throw InputError("joining the process group at " + where + " failed for rank " + std::to_string(env.rank) + ": " +
                     first_line(e.what()));
  }
}

ProcessGroup::~ProcessGroup() = default;

namespace {
template <class F>
void collective(const DistEnv& env, const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    throw ProcessGroup::PeerLost("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": " +
                                 what + " across the process group failed: another rank failed, was killed or timed out (" +
                                 first_line(e.what()) + ")");
  }
}
}  // namespace

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  for (auto& t : tensors) {
    TORCH_CHECK(t.is_contiguous(), "all_reduce_sum: tensors must be contiguous");
    std::vector<at::Tensor> one{t};
    collective(env_, "an all-reduce", [&] { impl_->gloo->allreduce(one)->wait(); });
  }
}

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int64_t root) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  for (auto& t : tensors) {
    torch::Tensor buffer = t.is_contiguous() ? t : t.contiguous();
    std::vector<at::Tensor> one{buffer};
    collective(env_, "a broadcast", [&] { impl_->gloo->broadcast(one, o)->wait(); });
    if (!buffer.is_same(t)) t.copy_(buffer);
  }
}

void ProcessGroup::barrier() {
  collective(env_, "a barrier", [&] { impl_->gloo->barrier()->wait(); });
}

void average_gradients(ProcessGroup& group, const std::vector<torch::Tensor>& parameters, std::vector<double>& totals) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  int64_t n_grad = 0;
  for (const auto& p : parameters)
    if (p.grad().defined()) {
      parts.push_back(p.grad().reshape(-1).to(torch::kFloat));
      n_grad += p.grad().numel();
    }
  parts.push_back(torch::tensor(std::vector<float>(totals.begin(), totals.end()), torch::kFloat));
  std::vector<torch::Tensor> flat{torch::cat(parts)};
  group.all_reduce_sum(flat);
  const torch::Tensor& sum = flat[0];
  int64_t offset = 0;
  const double scale = 1.0 / static_cast<double>(group.size());
  for (const auto& p : parameters) {
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    const int64_t n = g.numel();
    g.copy_(sum.slice(0, offset, offset + n).view(g.sizes()).mul(scale));
    offset += n;
  }
  for (size_t i = 0; i < totals.size(); ++i) totals[i] = sum[n_grad + static_cast<int64_t>(i)].item<double>();
}

StepMetrics combine_shards(const StepMetrics& local, ProcessGroup& group) {
  const size_t S = local.steps.size();
  std::vector<double> packed(1 + 2 * S, 0.0);
  packed[0] = static_cast<double>(local.n);
  for (size_t t = 0; t < S && local.n > 0; ++t) {
    packed[1 + t] = std::round(local.accuracy[t] * static_cast<double>(local.n));  // correct count
    packed[1 + S + t] = local.loss[t] * static_cast<double>(local.n);
  }
  std::vector<torch::Tensor> buf{torch::tensor(packed, torch::kDouble)};
  group.all_reduce_sum(buf);
  StepMetrics out;
  out.steps = local.steps;
  out.n = static_cast<int64_t>(buf[0][0].item<double>());
  for (size_t t = 0; t < S; ++t) {
    const double n = static_cast<double>(out.n);
    out.accuracy.push_back(out.n ? buf[0][1 + t].item<double>() / n : 0.0);
    out.loss.push_back(out.n ? buf[0][1 + S + t].item<double>() / n : 0.0);
  }
  return out;
}

}  // namespace ventral
