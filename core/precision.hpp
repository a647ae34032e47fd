#pragma once
/// Numeric precision of a model's forward pass: fp32, or bf16 through LibTorch's CPU autocast
/// (convolutions and matrix products in bf16; weights, gradients, optimizer state, batch-norm
/// statistics and the loss stay fp32, so checkpoints are fp32 whatever the precision).
#include <functional>
#include <set>
#include <string>

namespace ventral {

enum class Precision { FP32, BF16 };

/// "fp32" / "bf16".
std::string precision_name(Precision p);
/// "fp32" or "bf16" (not "auto": see resolve_precision); InputError naming `origin` otherwise.
Precision parse_precision(const std::string& name, const std::string& origin);

/// The CPU feature flags of the first processor in `cpuinfo` (/proc/cpuinfo's "flags" line);
/// empty when the file cannot be read or has no flags line.
std::set<std::string> cpu_flags(const std::string& cpuinfo = "/proc/cpuinfo");
/// The flag that gives bf16 arithmetic in hardware ("amx_bf16", else "avx512_bf16"), or ""
/// when the flags have neither (bf16 then runs emulated, slower than fp32).
std::string bf16_hardware(const std::set<std::string>& flags);

struct PrecisionChoice {
  Precision precision = Precision::FP32;
  std::string reason;  ///< one phrase for the run header, e.g. "auto: avx512_bf16, bf16 1.62x faster"
};

/// bf16 must be at least this much faster than fp32 in the probe for `auto` to choose it.
constexpr double kAutoBf16MinSpeedup = 1.1;

/// Resolves the `precision` setting (fp32|bf16|auto). `auto` is bf16 only when `flags` show bf16
/// hardware and `bf16_speedup()` (fp32 time / bf16 time, measured on the model) reaches
/// kAutoBf16MinSpeedup; the probe is not run without the hardware.
PrecisionChoice resolve_precision(const std::string& setting, const std::set<std::string>& flags,
                                  const std::function<double()>& bf16_speedup);

/// Runs the enclosed forward passes under `precision`: for bf16, CPU autocast to bfloat16 for
/// the guard's lifetime (nesting-aware, restoring the previous state, and dropping autocast's
/// cache of cast weights on exit so that no cast outlives an optimizer step); for fp32, autocast
/// off for the guard's lifetime (also inside an enclosing bf16 region).
class AutocastGuard {
 public:
  explicit AutocastGuard(Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool bf16_ = false, was_enabled_ = false;
  int dtype_ = 0;  // the previous autocast CPU dtype (c10::ScalarType)
};

}  // namespace ventral
