#include "datasets/perturb.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <thread>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/text.hpp"
#include "core/threads.hpp"

namespace ventral {

namespace {

uint64_t family_id(const std::string& family) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : family) h = (h ^ c) * 1099511628211ULL;
  return h;
}

uint8_t to_byte(double v01) { return static_cast<uint8_t>(std::clamp(std::lround(v01 * 255.0), 0L, 255L)); }

// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  p = std::clamp(p, 1e-300, 1 - 1e-16);
  if (p < 0.02425) {
    double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - 0.02425) return -normal_quantile(1 - p);
  double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// Poisson(lambda) sample from a uniform u by inversion (exact up to lambda 200, normal
// approximation beyond), so the same u is shared across severities.
double poisson_quantile(double lambda, double u) {
  if (lambda <= 0) return 0;
  if (lambda > 200) return std::max(0.0, std::round(lambda + std::sqrt(lambda) * normal_quantile(u)));
  double p = std::exp(-lambda), cdf = p;
  int k = 0;
  while (u > cdf && k < 2000) {
    ++k;
    p *= lambda / k;
    cdf += p;
  }
  return k;
}

cv::Mat as_mat(const Dataset& d, const uint8_t* px) {
  return cv::Mat(static_cast<int>(d.height), static_cast<int>(d.width), CV_8UC(static_cast<int>(d.channels)),
                 const_cast<uint8_t*>(px));
}

}  // namespace

namespace {

// What a family's apply() gets: the image, its severity's table value p and the random stream
// of (seed, family, index), shared across severities.
struct Target {
  const Dataset& data;
  int64_t index;
  int severity;
  uint64_t seed;
  double p;
  Rng& rng;
  uint8_t* out;  // holds a copy of the clean image on entry
  int H, W, C;
  size_t n;
  const uint8_t* src;
};

constexpr uint8_t kGray = 128;  // 0.5 after rounding 127.5 up

void apply_block(const Target& t) {
  // One gray square of the given area fraction; its relative position (u, v) is shared across
  // severities, which makes the squares nested.
  double u = t.rng.uniform(), v = t.rng.uniform();
  int side = std::min({t.H, t.W, static_cast<int>(std::lround(std::sqrt(t.p * t.H * t.W)))});
  int x0 = static_cast<int>(std::lround(u * (t.W - side))), y0 = static_cast<int>(std::lround(v * (t.H - side)));
  for (int y = y0; y < y0 + side; ++y) std::fill_n(t.out + (static_cast<size_t>(y) * t.W + x0) * t.C, side * t.C, kGray);
}

void apply_bubbles(const Target& t) {
  std::vector<double> vis = bubble_visibility(t.data, t.index, t.severity, t.seed, nullptr, t.src);
  for (size_t i = 0; i < vis.size(); ++i)
    for (int c = 0; c < t.C; ++c)
      t.out[i * t.C + c] = to_byte((vis[i] * t.src[i * t.C + c] + (1 - vis[i]) * kGray) / 255.0);
}

void apply_debris(const Target& t) {
  std::vector<uint8_t> scratch;  // a streamed dataset's source images are decoded for their fragment
  for (const Fragment& f : debris_fragments(t.data, t.index, t.severity, t.seed)) {
    const uint8_t* frag = nullptr;
    try {
      frag = (t.data.pool ? *t.data.pool : t.data).fetch(static_cast<size_t>(f.source), scratch);
    } catch (const UndecodableImage&) {
      continue;  // data.skip_bad_images: no fragment from a file that does not decode
    }
    for (int y = 0; y < f.side; ++y)
      std::copy_n(frag + (static_cast<size_t>(f.sy + y) * t.W + f.sx) * t.C, f.side * t.C,
                  t.out + (static_cast<size_t>(f.dy + y) * t.W + f.dx) * t.C);
  }
}

void apply_gaussian_noise(const Target& t) {
  for (size_t i = 0; i < t.n; ++i) t.out[i] = to_byte(t.src[i] / 255.0 + t.p * t.rng.normal());
}

void apply_speckle_noise(const Target& t) {
  for (size_t i = 0; i < t.n; ++i) {
    double x = t.src[i] / 255.0;
    t.out[i] = to_byte(x + x * t.p * t.rng.normal());
  }
}

void apply_shot_noise(const Target& t) {
  for (size_t i = 0; i < t.n; ++i) t.out[i] = to_byte(poisson_quantile(t.src[i] / 255.0 * t.p, t.rng.uniform()) / t.p);
}

void apply_impulse_noise(const Target& t) {
  // Salt and pepper on a fraction p of the values; the same draws at every severity.
  for (size_t i = 0; i < t.n; ++i) {
    double u = t.rng.uniform();
    bool salt = t.rng.uniform() < 0.5;
    if (u < t.p) t.out[i] = salt ? 255 : 0;
  }
}

// The OpenCV families: result from the clean image, copied over `out`.
void store(const Target& t, cv::Mat result) {
  if (!result.isContinuous()) result = result.clone();
  std::copy_n(result.data, t.n, t.out);
}

void apply_gaussian_blur(const Target& t) {
  const double side_scale = static_cast<double>(std::min(t.H, t.W)) / (t.C >= 3 ? 32.0 : 28.0);
  cv::Mat result;
  cv::GaussianBlur(as_mat(t.data, t.src), result, cv::Size(0, 0), t.p * side_scale, t.p * side_scale, cv::BORDER_REFLECT);
  store(t, result);
}

void apply_contrast(const Target& t) {
  cv::Mat result;
  as_mat(t.data, t.src).convertTo(result, CV_64F, 1 / 255.0);
  cv::Scalar mean = cv::mean(result);
  cv::Mat centred = result - mean;
  result = centred * t.p + mean;
  result.convertTo(result, CV_8U, 255.0);
  store(t, result);
}

void apply_pixelate(const Target& t) {
  cv::Mat small, result;
  cv::resize(as_mat(t.data, t.src), small,
             cv::Size(std::max(1, static_cast<int>(t.W * t.p)), std::max(1, static_cast<int>(t.H * t.p))), 0, 0,
             cv::INTER_AREA);
  cv::resize(small, result, cv::Size(t.W, t.H), 0, 0, cv::INTER_NEAREST);
  store(t, result);
}

void apply_jpeg(const Target& t) {
  std::vector<unsigned char> buf;
  // Never convert in place: `in` wraps the dataset's own pixels. (It once did: `bgr = in` shares
  // the buffer, so every call swapped the source image's red and blue, and every other jpeg
  // severity, the conditions after it and any later sweep of the same data saw BGR images.)
  const cv::Mat in = as_mat(t.data, t.src);
  cv::Mat bgr, result;
  if (t.C == 3) cv::cvtColor(in, bgr, cv::COLOR_RGB2BGR);
  else bgr = in;
  cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, static_cast<int>(t.p)});
  result = cv::imdecode(buf, t.C == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
  if (t.C == 3) cv::cvtColor(result, result, cv::COLOR_BGR2RGB);
  store(t, result);
}

