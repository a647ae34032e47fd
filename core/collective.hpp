#pragma once
/// Sums across the processes of a data-parallel job. The trainer's process group
/// (train/distributed) implements it; layers that need global statistics (synchronised batch
/// norm) call it without knowing how the processes talk.
#include <torch/torch.h>

#include <vector>

namespace ventral {

class Collective {
 public:
  virtual ~Collective() = default;
  /// Replaces every tensor by its elementwise sum over all processes (in place, CPU tensors).
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors) = 0;
  /// Number of processes (1: the sum is the identity).
  virtual int64_t size() const = 0;
};

/// The collective of one process: every sum is the identity. Lets a single-process run take
/// exactly the code path (and arithmetic) of a distributed one.
class LocalCollective final : public Collective {
 public:
  void all_reduce_sum(std::vector<torch::Tensor>&) override {}
  int64_t size() const override { return 1; }
};

}  // namespace ventral
