#include "eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ventral {

std::pair<double, double> wilson_interval(int64_t correct, int64_t n, double z) {
  if (n <= 0) return {0.0, 1.0};
  double p = static_cast<double>(correct) / n, z2 = z * z;
  double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  double half = z * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / (1 + z2 / n);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

namespace {
// log of C(n, k)
double log_choose(int64_t n, int64_t k) { return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0); }
}  // namespace

double mcnemar_p(int64_t b, int64_t c) {
  int64_t n = b + c;
  if (n == 0) return 1.0;
  if (n < 50) {
    // Exact: two-sided binomial test of min(b, c) under p = 1/2.
    int64_t k = std::min(b, c);
    double tail = 0;
    for (int64_t i = 0; i <= k; ++i) tail += std::exp(log_choose(n, i) - n * std::log(2.0));
    return std::min(1.0, 2 * tail);
  }
  double stat = std::pow(std::abs(static_cast<double>(b - c)) - 1.0, 2) / n;
  return std::erfc(std::sqrt(stat / 2));  // survival function of χ²(1)
}

namespace {
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    double avg = (i + j) / 2.0 + 1;
    for (size_t k = i; k <= j; ++k) r[order[k]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) return NAN;
  auto rx = ranks(x), ry = ranks(y);
  double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / rx.size();
  double my = std::accumulate(ry.begin(), ry.end(), 0.0) / ry.size();
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  if (sxx == 0 || syy == 0) return NAN;
  return sxy / std::sqrt(sxx * syy);
}

double corruption_error(const std::vector<double>& model_acc, const std::vector<double>& reference_acc) {
  double num = 0, den = 0;
  for (size_t s = 0; s < model_acc.size() && s < reference_acc.size(); ++s) {
    num += 1 - model_acc[s];
    den += 1 - reference_acc[s];
  }
  return den > 0 ? 100 * num / den : NAN;
}

double relative_corruption_error(const std::vector<double>& model_acc, double model_clean,
                                 const std::vector<double>& reference_acc, double reference_clean) {
  double num = 0, den = 0;
  for (size_t s = 0; s < model_acc.size() && s < reference_acc.size(); ++s) {
    num += model_clean - model_acc[s];
    den += reference_clean - reference_acc[s];
  }
  return den != 0 ? 100 * num / den : NAN;
}

int64_t iterations_to_solution(const std::vector<bool>& correct_by_step) {
  if (correct_by_step.empty() || !correct_by_step.back()) return 0;
  int64_t t = static_cast<int64_t>(correct_by_step.size());
  while (t > 1 && correct_by_step[t - 2]) --t;
  return t;
}

double median(std::vector<double> values) {
  if (values.empty()) return NAN;
  std::sort(values.begin(), values.end());
  size_t m = values.size() / 2;
  return values.size() % 2 ? values[m] : (values[m - 1] + values[m]) / 2;
}

namespace {

// The regularised incomplete beta function I_x(a, b) by its continued fraction (modified
// Lentz), the standard route to Student's t distribution.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(b, a, 1 - x);
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  const double tiny = 1e-300;
  double f = 1, c = 1, d = 0;
  for (int i = 0; i <= 400; ++i) {
    const int m = i / 2;
    double numerator;
    if (i == 0) numerator = 1;
    else if (i % 2 == 0) numerator = (m * (b - m) * x) / ((a + 2.0 * m - 1) * (a + 2.0 * m));
    else numerator = -((a + m) * (a + b + m) * x) / ((a + 2.0 * m) * (a + 2.0 * m + 1));
    d = 1 + numerator * d;
    if (std::fabs(d) < tiny) d = tiny;
    d = 1 / d;
    c = 1 + numerator / c;
    if (std::fabs(c) < tiny) c = tiny;
    const double cd = c * d;
    f *= cd;
    if (std::fabs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

}  // namespace

double student_t_two_sided_p(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return NAN;
  if (std::isinf(t)) return 0;
  return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

double student_t_quantile_975(double df) {
  if (!(df > 0)) return NAN;
  double lo = 0, hi = 1000;  // p falls from 1 at t = 0; bisect p(t) = 0.05
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (student_t_two_sided_p(mid, df) > 0.05 ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

SeedStats seed_stats(const std::vector<double>& values) {
  SeedStats s;
  s.n = static_cast<int64_t>(values.size());
  s.mean = mean_of(values);
  if (s.n < 2) return s;
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.sd = std::sqrt(ss / static_cast<double>(s.n - 1));
  const double half = student_t_quantile_975(static_cast<double>(s.n - 1)) * s.sd / std::sqrt(static_cast<double>(s.n));
  s.ci_low = s.mean - half;
  s.ci_high = s.mean + half;
  return s;
}

double paired_t_p(const std::vector<double>& d) {
  for (double v : d)
    if (!std::isfinite(v)) return NAN;
  const SeedStats s = seed_stats(d);
  if (s.n < 2) return NAN;
  if (!(s.sd > 0)) return s.mean == 0 ? 1.0 : NAN;
  return student_t_two_sided_p(s.mean / (s.sd / std::sqrt(static_cast<double>(s.n))), static_cast<double>(s.n - 1));
}

double sign_flip_p(const std::vector<double>& d) {
  const size_t n = d.size();
  if (n == 0 || n > 24) return NAN;
  double observed = 0, scale = 0;
  for (double v : d) {
    if (!std::isfinite(v)) return NAN;
    observed += v;
    scale += std::fabs(v);
  }
  observed = std::fabs(observed);
  // Sums equal to the observed one up to rounding count as reaching it (the observed pattern
  // itself always does), whatever the size of the differences.
  const double tolerance = 1e-9 * scale;
  int64_t extreme = 0;
  const uint64_t patterns = uint64_t{1} << n;
  for (uint64_t mask = 0; mask < patterns; ++mask) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += (mask >> i & 1) ? -d[i] : d[i];
    if (std::fabs(sum) >= observed - tolerance) ++extreme;
  }
  return static_cast<double>(extreme) / static_cast<double>(patterns);
}

}  // namespace ventral
