#include "datasets/perturb.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/threads.hpp"

namespace ventral {

namespace {

struct Table {
  std::string group;
  double gray[5];
  double colour[5];
};

// docs/reference.md, "Perturbations" (values for s = 1..5), with their sources.
const std::map<std::string, Table>& tables() {
  static const std::map<std::string, Table> t = {
      {"block", {"occlusion", {.10, .20, .30, .40, .50}, {.10, .20, .30, .40, .50}}},
      {"bubbles", {"occlusion", {.60, .45, .35, .25, .15}, {.60, .45, .35, .25, .15}}},
      {"debris", {"occlusion", {5, 10, 20, 30, 50}, {5, 10, 20, 30, 50}}},
      {"gaussian_noise", {"noise", {.08, .12, .18, .26, .38}, {.04, .06, .08, .09, .10}}},
      {"shot_noise", {"noise", {60, 25, 12, 5, 3}, {500, 250, 100, 75, 50}}},
      {"impulse_noise", {"noise", {.03, .06, .09, .17, .27}, {.01, .02, .03, .05, .07}}},
      {"speckle_noise", {"noise", {.15, .20, .35, .45, .60}, {.06, .10, .12, .16, .20}}},
      {"gaussian_blur", {"noise", {.4, .6, .7, .8, 1.0}, {.4, .6, .7, .8, 1.0}}},
      {"contrast", {"noise", {.4, .3, .2, .1, .05}, {.75, .5, .4, .3, .15}}},
      {"pixelate", {"noise", {.6, .5, .4, .3, .25}, {.95, .9, .85, .75, .65}}},
      {"jpeg", {"noise", {25, 18, 15, 10, 7}, {80, 65, 58, 50, 40}}},
  };
  return t;
}

const Table& table(const std::string& family) {
  auto it = tables().find(family);
  if (it == tables().end()) {
    std::string names;
    for (const auto& f : perturbation_families()) names += (names.empty() ? "" : ", ") + f;
    throw InputError("unknown perturbation '" + family + "' (did you mean '" +
                     closest(family, perturbation_families()) + "'? valid: " + names + ")");
  }
  return it->second;
}

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

const std::vector<std::string>& perturbation_families() {
  static const std::vector<std::string> f = {"block",          "bubbles",    "debris",        "gaussian_noise",
                                             "shot_noise",     "impulse_noise", "speckle_noise", "gaussian_blur",
                                             "contrast",       "pixelate",   "jpeg"};
  return f;
}

std::string perturbation_group(const std::string& family) { return table(family).group; }

double perturbation_parameter(const std::string& family, int severity, bool colour) {
  require(severity >= 1 && severity <= 5, "perturbation severity must be 1..5, got " + std::to_string(severity));
  const Table& t = table(family);
  return colour ? t.colour[severity - 1] : t.gray[severity - 1];
}

void perturb_image(const Dataset& data, int64_t index, const std::string& family, int severity, uint64_t seed,
                   uint8_t* out) {
  const int H = static_cast<int>(data.height), W = static_cast<int>(data.width), C = static_cast<int>(data.channels);
  const size_t n = data.image_bytes();
  const uint8_t* src = data.image(index);
  std::copy_n(src, n, out);
  if (severity == 0) return;
  const bool colour = C >= 3;
  const double p = perturbation_parameter(family, severity, colour);
  const double side_scale = static_cast<double>(std::min(H, W)) / (colour ? 32.0 : 28.0);
  Rng rng({seed, family_id(family), static_cast<uint64_t>(index)});
  const uint8_t gray = 128;  // 0.5 after rounding 127.5 up

  if (family == "block") {
    // One gray square of the given area fraction; its relative position (u, v) is shared
    // across severities, which makes the squares nested.
    double u = rng.uniform(), v = rng.uniform();
    int side = std::min({H, W, static_cast<int>(std::lround(std::sqrt(p * H * W)))});
    int x0 = static_cast<int>(std::lround(u * (W - side))), y0 = static_cast<int>(std::lround(v * (H - side)));
    for (int y = y0; y < y0 + side; ++y) std::fill_n(out + (static_cast<size_t>(y) * W + x0) * C, side * C, gray);
    return;
  }
  if (family == "bubbles") {
    std::vector<double> vis = bubble_visibility(data, index, severity, seed);
    for (size_t i = 0; i < vis.size(); ++i)
      for (int c = 0; c < C; ++c)
        out[i * C + c] = to_byte((vis[i] * src[i * C + c] + (1 - vis[i]) * gray) / 255.0);
    return;
  }
  if (family == "debris") {
    for (const Fragment& f : debris_fragments(data, index, severity, seed)) {
      const uint8_t* frag = data.image(f.source);
      for (int y = 0; y < f.side; ++y)
        std::copy_n(frag + (static_cast<size_t>(f.sy + y) * W + f.sx) * C, f.side * C,
                    out + (static_cast<size_t>(f.dy + y) * W + f.dx) * C);
    }
    return;
  }
  if (family == "gaussian_noise" || family == "speckle_noise") {
    for (size_t i = 0; i < n; ++i) {
      double x = src[i] / 255.0, z = rng.normal();
      out[i] = to_byte(family == "gaussian_noise" ? x + p * z : x + x * p * z);
    }
    return;
  }
  if (family == "shot_noise") {
    for (size_t i = 0; i < n; ++i) out[i] = to_byte(poisson_quantile(src[i] / 255.0 * p, rng.uniform()) / p);
    return;
  }
  if (family == "impulse_noise") {
    // Salt and pepper on a fraction p of the values; the same draws at every severity.
    for (size_t i = 0; i < n; ++i) {
      double u = rng.uniform();
      bool salt = rng.uniform() < 0.5;
      if (u < p) out[i] = salt ? 255 : 0;
    }
    return;
  }
  cv::Mat in = as_mat(data, src), result;
  if (family == "gaussian_blur") {
    cv::GaussianBlur(in, result, cv::Size(0, 0), p * side_scale, p * side_scale, cv::BORDER_REFLECT);
  } else if (family == "contrast") {
    in.convertTo(result, CV_64F, 1 / 255.0);
    cv::Scalar mean = cv::mean(result);
    cv::Mat centred = result - mean;
    result = centred * p + mean;
    result.convertTo(result, CV_8U, 255.0);
  } else if (family == "pixelate") {
    cv::Mat small;
    cv::resize(in, small, cv::Size(std::max(1, static_cast<int>(W * p)), std::max(1, static_cast<int>(H * p))), 0, 0,
               cv::INTER_AREA);
    cv::resize(small, result, cv::Size(W, H), 0, 0, cv::INTER_NEAREST);
  } else if (family == "jpeg") {
    std::vector<unsigned char> buf;
    cv::Mat bgr = in;
    if (C == 3) cv::cvtColor(in, bgr, cv::COLOR_RGB2BGR);
    cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, static_cast<int>(p)});
    result = cv::imdecode(buf, C == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (C == 3) cv::cvtColor(result, result, cv::COLOR_BGR2RGB);
  } else {
    table(family);  // throws for unknown names
  }
  if (!result.isContinuous()) result = result.clone();
  std::copy_n(result.data, n, out);
}

std::vector<Fragment> debris_fragments(const Dataset& data, int64_t index, int severity, uint64_t seed) {
  // Spoerer et al. 2017: square fragments (side 6–9 px at 32 px) cut from images of other
  // classes and pasted over the image.
  const int H = static_cast<int>(data.height), W = static_cast<int>(data.width);
  int count = static_cast<int>(perturbation_parameter("debris", severity, data.channels >= 3));
  int lo = std::max(1, static_cast<int>(std::lround(6 * std::min(H, W) / 32.0)));
  int hi = std::max(lo, static_cast<int>(std::lround(9 * std::min(H, W) / 32.0)));
  Rng rng({seed, family_id("debris"), static_cast<uint64_t>(index)});
  std::vector<Fragment> fragments;
  for (int f = 0; f < count; ++f) {
    Fragment fr{};
    fr.side = lo + static_cast<int>(rng.below(hi - lo + 1));
    fr.source = index;
    for (int tries = 0; tries < 100 && (fr.source == index || data.labels[fr.source] == data.labels[index]); ++tries)
      fr.source = static_cast<int64_t>(rng.below(data.size()));
    fr.sx = static_cast<int>(rng.below(W - fr.side + 1));
    fr.sy = static_cast<int>(rng.below(H - fr.side + 1));
    fr.dx = static_cast<int>(rng.below(W - fr.side + 1));
    fr.dy = static_cast<int>(rng.below(H - fr.side + 1));
    fragments.push_back(fr);
  }
  return fragments;
}

std::vector<double> bubble_visibility(const Dataset& data, int64_t index, int severity, uint64_t seed,
                                      double* visible_fraction) {
  // Tang et al. 2018: the image is seen through Gaussian apertures (σ = 14 px at 256 px) on
  // gray. Bubbles are added from one shared sequence until the mean visibility over the
  // object's pixels reaches the target, so lower targets use a prefix of the same bubbles.
  const int H = static_cast<int>(data.height), W = static_cast<int>(data.width), C = static_cast<int>(data.channels);
  const double target = perturbation_parameter("bubbles", severity, C >= 3);
  const uint8_t* src = data.image(index);
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

std::vector<PerturbationSpec> parse_perturbations(const std::string& text) {
  std::vector<PerturbationSpec> specs;
  if (text.empty()) return specs;
  if (text == "all") {
    for (const auto& f : perturbation_families()) specs.push_back({f, {1, 2, 3, 4, 5}});
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
    auto colon = item.find(':');
    PerturbationSpec s{item.substr(0, colon), {}};
    table(s.family);
    if (colon == std::string::npos) {
      s.severities = {1, 2, 3, 4, 5};
    } else {
      std::string list = item.substr(colon + 1);
      auto bad = [&] { return InputError("--perturb: bad severities in '" + item + "' (use e.g. block:1-5 or jpeg:2,4)"); };
      size_t pos = 0;
      while (pos < list.size()) {
        size_t end = list.find(',', pos);
        std::string part = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        auto dash = part.find('-');
        try {
          int a = std::stoi(part.substr(0, dash)), b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
          if (a < 0 || b > 5 || a > b) throw bad();
          for (int v = a; v <= b; ++v) s.severities.push_back(v);
        } catch (const std::logic_error&) {
          throw bad();
        }
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
