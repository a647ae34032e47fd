// The model.* options: declared here, by the layer whose families read them. Which family reads
// which option is ModelEntry::options (registry.cpp); check_model_options() refuses the others.
//
// This file is an object library linked into every program that links ventral_models
// (models/CMakeLists.txt), so the keys are in the config schema even in a program that reads a
// config but references nothing else in models/.
#include "core/config.hpp"

namespace ventral {
namespace {

using T = ValueType;
constexpr double kBig = 1e300;

const ConfigKeys kModelOptions({
    {"model.width", T::Int, "0", "base width (0 = the model's default; at most 512, 32x resnet20's 16: wider models of the deepest architectures outgrow memory)", 0, 512},
    {"model.steps", T::Int, "0", "recurrent steps / unroll count (0 = the model's default)", 0, 1000},
    {"model.unroll", T::Choice, "default", "cortical unrolling", -kBig, kBig, {"default", "sequential", "synchronous"}},
    {"model.input_every_step", T::Bool, "true", "cortical: present the image at every step"},
    {"model.cumulative_readout", T::Bool, "false", "cortical: read out the running mean of IT"},
    {"model.shortcut", T::Choice, "B", "CIFAR ResNet shortcut (A: zero padding, B: projection)", -kBig, kBig,
     {"A", "B"}},
    {"model.stem", T::Choice, "auto", "ImageNet ResNet stem (auto: small below 64 px)", -kBig, kBig,
     {"auto", "imagenet", "small"}},
});

}  // namespace
}  // namespace ventral
