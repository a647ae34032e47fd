#include "core/device.hpp"

#include "core/error.hpp"

namespace ventral {

torch::Device resolve_device(const std::string& name) {
  if (name == "cuda") {
    require(torch::cuda::is_available(), "device: cuda was requested but this build of libtorch has no usable GPU");
    return torch::kCUDA;
  }
  if (name == "auto" && torch::cuda::is_available()) return torch::kCUDA;
  return torch::kCPU;
}

}  // namespace ventral