struct Family {
  std::string name, group;
  std::array<double, kMaxSeverity> gray, colour;  // docs/reference.md, "Perturbations"
  void (*apply)(const Target&);
};

// Every family, occlusion first: its name, group, table values for severities 1..5 (gray
// 28 px / colour 32 px; docs/reference.md, "Perturbations", with their sources) and how it is
// applied. The one place a family is defined.
const std::vector<Family>& families() {
  static const std::vector<Family> f = {
      {"block", "occlusion", {.10, .20, .30, .40, .50}, {.10, .20, .30, .40, .50}, apply_block},
      {"bubbles", "occlusion", {.60, .45, .35, .25, .15}, {.60, .45, .35, .25, .15}, apply_bubbles},
      {"debris", "occlusion", {5, 10, 20, 30, 50}, {5, 10, 20, 30, 50}, apply_debris},
      {"gaussian_noise", "noise", {.08, .12, .18, .26, .38}, {.04, .06, .08, .09, .10}, apply_gaussian_noise},
      {"shot_noise", "noise", {60, 25, 12, 5, 3}, {500, 250, 100, 75, 50}, apply_shot_noise},
      {"impulse_noise", "noise", {.03, .06, .09, .17, .27}, {.01, .02, .03, .05, .07}, apply_impulse_noise},
      {"speckle_noise", "noise", {.15, .20, .35, .45, .60}, {.06, .10, .12, .16, .20}, apply_speckle_noise},
      {"gaussian_blur", "noise", {.4, .6, .7, .8, 1.0}, {.4, .6, .7, .8, 1.0}, apply_gaussian_blur},
      {"contrast", "noise", {.4, .3, .2, .1, .05}, {.75, .5, .4, .3, .15}, apply_contrast},
      {"pixelate", "noise", {.6, .5, .4, .3, .25}, {.95, .9, .85, .75, .65}, apply_pixelate},
      {"jpeg", "noise", {25, 18, 15, 10, 7}, {80, 65, 58, 50, 40}, apply_jpeg},
  };
  return f;
}

const Family& family(const std::string& name) {
  for (const auto& f : families())
    if (f.name == name) return f;
  throw InputError("unknown perturbation '" + name + "' (did you mean '" + closest(name, perturbation_families()) +
                   "'? valid: " + join(perturbation_families(), ", ") + ")");
}

}  // namespace

