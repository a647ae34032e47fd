#pragma once
/// The perturbation library: occlusion and noise families with severities 0–5 (0 = clean),
/// applied to uint8 images before normalisation. Parameters are docs/reference.md's tables: the
/// gray table for 1-channel images (reference size 28 px), the colour table for 3-channel
/// images (reference size 32 px). For other sizes the spatial parameters (bubble σ, debris
/// fragment side, blur σ) scale with side / reference size; area fractions, counts, pixelate
/// factors and intensity parameters do not.
///
/// Randomness is drawn per (seed, family, image index) and shared across severities, so a
/// higher severity occludes a superset of a lower one and noise grows monotonically.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "datasets/dataset.hpp"

namespace ventral {

/// Severities run from 0 (clean) to kMaxSeverity.
constexpr int kMaxSeverity = 5;

/// Every family, occlusion first: block, bubbles, debris, gaussian_noise, shot_noise,
/// impulse_noise, speckle_noise, gaussian_blur, contrast, pixelate, jpeg.
const std::vector<std::string>& perturbation_families();
/// "occlusion" or "noise" (the groups mCA is reported for). InputError for unknown families.
std::string perturbation_group(const std::string& family);
/// The table value for severity 1..5 (gray or colour table).
double perturbation_parameter(const std::string& family, int severity, bool colour);

/// Applies `family` at `severity` to image `index` of `data`, writing H×W×C bytes to `out`.
/// Debris fragments are cut from images of other classes of `data` itself. `source`: the image
/// to perturb when the caller already holds it (the loader's decoded or cropped image); by
/// default image `index` of `data`.
void perturb_image(const Dataset& data, int64_t index, const std::string& family, int severity, uint64_t seed,
                   uint8_t* out, const uint8_t* source = nullptr);
/// The whole dataset perturbed (labels and classes unchanged).
Dataset perturb_dataset(const Dataset& data, const std::string& family, int severity, uint64_t seed);

/// Debris fragment: a side×side square cut at (sx, sy) from image `source`, pasted at (dx, dy).
struct Fragment {
  int64_t source;
  int sx, sy, dx, dy, side;
};
/// The fragments debris pastes on image `index` at `severity` (the first 5/10/20/30/50 of one
/// sequence per image, so every severity's fragments extend the previous one's).
std::vector<Fragment> debris_fragments(const Dataset& data, int64_t index, int severity, uint64_t seed);
/// Per-pixel visibility (0 hidden … 1 fully visible) of the bubbles perturbation, and the
/// target it reached: the mean visibility over the object's pixels (brighter than a tenth of
/// the image maximum).
std::vector<double> bubble_visibility(const Dataset& data, int64_t index, int severity, uint64_t seed,
                                      double* visible_fraction = nullptr, const uint8_t* source = nullptr);

/// A family with its severities, parsed from "block:1-5", "gaussian_noise" (= 1-5), "jpeg:2,4".
struct PerturbationSpec {
  std::string family;
  std::vector<int> severities;
};
/// Parses a comma-separated list of specs, or "all"; InputError naming the bad item.
std::vector<PerturbationSpec> parse_perturbations(const std::string& text);
/// The perturbed sets `specs` name, each family and severity once: InputError when a set is
/// listed twice or at severity 0 (the clean image, which is no perturbed set of its own).
std::vector<std::pair<std::string, int>> perturbation_sets(const std::vector<PerturbationSpec>& specs);

}  // namespace ventral
