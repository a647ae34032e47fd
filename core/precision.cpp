#include "core/precision.hpp"

#include <ATen/autocast_mode.h>

#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "core/text.hpp"

namespace ventral {

std::string precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name, const std::string& origin) {
  if (name == "fp32") return Precision::FP32;
  if (name == "bf16") return Precision::BF16;
  throw InputError(origin + ": precision must be fp32 or bf16, got '" + name + "'");
}

std::set<std::string> cpu_flags(const std::string& cpuinfo) {
  std::ifstream in(cpuinfo);
  std::set<std::string> flags;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  return flags;
}

std::string bf16_hardware(const std::set<std::string>& flags) {
  for (const char* f : {"amx_bf16", "avx512_bf16"})
    if (flags.count(f)) return f;
  return "";
}

PrecisionChoice resolve_precision(const std::string& setting, const std::set<std::string>& flags,
                                  const std::function<double()>& bf16_speedup) {
  std::string hardware = bf16_hardware(flags);
  if (setting != "auto") {
    Precision p = parse_precision(setting, "precision");
    std::string reason = setting;
    if (p == Precision::BF16 && hardware.empty())
      reason += " (no avx512_bf16/amx_bf16 in the CPU flags: emulated, slower than fp32)";
    return {p, reason};
  }
  if (hardware.empty()) return {Precision::FP32, "auto: fp32 (no avx512_bf16/amx_bf16 in the CPU flags)"};
  double speedup = bf16_speedup();
  std::string measured = format_number("%.2f", speedup) + "x";
  if (speedup >= kAutoBf16MinSpeedup) return {Precision::BF16, "auto: bf16 (" + hardware + ", probe " + measured + " faster)"};
  return {Precision::FP32, "auto: fp32 (" + hardware + ", but the bf16 probe was " + measured + ")"};
}

AutocastGuard::AutocastGuard(Precision precision) : bf16_(precision == Precision::BF16) {
  was_enabled_ = at::autocast::is_cpu_enabled();
  dtype_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
  if (!bf16_) {  // fp32 inside a bf16 region really is fp32
    if (was_enabled_) at::autocast::set_cpu_enabled(false);
    return;
  }
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (bf16_) {
    // As torch.autocast's __exit__: the outermost region drops the cached bf16 copies of the
    // weights, which an optimizer step would otherwise leave stale.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  }
  at::autocast::set_cpu_enabled(was_enabled_);
  at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(dtype_));
}

}  // namespace ventral
