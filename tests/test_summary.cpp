// summarize() and the metrics it is built from, on hand-made prediction tables: every expected
// value below is worked out by hand in the comments, nothing is trained.
#include <cmath>

#include "eval/metrics.hpp"
#include "eval/summary.hpp"
#include "helpers.hpp"

using namespace ventral;

namespace {

const std::vector<int64_t> kLabels = {0, 1, 0, 1};

// One row per image: its prediction (and confidence) at each step.
Predictions table(const std::vector<int64_t>& steps, const std::vector<std::vector<int64_t>>& pred,
                  const std::vector<std::vector<float>>& conf = {}) {
  Predictions p;
  p.steps = steps;
  p.labels = kLabels;
  p.loss_sum.assign(steps.size(), 0.0);
  for (size_t i = 0; i < pred.size(); ++i)
    for (size_t k = 0; k < steps.size(); ++k) {
      p.pred.push_back(pred[i][k]);
      p.conf.push_back(conf.empty() ? 0.5f : conf[i][k]);
    }
  return p;
}

const std::vector<Condition> kConditions = {{"clean", 0}, {"block", 1}, {"block", 2}, {"gaussian_noise", 1}};

// A recurrent model evaluated at steps 1-3, trained with 2 (the headline readout is step 2).
SweepResult model() {
  SweepResult r{"net", 2, kConditions, {}};
  // clean: image 0 right throughout; 1 right from step 2; 2 and 3 right at step 3 only.
  // Accuracy by step .25 / .50 / 1.0.
  r.predictions.push_back(table({1, 2, 3}, {{0, 0, 0}, {0, 1, 1}, {1, 1, 0}, {0, 0, 1}},
                                {{.9f, .9f, .9f}, {.5f, .85f, .9f}, {.3f, .4f, .5f}, {.95f, .2f, .2f}}));
  // block 1: images 0 and 1 right, 2 and 3 wrong at every step: .5 / .5 / .5.
  r.predictions.push_back(table({1, 2, 3}, {{0, 0, 0}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}}));
  // block 2: image 0 right from step 2, image 1 at step 3: 0 / .25 / .5.
  r.predictions.push_back(table({1, 2, 3}, {{1, 0, 0}, {0, 0, 1}, {1, 1, 1}, {0, 0, 0}}));
  // gaussian noise 1: image 3 right from step 2: .75 / 1 / 1.
  r.predictions.push_back(table({1, 2, 3}, {{0, 0, 0}, {1, 1, 1}, {0, 0, 0}, {0, 1, 1}}));
  return r;
}

// A feed-forward reference: one step. clean .75 (image 2 wrong), block 1 .5, block 2 .25, noise .75.
SweepResult reference() {
  SweepResult r{"ff", 1, kConditions, {}};
  r.predictions.push_back(table({1}, {{0}, {1}, {1}, {1}}));
  r.predictions.push_back(table({1}, {{0}, {0}, {0}, {0}}));
  r.predictions.push_back(table({1}, {{1}, {0}, {0}, {0}}));
  r.predictions.push_back(table({1}, {{0}, {0}, {0}, {1}}));
  return r;
}

}  // namespace

