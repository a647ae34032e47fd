#pragma once
/// Metrics of docs/reference.md: Wilson intervals, McNemar, Spearman, corruption accuracy and error
/// (CA, mCA, CE, relative CE) and iterations to solution.
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

/// Median of values (NaN for none).
double median(std::vector<double> values);

}  // namespace ventral
