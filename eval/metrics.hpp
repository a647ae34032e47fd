#pragma once
/// Metrics of docs/reference.md: Wilson intervals, McNemar, Spearman, corruption accuracy and error
/// (CA, mCA, CE, relative CE) and iterations to solution.
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace ventral {

/// Wilson score 95% interval for `correct` successes out of `n`.
std::pair<double, double> wilson_interval(int64_t correct, int64_t n, double z = 1.959963984540054);

/// Two-sided McNemar p-value from the discordant counts: b = model right / reference wrong,
/// c = model wrong / reference right. Exact binomial when b + c < 50, otherwise the χ² test
/// with continuity correction.
double mcnemar_p(int64_t b, int64_t c);

/// Spearman rank correlation (average ranks for ties); NaN when either side is constant.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// CE = Σ_s (1 − acc_model) / Σ_s (1 − acc_reference) × 100 over severities 1..5.
double corruption_error(const std::vector<double>& model_acc, const std::vector<double>& reference_acc);
/// Relative CE: Σ_s (clean_acc − acc_model) / Σ_s (ref_clean_acc − acc_reference) × 100.
double relative_corruption_error(const std::vector<double>& model_acc, double model_clean,
                                 const std::vector<double>& reference_acc, double reference_clean);

/// Iterations to solution for one image: the first 1-based step from which the prediction
/// stays correct through the last step; 0 when the last prediction is wrong.
int64_t iterations_to_solution(const std::vector<bool>& correct_by_step);

/// A statistic over seeds: mean, sample standard deviation and the 95% interval of the mean
/// from Student's t with n − 1 degrees of freedom (sd and interval NaN for one value).
struct SeedStats {
  double mean = NAN, sd = NAN, ci_low = NAN, ci_high = NAN;
  int64_t n = 0;
};
SeedStats seed_stats(const std::vector<double>& values);

/// Two-sided P(|T| ≥ |t|) for Student's t with `df` degrees of freedom.
double student_t_two_sided_p(double t, double df);
/// The two-sided 95% quantile of Student's t (2.776 for df = 4; 1.96 as df → ∞).
double student_t_quantile_975(double df);
/// Paired t-test of the differences (model − reference, one per seed) against 0: two-sided p,
/// NaN with fewer than 2 differences or any that is not finite; when they do not vary, 1 if all are 0, else NaN (t is
/// undefined: report the sign-flip test).
double paired_t_p(const std::vector<double>& differences);
/// Exact sign-flip permutation test of the same differences: the share of the 2^n sign
/// patterns whose |mean| is at least the observed one (two-sided; the smallest possible p is 2/2^n).
/// NaN for none, more than 24, or any difference that is not finite.
double sign_flip_p(const std::vector<double>& differences);

/// Median of values (NaN for none).
double median(std::vector<double> values);

}  // namespace ventral
