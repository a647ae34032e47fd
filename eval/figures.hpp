#pragma once
/// `ventral eval`'s figures, drawn from the Summary.
#include <string>

#include "eval/summary.hpp"

namespace ventral {

/// Families of the summary's conditions in order, clean first, each once.
std::vector<std::string> families(const Summary& summary);

/// OUT/accuracy_vs_steps.png (one panel per family, one line per severity) and, when the sweep
/// has perturbations, OUT/accuracy_vs_severity.png (one panel per group, one line per family,
/// at the readout step). Returns the file names written.
std::vector<std::string> write_eval_figures(const std::string& out, const Summary& summary);

/// `path`: accuracy vs step under backward masking, one panel per condition (clean and each
/// family at its highest severity), one line per presentation K plus the unmasked image.
void write_masking_figure(const std::string& path, const Summary& summary, const std::vector<MaskedSweep>& masked);

}  // namespace ventral
