#pragma once
/// A small, portable random number generator. std:: distributions differ between standard
/// libraries, so every random draw that must be reproducible (augmentation, shuffling,
/// perturbations, synthetic data) goes through this class instead.
#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace ventral {

/// splitmix64 finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/// Combines several integers (seed, epoch, image index, ...) into one stream seed.
inline uint64_t hash_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x6a09e667f3bcc909ULL;
  for (uint64_t p : parts) h = mix64(h ^ mix64(p));
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  Rng(std::initializer_list<uint64_t> parts) : state_(hash_seed(parts)) {}

  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n); n > 0. Lemire's multiply-shift (bias < 2^-64 * n).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  /// Standard normal by Box-Muller (one value per call; simple and portable).
  double normal() {
    double u1 = uniform();
    double u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

/// Fisher-Yates shuffle driven by Rng, identical on every platform.
template <class Vec>
void shuffle(Vec& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = rng.below(i);
    std::swap(v[i - 1], v[j]);
  }
}

/// The program's random streams, each Rng({seed, tag, ...}) with its own tag, so no two of them
/// ever draw the same numbers. Perturbations use one tag per family (perturb.cpp's family_id).
namespace stream {
constexpr uint64_t kValidationSplit = 0x5e11;  ///< which training images are held out
constexpr uint64_t kTrainSubset = 0x11317;     ///< data.max_train_images
constexpr uint64_t kShuffle = 0x5b;            ///< the order of an epoch's batches
constexpr uint64_t kAugment = 0xa116;          ///< crop, flip and erasing of one image in one epoch
constexpr uint64_t kResizedCrop = 0xc209;      ///< RandomResizedCrop's box of one image in one epoch
constexpr uint64_t kTrainPerturb = 0x7e57;   ///< data.augment.perturb: which image gets which family and severity
constexpr uint64_t kMaskNoise = 0x3a5c;      ///< eval --mask noise: the noise shown after the image
constexpr uint64_t kSynthetic = 0x5ca1ab1e;    ///< the synthetic dataset's images
}  // namespace stream

}  // namespace ventral