TEST(Summary, AccuracyWithWilsonIntervalAndConfidencePerStep) {
  Summary s = summarize(model());
  EXPECT_EQ(s.steps, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(s.readout_step, 2);
  EXPECT_EQ(s.n, 4);
  const AccuracyCell& c = s.clean(0);
  EXPECT_EQ(c.correct, 1);
  EXPECT_DOUBLE_EQ(c.accuracy, 0.25);
  auto [lo, hi] = wilson_interval(1, 4);
  EXPECT_DOUBLE_EQ(c.ci_low, lo);
  EXPECT_DOUBLE_EQ(c.ci_high, hi);
  EXPECT_NEAR(c.mean_confidence, (.9 + .5 + .3 + .95) / 4, 1e-7);
  EXPECT_DOUBLE_EQ(s.headline("clean", 0).accuracy, 0.5);
  EXPECT_DOUBLE_EQ(s.cell("clean", 0, 2).accuracy, 1.0);
  EXPECT_DOUBLE_EQ(s.cell("block", 2, 0).accuracy, 0.0);
}

TEST(Summary, CorruptionAccuracyDropAndGroups) {
  Summary s = summarize(model());
  EXPECT_DOUBLE_EQ(s.ca.at("block"), (0.5 + 0.25) / 2);  // at the readout step
  EXPECT_DOUBLE_EQ(s.ca.at("gaussian_noise"), 1.0);
  EXPECT_DOUBLE_EQ(s.mca.at("occlusion"), 0.375);
  EXPECT_DOUBLE_EQ(s.mca.at("noise"), 1.0);
  EXPECT_DOUBLE_EQ(s.relative_drop.at("block"), (0.5 - 0.375) / 0.5);
  EXPECT_DOUBLE_EQ(s.relative_drop.at("gaussian_noise"), (0.5 - 1.0) / 0.5);
}

TEST(Summary, RecurrentGainAndItsTrendWithSeverity) {
  Summary s = summarize(model());
  // Δrec = readout step − step 1.
  EXPECT_DOUBLE_EQ(s.delta_rec.at("block").at(0), 0.25);  // clean: .5 − .25
  EXPECT_DOUBLE_EQ(s.delta_rec.at("block").at(1), 0.0);
  EXPECT_DOUBLE_EQ(s.delta_rec.at("block").at(2), 0.25);
  EXPECT_DOUBLE_EQ(s.delta_rec.at("gaussian_noise").at(1), 0.25);
  // Ranks of severity 1 2 3 against Δrec .25 0 .25 (ranks 2.5 1 2.5): no correlation.
  EXPECT_NEAR(s.delta_rec_trend.at("block"), 0.0, 1e-12);
  // Clean and one severity: a rank correlation over two points is ±1 whatever they are, so none.
  EXPECT_TRUE(std::isnan(s.delta_rec_trend.at("gaussian_noise")));
}

TEST(Summary, MedianIterationsToSolution) {
  Summary s = summarize(model());
  // clean: images solved for good at steps 1, 2, 3, 3: median 2.5.
  EXPECT_DOUBLE_EQ(s.median_iterations_to_solution.at("clean").at(0), 2.5);
  // block 1: images 0 and 1 solved from step 1; 2 and 3 never: median 1.
  EXPECT_DOUBLE_EQ(s.median_iterations_to_solution.at("block").at(1), 1.0);
  // block 2: image 0 from step 2, image 1 at step 3.
  EXPECT_DOUBLE_EQ(s.median_iterations_to_solution.at("block").at(2), 2.5);
}

TEST(Summary, CorruptionErrorsAgainstTheReferenceWithOneDefinitionOfMce) {
  SweepResult ref = reference();
  Summary s = summarize(model(), &ref);
  ASSERT_TRUE(s.reference.has_value());
  const ReferenceSummary& r = *s.reference;
  EXPECT_EQ(r.model, "ff");
  EXPECT_DOUBLE_EQ(r.clean_accuracy, 0.75);
  // CE = Σ(1 − model) / Σ(1 − reference) × 100: block (.5 + .75) / (.5 + .75); noise 0 / .25.
  EXPECT_DOUBLE_EQ(r.ce.at("block"), 100.0);
  EXPECT_DOUBLE_EQ(r.ce.at("gaussian_noise"), 0.0);
  // mCE: the mean over the families, overall and within each group.
  EXPECT_DOUBLE_EQ(r.mce, 50.0);
  EXPECT_DOUBLE_EQ(r.mce_by_group.at("occlusion"), 100.0);
  EXPECT_DOUBLE_EQ(r.mce_by_group.at("noise"), 0.0);
  // Relative CE: block Σ(.5 − acc) / Σ(.75 − ref) = (0 + .25) / (.25 + .5).
  EXPECT_NEAR(r.relative_ce.at("block"), 100.0 / 3, 1e-12);
  // Noise: the reference loses nothing to noise, so relative CE is undefined.
  EXPECT_TRUE(std::isnan(r.relative_ce.at("gaussian_noise")));
  // The same single definition skips undefined CEs instead of averaging them in.
  EXPECT_DOUBLE_EQ(mean_corruption_error({{"a", 80.0}, {"b", NAN}}, {"a", "b"}), 80.0);
  EXPECT_TRUE(std::isnan(mean_corruption_error({}, {"a"})));
}

TEST(Summary, McNemarAndChallengeImages) {
  SweepResult ref = reference();
  Summary s = summarize(model(), &ref);
  const ReferenceSummary& r = *s.reference;
  // clean at step 2: model right on 0, 1; reference on 0, 1, 3: b = 0, c = 1.
  const McNemarCell& clean = r.mcnemar.at("clean").at(0);
  EXPECT_EQ(clean.model_only_correct, 0);
  EXPECT_EQ(clean.reference_only_correct, 1);
  EXPECT_DOUBLE_EQ(clean.p, mcnemar_p(0, 1));
  // block 2 at step 2: model right on 0, reference on 2.
  EXPECT_EQ(r.mcnemar.at("block").at(2).model_only_correct, 1);
  EXPECT_EQ(r.mcnemar.at("block").at(2).reference_only_correct, 1);
  // Challenge images: clean images the reference gets wrong (image 2), solved at step 3 only;
  // control images 0, 1, 3: 1/3, 2/3, 3/3 by step.
  EXPECT_EQ(r.challenge_images, 1);
  EXPECT_EQ(r.challenge_accuracy, (std::vector<double>{0, 0, 1}));
  ASSERT_EQ(r.control_accuracy.size(), 3u);
  EXPECT_DOUBLE_EQ(r.control_accuracy[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(r.control_accuracy[1], 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.control_accuracy[2], 1.0);
}

TEST(Summary, EarlyExitStopsAtTheFirstConfidentStep) {
  Summary s = summarize(model(), nullptr, {0.8, 0.99});
  ASSERT_EQ(s.early_exit.size(), 2u);
  // Threshold .8: image 0 exits at step 1 (right), 1 at step 2 (right), 2 never reaches it and
  // uses step 3 (right), 3 exits at step 1 (wrong): accuracy 3/4, mean steps 7/4.
  EXPECT_DOUBLE_EQ(s.early_exit[0].accuracy, 0.75);
  EXPECT_DOUBLE_EQ(s.early_exit[0].mean_steps, 1.75);
  // Threshold .99: nobody exits early, so it is the last step.
  EXPECT_DOUBLE_EQ(s.early_exit[1].accuracy, 1.0);
  EXPECT_DOUBLE_EQ(s.early_exit[1].mean_steps, 3.0);
}

TEST(Summary, ReadoutIsTheTrainedStepCountOrTheLastEvaluatedStep) {
  SweepResult r = model();
  EXPECT_EQ(r.readout(), 1u);
  r.trained_steps = 5;  // trained longer than evaluated: the last evaluated step
  EXPECT_EQ(r.readout(), 2u);
  EXPECT_EQ(summarize(r).readout_step, 3);
  // One step of a sweep is a sweep of its own.
  SweepResult one = model().at_step(2);
  EXPECT_EQ(one.steps(), (std::vector<int64_t>{3}));
  EXPECT_DOUBLE_EQ(summarize(one).headline("clean", 0).accuracy, 1.0);
}