const std::vector<std::string>& perturbation_families() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& f : families()) v.push_back(f.name);
    return v;
  }();
  return names;
}

std::string perturbation_group(const std::string& name) { return family(name).group; }

namespace {
double parameter(const Family& f, int severity, bool colour) {
  require(severity >= 1 && severity <= kMaxSeverity, "perturbation severity must be 1.." + std::to_string(kMaxSeverity) +
                                                          ", got " + std::to_string(severity));
  return (colour ? f.colour : f.gray)[static_cast<size_t>(severity - 1)];
}
}  // namespace

double perturbation_parameter(const std::string& name, int severity, bool colour) {
  return parameter(family(name), severity, colour);
}

void perturb_image(const Dataset& data, int64_t index, const std::string& name, int severity, uint64_t seed,
                   uint8_t* out, const uint8_t* source) {
  const size_t n = data.image_bytes();
  std::vector<uint8_t> scratch;
  const uint8_t* src = source ? source : data.fetch(static_cast<size_t>(index), scratch);
  std::copy_n(src, n, out);
  const Family& f = family(name);
  if (severity == 0) return;
  const double p = parameter(f, severity, data.channels >= 3);
  Rng rng({seed, family_id(name), static_cast<uint64_t>(index)});
  f.apply({data, index, severity, seed, p, rng, out, static_cast<int>(data.height), static_cast<int>(data.width),
           static_cast<int>(data.channels), n, src});
}

std::vector<Fragment> debris_fragments(const Dataset& data, int64_t index, int severity, uint64_t seed) {
  // Spoerer et al. 2017: square fragments (side 6–9 px at 32 px) cut from images of other
  // classes and pasted over the image.
  const int H = static_cast<int>(data.height), W = static_cast<int>(data.width);
  int count = static_cast<int>(perturbation_parameter("debris", severity, data.channels >= 3));
  int lo = std::max(1, static_cast<int>(std::lround(6 * std::min(H, W) / 32.0)));
  int hi = std::max(lo, static_cast<int>(std::lround(9 * std::min(H, W) / 32.0)));
  Rng rng({seed, family_id("debris"), static_cast<uint64_t>(index)});
  // Fragments come from the whole set that `data` is the start of, if it is one (its labels:
  // evaluation may have renumbered data's since).
  const Dataset& pool = data.pool ? *data.pool : data;
  std::vector<Fragment> fragments;
  for (int f = 0; f < count; ++f) {
    Fragment fr{};
    fr.side = lo + static_cast<int>(rng.below(hi - lo + 1));
    fr.source = index;
    for (int tries = 0; tries < 100 && (fr.source == index || pool.labels[fr.source] == pool.labels[index]); ++tries)
      fr.source = static_cast<int64_t>(rng.below(pool.size()));
    fr.sx = static_cast<int>(rng.below(W - fr.side + 1));
    fr.sy = static_cast<int>(rng.below(H - fr.side + 1));
    fr.dx = static_cast<int>(rng.below(W - fr.side + 1));
    fr.dy = static_cast<int>(rng.below(H - fr.side + 1));
    fragments.push_back(fr);
  }
  return fragments;
}

std::vector<double> bubble_visibility(const Dataset& data, int64_t index, int severity, uint64_t seed,
                                      double* visible_fraction, const uint8_t* source) {
  // Tang et al. 2018: the image is seen through Gaussian apertures (σ = 14 px at 256 px) on
  // gray. Bubbles are added from one shared sequence until the mean visibility over the
  // object's pixels reaches the target, so lower targets use a prefix of the same bubbles.
  const int H = static_cast<int>(data.height), W = static_cast<int>(data.width), C = static_cast<int>(data.channels);
  const double target = perturbation_parameter("bubbles", severity, C >= 3);
  std::vector<uint8_t> scratch;
  const uint8_t* src = source ? source : data.fetch(static_cast<size_t>(index), scratch);
  double sigma = 14.0 / 256.0 * std::min(H, W);
  std::vector<double> vis(static_cast<size_t>(H) * W, 0.0);
  std::vector<char> object(vis.size(), 0);
  int max_v = 0;
  for (size_t i = 0; i < data.image_bytes(); ++i) max_v = std::max<int>(max_v, src[i]);
  size_t object_n = 0;
  for (size_t i = 0; i < vis.size(); ++i) {
    int m = 0;
    for (int c = 0; c < C; ++c) m = std::max<int>(m, src[i * C + c]);
    object[i] = m > 0.1 * max_v;
    object_n += object[i];
  }
  if (object_n == 0) std::fill(object.begin(), object.end(), 1), object_n = object.size();
  auto visible = [&] {
    double s = 0;
    for (size_t i = 0; i < vis.size(); ++i) s += object[i] ? vis[i] : 0;
    return s / object_n;
  };
  Rng rng({seed, family_id("bubbles"), static_cast<uint64_t>(index)});
  double v = 0;
  for (int b = 0; b < 100000 && (v = visible()) < target; ++b) {
    double cx = rng.uniform(0, W), cy = rng.uniform(0, H);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        double d2 = (x + 0.5 - cx) * (x + 0.5 - cx) + (y + 0.5 - cy) * (y + 0.5 - cy);
        double& vv = vis[static_cast<size_t>(y) * W + x];
        vv = 1 - (1 - vv) * (1 - std::exp(-d2 / (2 * sigma * sigma)));  // union of apertures
      }
  }
  if (visible_fraction) *visible_fraction = v;
  return vis;
}

