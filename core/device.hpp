#pragma once
/// Where models run.
#include <torch/torch.h>

#include <string>

namespace ventral {

/// Resolves the `device` setting: auto|cpu|cuda (InputError when cuda is asked for but absent).
torch::Device resolve_device(const std::string& name);

}  // namespace ventral