Dataset perturb_dataset(const Dataset& data, const std::string& family, int severity, uint64_t seed) {
  Dataset out = data;
  if (out.streamed()) {  // the perturbed copy is held in memory
    out.files.reset();
    out.ids.clear();
    out.storage = "in memory";
    out.pixels.resize(out.size() * out.image_bytes());
  }
  // Images are independent (draws depend on (seed, family, index) only): one contiguous range
  // per core gives the same pixels as a serial loop.
  const size_t n = data.size();
  const size_t workers = std::min<size_t>(static_cast<size_t>(available_cores()), std::max<size_t>(1, n / 256));
  auto run = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) perturb_image(data, static_cast<int64_t>(i), family, severity, seed, out.image(i));
  };
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(workers);
  for (size_t w = 1; w < workers; ++w)
    threads.emplace_back([&, w] {
      try {
        run(n * w / workers, n * (w + 1) / workers);
      } catch (...) {
        errors[w] = std::current_exception();
      }
    });
  try {
    run(0, n / workers);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

namespace {
std::vector<int> all_severities() {
  std::vector<int> s;
  for (int v = 1; v <= kMaxSeverity; ++v) s.push_back(v);
  return s;
}
}  // namespace

std::vector<std::pair<std::string, int>> perturbation_sets(const std::vector<PerturbationSpec>& specs) {
  std::vector<std::pair<std::string, int>> sets;
  for (const auto& spec : specs)
    for (int severity : spec.severities) {
      if (severity == 0)
        throw InputError(spec.family + " at severity 0 is the clean image, no perturbed set; give severities 1-5");
      if (std::find(sets.begin(), sets.end(), std::make_pair(spec.family, severity)) != sets.end())
        throw InputError(spec.family + " at severity " + std::to_string(severity) + " is listed twice; list each once");
      sets.emplace_back(spec.family, severity);
    }
  return sets;
}

std::vector<PerturbationSpec> parse_perturbations(const std::string& text) {
  std::vector<PerturbationSpec> specs;
  if (text.empty()) return specs;
  if (text == "all") {
    for (const auto& f : perturbation_families()) specs.push_back({f, all_severities()});
    return specs;
  }
  // Items are separated by commas; a comma followed by a digit continues a severity list.
  std::vector<std::string> items;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == ',' && !(i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])))) {
      items.push_back(cur);
      cur.clear();
    } else {
      cur += text[i];
    }
  }
  items.push_back(cur);
  for (const auto& item : items) {
    if (item.empty() || item[0] == ',')  // ",," after a severity list leaves ",3"
      throw InputError("'" + printable(text) + "' has an empty item (a comma at the start or end, or two in a row); "
                       "list families as block:1-5,jpeg");
    auto colon = item.find(':');
    PerturbationSpec s{item.substr(0, colon), {}};
    family(s.family);  // an unknown name is an error naming the valid ones
    if (colon == std::string::npos) {
      s.severities = all_severities();
    } else {
      std::string list = item.substr(colon + 1);
      auto bad = [&] {
        return InputError("bad severities in '" + printable(item) + "' (severities are 0 to 5: e.g. block:1-5 or jpeg:2,4" +
                          (item.find_first_of(" \t") != std::string::npos ? "; no spaces in the list" : "") + ")");
      };
      size_t pos = 0;
      while (true) {  // every item, the empty ones of "1,,2" and "1," too
        size_t end = list.find(',', pos);
        std::string part = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        auto dash = part.find('-');
        auto a = parse_count(part.substr(0, dash));
        auto b = dash == std::string::npos ? a : parse_count(part.substr(dash + 1));
        if (!a || !b || *b > kMaxSeverity || *a > *b) throw bad();
        for (int64_t v = *a; v <= *b; ++v) s.severities.push_back(static_cast<int>(v));
        if (end == std::string::npos) break;
        pos = end + 1;
      }
      if (s.severities.empty()) throw bad();
    }
    specs.push_back(s);
  }
  return specs;
}

}  // namespace ventral
