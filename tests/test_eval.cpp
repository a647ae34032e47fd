#include <filesystem>
#include <map>
#include <set>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <numeric>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "datasets/experiment.hpp"
#include "datasets/perturb.hpp"
#include "eval/metrics.hpp"
#include "eval/plot.hpp"
#include "eval/summary.hpp"
#include "eval/sweep.hpp"
#include "inference/predict.hpp"
#include "models/registry.hpp"
#include "study/experiment.hpp"
#include "study/compare.hpp"
#include "helpers.hpp"
#include "train/trainer.hpp"

using namespace ventral;
using ventral::test::TempDir;

namespace {

const Dataset& shapes() {
  static const Dataset d = load_dataset("synthetic:200", Split::Test);
  return d;
}

std::vector<uint8_t> apply(const Dataset& d, int64_t i, const std::string& f, int s, uint64_t seed = 0) {
  std::vector<uint8_t> out(d.image_bytes());
  perturb_image(d, i, f, s, seed, out.data());
  return out;
}

double changed_fraction(const Dataset& d, int64_t i, const std::vector<uint8_t>& out) {
  size_t n = 0;
  for (size_t k = 0; k < out.size(); ++k) n += out[k] != d.image(i)[k];
  return double(n) / out.size();
}

// The training config of the compare end-to-end tests: tiny models on synthetic shapes, 1 epoch.
void write_tiny_base(const TempDir& dir) {
  ventral::test::write_text(dir / "base.yaml",
                            "data:\n  dataset: synthetic:300\nmodel:\n  width: 4\ntrain:\n  epochs: 1\n  batch_size: 32\n"
                            "threads: 1\n");
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(Perturb, TablesEqualReference) {
  // docs/reference.md, "Perturbations": gray (28 px) and colour (32 px) values for s = 1..5.
  const std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> ref = {
      {"block", {{.10, .20, .30, .40, .50}, {.10, .20, .30, .40, .50}}},
      {"bubbles", {{.60, .45, .35, .25, .15}, {.60, .45, .35, .25, .15}}},
      {"debris", {{5, 10, 20, 30, 50}, {5, 10, 20, 30, 50}}},
      {"gaussian_noise", {{.08, .12, .18, .26, .38}, {.04, .06, .08, .09, .10}}},
      {"shot_noise", {{60, 25, 12, 5, 3}, {500, 250, 100, 75, 50}}},
      {"impulse_noise", {{.03, .06, .09, .17, .27}, {.01, .02, .03, .05, .07}}},
      {"speckle_noise", {{.15, .20, .35, .45, .60}, {.06, .10, .12, .16, .20}}},
      {"gaussian_blur", {{.4, .6, .7, .8, 1.0}, {.4, .6, .7, .8, 1.0}}},
      {"contrast", {{.4, .3, .2, .1, .05}, {.75, .5, .4, .3, .15}}},
      {"pixelate", {{.6, .5, .4, .3, .25}, {.95, .9, .85, .75, .65}}},
      {"jpeg", {{25, 18, 15, 10, 7}, {80, 65, 58, 50, 40}}},
  };
  ASSERT_EQ(perturbation_families().size(), ref.size());
  for (const auto& [family, values] : ref)
    for (int s = 1; s <= 5; ++s) {
      EXPECT_DOUBLE_EQ(perturbation_parameter(family, s, false), values.first[s - 1]) << family << s;
      EXPECT_DOUBLE_EQ(perturbation_parameter(family, s, true), values.second[s - 1]) << family << s;
    }
  EXPECT_EQ(perturbation_group("debris"), "occlusion");
  EXPECT_EQ(perturbation_group("jpeg"), "noise");
  EXPECT_THROW(perturbation_group("fog"), InputError);
}

TEST(Perturb, SeverityZeroIsTheIdentityAndDamageGrowsWithSeverity) {
  const Dataset& d = shapes();
  for (const auto& f : perturbation_families()) {
    std::vector<double> changed(6, 0.0), error(6, 0.0);
    for (int64_t i = 0; i < 20; ++i) {
      auto clean = apply(d, i, f, 0);
      EXPECT_TRUE(std::equal(clean.begin(), clean.end(), d.image(i))) << f;
      for (int s = 0; s <= 5; ++s) {
        auto out = apply(d, i, f, s);
        changed[s] += changed_fraction(d, i, out) / 20;
        for (size_t k = 0; k < out.size(); ++k) error[s] += std::abs(int(out[k]) - int(d.image(i)[k])) / (20.0 * out.size());
      }
    }
    EXPECT_EQ(changed[0], 0.0);
    EXPECT_GT(changed[5], 0.0) << f;
    // JPEG coarsens blocks: at low quality more pixels can land back on their original value
    // while the image degrades, so its damage measure is the mean absolute error; for the other
    // families it is the fraction of changed pixels.
    const auto& damage = f == "jpeg" ? error : changed;
    if (f == "pixelate") {
      // ImageNet-C's factors .6/.5 give 16 and 14 px at 28 px: 14 divides 28, so severity 2
      // aliases less than severity 1. Only the overall growth holds.
      EXPECT_GT(error[5], error[1]);
      continue;
    }
    for (int s = 1; s <= 5; ++s) EXPECT_GE(damage[s] + 1e-12, damage[s - 1]) << f << " severity " << s;
  }
}

TEST(Perturb, DeterministicPerSeedFamilyAndIndex) {
  const Dataset& d = shapes();
  for (const char* f : {"block", "bubbles", "debris", "gaussian_noise", "shot_noise", "impulse_noise"}) {
    EXPECT_EQ(apply(d, 3, f, 3, 7), apply(d, 3, f, 3, 7)) << f;
    EXPECT_NE(apply(d, 3, f, 3, 7), apply(d, 3, f, 3, 8)) << f;
  }
  // Another index draws differently: the same image content at two indices differs.
  Dataset twice = d.subset({5, 5});
  std::vector<uint8_t> a(d.image_bytes()), b(d.image_bytes());
  perturb_image(twice, 0, "gaussian_noise", 2, 0, a.data());
  perturb_image(twice, 1, "gaussian_noise", 2, 0, b.data());
  EXPECT_NE(a, b);
}

// Colour images whose red, green and blue differ: perturbing never touches the source pixels,
// and keeps the channel order. (apply_jpeg converted RGB to BGR in place: every call swapped the
// dataset's red and blue, so every other jpeg severity, and any later sweep of the same data,
// such as a --reference model's, saw BGR images; gray test data could not show it.)
TEST(Perturb, ColourSourcesStayUntouchedAndChannelsKeepTheirOrder) {
  Dataset d = convert(load_dataset("synthetic:40", Split::Test), {3, 0});
  for (size_t i = 0; i < d.size(); ++i)
    for (size_t p = 0; p < static_cast<size_t>(d.height * d.width); ++p) {
      uint8_t* px = d.image(i) + 3 * p;
      px[1] = static_cast<uint8_t>(255 - px[0] / 2);
      px[2] = static_cast<uint8_t>(9 * (p / static_cast<size_t>(d.width)));  // a vertical ramp
    }
  const std::vector<uint8_t> before = d.pixels;
  for (const auto& f : perturbation_families())
    for (int s = 1; s <= 5; ++s) {
      apply(d, 4, f, s, 3);
      ASSERT_EQ(d.pixels, before) << f << " severity " << s << " changed the source images";
    }
  for (int s = 1; s <= 5; ++s) {
    const std::vector<uint8_t> out = apply(d, 4, "jpeg", s);
    double same = 0, swapped = 0;
    for (size_t k = 0; k < out.size(); ++k) {
      const size_t mirror = k - k % 3 + (2 - k % 3);  // the same pixel with red and blue exchanged
      same += std::abs(out[k] - d.image(4)[k]);
      swapped += std::abs(out[k] - d.image(4)[mirror]);
    }
    EXPECT_LT(same, swapped / 2) << "jpeg severity " << s << ": channels swapped";
  }
}

TEST(Perturb, DatasetOnAllCoresEqualsImageByImage) {
  Dataset d = load_dataset("synthetic:3000", Split::Test);
  for (const char* f : {"debris", "gaussian_noise", "jpeg"}) {
    Dataset all = perturb_dataset(d, f, 4, 11);
    std::vector<uint8_t> one(d.image_bytes());
    ASSERT_GE(d.size(), 600u);
    for (size_t i : {size_t(0), d.size() / 2, d.size() - 1}) {
      perturb_image(d, static_cast<int64_t>(i), f, 4, 11, one.data());
      EXPECT_TRUE(std::equal(one.begin(), one.end(), all.image(i))) << f << " image " << i;
    }
  }
}

// `eval --limit N` scores the first N images: each must be perturbed as in the full set, though
// debris cuts its fragments from other images (a probe found 35 of 50 debris rows differing).
TEST(Perturb, TheFirstImagesOfASetArePerturbedAsInTheWholeSet) {
  Dataset full = load_dataset("synthetic:400", Split::Train);
  std::vector<int64_t> first(20);
  for (int64_t i = 0; i < 20; ++i) first[i] = i;
  Dataset alone = full.subset(first), prefix = full.subset(first);
  prefix.pool = std::make_shared<const Dataset>(full);
  std::vector<uint8_t> a(full.image_bytes()), b(full.image_bytes()), c(full.image_bytes());
  size_t differ_alone = 0;
  for (int64_t i = 0; i < 20; ++i)
    for (int s : {1, 5}) {
      perturb_image(full, i, "debris", s, 3, a.data());
      perturb_image(prefix, i, "debris", s, 3, b.data());
      perturb_image(alone, i, "debris", s, 3, c.data());
      EXPECT_EQ(a, b) << "image " << i << " severity " << s;
      differ_alone += a != c;
    }
  EXPECT_GT(differ_alone, 0u);  // without the whole set the fragments come from other images
}

TEST(Perturb, OcclusionIsNestedAcrossSeverities) {
  const Dataset& d = shapes();
  for (int64_t i = 0; i < 20; ++i) {
    for (int s = 1; s < 5; ++s) {
      // block: the gray square of s lies inside the square of s + 1.
      auto lo = apply(d, i, "block", s), hi = apply(d, i, "block", s + 1);
      std::vector<uint8_t> gray_lo(lo.size()), gray_hi(hi.size());
      int in_lo = 0;
      for (size_t k = 0; k < lo.size(); ++k) {
        bool occluded = lo[k] == 128 && d.image(i)[k] != 128;
        in_lo += occluded;
        if (occluded) {
          EXPECT_EQ(hi[k], 128);
        }
      }
      EXPECT_GT(in_lo, 0);
      // debris: the fragments of s are the first fragments of s + 1.
      auto f_lo = debris_fragments(d, i, s, 0), f_hi = debris_fragments(d, i, s + 1, 0);
      ASSERT_LT(f_lo.size(), f_hi.size());
      for (size_t k = 0; k < f_lo.size(); ++k) {
        EXPECT_EQ(f_lo[k].dx, f_hi[k].dx);
        EXPECT_EQ(f_lo[k].source, f_hi[k].source);
      }
      // bubbles: every pixel is at most as visible at s + 1 as at s.
      auto v_lo = bubble_visibility(d, i, s, 0), v_hi = bubble_visibility(d, i, s + 1, 0);
      for (size_t k = 0; k < v_lo.size(); ++k) EXPECT_LE(v_hi[k], v_lo[k] + 1e-12);
    }
  }
}

TEST(Perturb, DebrisCountsAndSourcesFromOtherClasses) {
  const Dataset& d = shapes();
  const int expected[] = {5, 10, 20, 30, 50};
  for (int s = 1; s <= 5; ++s) {
    auto f = debris_fragments(d, 4, s, 0);
    EXPECT_EQ(f.size(), static_cast<size_t>(expected[s - 1]));
    for (const auto& fr : f) {
      EXPECT_NE(d.labels[fr.source], d.labels[4]);
      EXPECT_GE(fr.side, 5);  // 6–9 px at 32 px, scaled to 28 px: 5–8
      EXPECT_LE(fr.side, 8);
      EXPECT_LE(fr.dx + fr.side, 28);
    }
  }
}

TEST(Perturb, BubblesReachTheirVisibleFraction) {
  const Dataset& d = shapes();
  for (int s = 1; s <= 5; ++s)
    for (int64_t i = 0; i < 10; ++i) {
      double v = 0;
      bubble_visibility(d, i, s, 0, &v);
      double target = perturbation_parameter("bubbles", s, false);
      EXPECT_GE(v, target);
      EXPECT_LE(v, target + 0.08) << "one bubble overshoots by a few percent at most";
    }
}

TEST(Perturb, NoiseGrowsMonotonicallyPerPixel) {
  const Dataset& d = shapes();
  for (const char* f : {"gaussian_noise", "speckle_noise"})
    for (int s = 1; s < 5; ++s) {
      auto lo = apply(d, 1, f, s), hi = apply(d, 1, f, s + 1);
      for (size_t k = 0; k < lo.size(); ++k) {
        int src = d.image(1)[k];
        // Same draws: |x_{s+1} − x| ≥ |x_s − x| up to clipping and rounding.
        if (hi[k] != 0 && hi[k] != 255) {
          EXPECT_GE(std::abs(hi[k] - src) + 1, std::abs(lo[k] - src)) << f;
        }
      }
    }
}

TEST(Perturb, SpecsParse) {
  auto s = parse_perturbations("block:1-3,jpeg:2,4,gaussian_noise");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].severities, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(s[1].severities, (std::vector<int>{2, 4}));
  EXPECT_EQ(s[2].severities, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(parse_perturbations("all").size(), perturbation_families().size());
  EXPECT_THROW(parse_perturbations("block:7"), InputError);
  EXPECT_THROW(parse_perturbations("fog"), InputError);
  EXPECT_EQ(parse_steps("1:4"), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(parse_steps("8,1,2,4"), (std::vector<int64_t>{1, 2, 4, 8}));
  EXPECT_THROW(parse_steps("0:3"), InputError);
  EXPECT_THROW(parse_steps("a"), InputError);
  // Trailing text is an error, not dropped (1:2junk was steps 1 and 2; block:4.9 was severity 4).
  for (const char* bad : {"1:2,8", "1:2junk", "1.9:3", "1,,2", "1,", "+2", " 3", ""})
    EXPECT_THROW(parse_steps(bad), InputError) << bad;
  for (const char* bad : {"block:1-2-3", "block:4.9", "debris:2-5junk", "block:", "block:1,", "block:-1"})
    EXPECT_THROW(parse_perturbations(bad), InputError) << bad;
  EXPECT_EQ(parse_perturbations("block:0-2")[0].severities, (std::vector<int>{0, 1, 2}));
  try {  // the message says what the limit is
    parse_steps("1:100000");
    ADD_FAILURE() << "1:100000 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("steps are 1 to 1000"), std::string::npos) << e.what();
  }
}

TEST(Metrics, HandComputedExamples) {
  auto [lo, hi] = wilson_interval(8, 10);
  EXPECT_NEAR(lo, 0.4902, 1e-4);
  EXPECT_NEAR(hi, 0.9433, 1e-4);
  EXPECT_NEAR(mcnemar_p(1, 9), 2.0 * 11 / 1024, 1e-12);  // exact binomial
  EXPECT_NEAR(mcnemar_p(30, 50), 0.033648, 1e-5);         // χ² = 19² / 80 with continuity
  EXPECT_DOUBLE_EQ(mcnemar_p(0, 0), 1.0);
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {5, 6, 7, 8, 7}), 8 / std::sqrt(95.0), 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3}, {3, 2, 1}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(spearman({1, 2, 3}, {1, 1, 1})));
  EXPECT_NEAR(corruption_error({.9, .8}, {.8, .6}), 50.0, 1e-9);
  EXPECT_NEAR(relative_corruption_error({.9, .8}, .95, {.8, .6}, .9), 50.0, 1e-9);
  EXPECT_EQ(iterations_to_solution({false, true, true}), 2);
  EXPECT_EQ(iterations_to_solution({true, false, true}), 3);
  EXPECT_EQ(iterations_to_solution({true, true, false}), 0);
  EXPECT_EQ(iterations_to_solution({true, true, true}), 1);
  EXPECT_DOUBLE_EQ(median({3, 1, 2, 10}), 2.5);
}

TEST(EvalEndToEnd, WritesEveryFileWithTheDocumentedColumns) {
  TempDir dir;
  auto tiny = [&](const std::string& model, const std::string& run) {
    std::vector<std::string> o = {"data.dataset=synthetic:300", "model.name=" + model, "model.width=4",
                                  "train.epochs=1", "train.batch_size=32", "threads=1"};
    if (model == "cortical_blt") o.push_back("model.steps=3");  // cortical_b has one step
    Config cfg = Config::load("", o);
    ASSERT_TRUE(train(cfg, run, false).finished);
  };
  tiny("cortical_blt", dir / "blt");
  tiny("cortical_b", dir / "ff");
  EvalOptions o;
  o.run_dir = dir / "blt";
  o.steps = "1:5";  // beyond the 3 trained steps
  o.perturb = "block:1-2,gaussian_noise:5";
  o.reference = dir / "ff";
  o.exit_thresholds = {0.5, 0.9};
  o.features = {"V1", "IT"};
  o.features_n = 10;
  std::string out = run_eval(o);
  std::string results = read(out + "/results.csv");
  EXPECT_EQ(results.substr(0, results.find('\n')),
            "family,severity,step,accuracy,n,ci_low,ci_high,mean_confidence,present,mask");
  EXPECT_EQ(std::count(results.begin(), results.end(), '\n'), 1 + 4 * 5);  // 4 conditions × 5 steps
  EXPECT_NE(results.find("\nblock,2,5,"), std::string::npos);
  std::string per_image = read(out + "/per_image.csv");
  EXPECT_EQ(per_image.substr(0, per_image.find('\n')),
            "index,label,family,severity,pred_step1,pred_step2,pred_step3,pred_step4,pred_step5");
  EXPECT_EQ(std::count(per_image.begin(), per_image.end(), '\n'), 1 + 4 * 75);
  auto summary = nlohmann::json::parse(read(out + "/summary.json"));
  EXPECT_EQ(summary["clean_accuracy"].size(), 5u);
  EXPECT_TRUE(summary["ca"].contains("block"));
  EXPECT_TRUE(summary["mca"].contains("occlusion"));
  EXPECT_TRUE(summary["mca"].contains("noise"));
  EXPECT_TRUE(summary["delta_rec"]["block"].contains("2"));
  EXPECT_TRUE(summary["reference"]["ce"].contains("gaussian_noise"));
  EXPECT_TRUE(summary["reference"]["mcnemar"]["block"]["1"].contains("p"));
  EXPECT_EQ(summary["reference"]["challenge_accuracy"].size(), 5u);
  EXPECT_EQ(summary["early_exit"].size(), 2u);
  // Accuracy in results.csv matches per_image.csv for one condition (block 2, step 5).
  std::stringstream rows(per_image);
  std::string line;
  std::getline(rows, line);
  int correct = 0, n = 0;
  while (std::getline(rows, line)) {
    std::vector<std::string> c = split_csv_row(line);
    if (c[2] == "block" && c[3] == "2") n++, correct += c[1] == c[8];
  }
  auto pos = results.find("\nblock,2,5,") + 11;
  EXPECT_NEAR(std::stod(results.substr(pos, results.find(',', pos) - pos)), double(correct) / n, 1e-6);
  for (const char* f : {"accuracy_vs_steps.png", "accuracy_vs_severity.png", "early_exit.csv", "features/index.json",
                        "features/V1_step1.npy", "features/IT_step5.npy", "features/labels.npy"})
    EXPECT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  std::string npy = read(out + "/features/V1_step1.npy");
  EXPECT_EQ(npy.substr(1, 5), "NUMPY");
  EXPECT_NE(npy.find("'shape': (10,4)"), std::string::npos) << npy.substr(0, 80);
  EXPECT_EQ((npy.size() - 128) / 4, 40u);  // 10 images × 4 channels after a 128-byte header

  // A folder of PNGs written by `ventral perturb` evaluates like a built-in dataset.
  auto w = ventral::test::run_ventral("perturb --data synthetic:100 --family block:2 --write " + (dir / "folder") +
                                       " --out " + (dir / "sheet.png"));
  ASSERT_EQ(w.status, 0) << w.output;
  EvalOptions f;
  f.run_dir = dir / "blt";
  f.data = "folder:" + (dir / "folder/block/2");
  f.out = dir / "folder_eval";
  run_eval(f);
  auto s2 = nlohmann::json::parse(read(dir / "folder_eval/summary.json"));
  EXPECT_EQ(s2["n"], 25);
  EXPECT_EQ(s2["clean_accuracy"].size(), 3u);
  {
    // Image for image the same predictions as the in-memory perturbation (PNG is lossless).
    // The folder lists images by class and file name, not by index: compare the multisets of
    // (label, prediction at each step).
    LoadedRun loaded = load_run(dir / "blt");
    Dataset perturbed = perturb_dataset(load_dataset("synthetic:100", Split::Test), "block", 2, 0);
    Predictions memory = predict(*loaded.model, perturbed, {1, 2, 3}, loaded.loader_options());
    std::multiset<std::vector<int64_t>> in_memory, from_folder;
    for (size_t i = 0; i < memory.size(); ++i)
      in_memory.insert({memory.labels[i], memory.pred[i * 3], memory.pred[i * 3 + 1], memory.pred[i * 3 + 2]});
    std::stringstream rows(read(dir / "folder_eval/per_image.csv"));
    std::string line;
    std::getline(rows, line);  // index,label,family,severity,pred_step1,pred_step2,pred_step3
    while (std::getline(rows, line)) {
      auto c = split_csv_row(line);
      from_folder.insert({std::stoll(c[1]), std::stoll(c[4]), std::stoll(c[5]), std::stoll(c[6])});
    }
    EXPECT_EQ(from_folder.size(), 25u);
    EXPECT_EQ(from_folder, in_memory);
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "sheet.png"));

  // `ventral compare` predicts the reference once, in its own sweep, and passes its readout to
  // every other model's summary: the reference numbers equal those of `ventral eval
  // --reference`, which predicts the reference itself.
  LoadedRun blt = load_run(dir / "blt"), ff = load_run(dir / "ff");
  Dataset images = evaluation_data(blt, "", "test", 0);
  const auto conditions = parse_conditions(o.perturb);
  SweepResult ff_sweep = sweep(ff, images, conditions, steps_or_default("", ff), o.seed);
  SweepResult ff_readout = ff_sweep.at_step(ff_sweep.readout());
  Summary study = summarize(sweep(blt, images, conditions, parse_steps(o.steps), o.seed), &ff_readout);
  ASSERT_TRUE(study.reference.has_value());
  EXPECT_DOUBLE_EQ(study.reference->clean_accuracy, summary["reference"]["clean_accuracy"].get<double>());
  EXPECT_EQ(study.reference->challenge_images, summary["reference"]["challenge_images"].get<int64_t>());
  EXPECT_DOUBLE_EQ(study.reference->mce, summary["reference"]["mce_all"].get<double>());
  for (const auto& [family, ce] : study.reference->ce)
    EXPECT_DOUBLE_EQ(ce, summary["reference"]["ce"][family].get<double>()) << family;
  EXPECT_EQ(study.reference->mcnemar.at("block").at(2).model_only_correct,
            summary["reference"]["mcnemar"]["block"]["2"]["model_only_correct"].get<int64_t>());

  auto bad = ventral::test::run_ventral("eval " + (dir / "blt") + " --perturb fog");
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("unknown perturbation 'fog'"), std::string::npos) << bad.output;

  // Backward masking: rows per presentation K after the unmasked ones, and a figure.
  auto masked = ventral::test::run_ventral("eval " + (dir / "blt") + " --present 1:2 --mask noise --limit 40 --perturb block:2 --out " +
                                           (dir / "masked"));
  ASSERT_EQ(masked.status, 0) << masked.output;
  std::string mrows = read(dir / "masked/results.csv");
  EXPECT_EQ(std::count(mrows.begin(), mrows.end(), '\n'), 1 + 3 * 2 * 3);  // (unmasked, K=1, K=2) × 2 conditions × 3 steps
  EXPECT_NE(mrows.find("\nclean,0,3,"), std::string::npos);
  EXPECT_NE(mrows.find(",,\n"), std::string::npos);  // unmasked: present and mask empty
  EXPECT_NE(mrows.find(",1,noise\nclean,0,2,"), std::string::npos) << mrows;
  EXPECT_NE(mrows.find("\nblock,2,3,"), std::string::npos);
  EXPECT_NE(mrows.find(",2,noise\n"), std::string::npos);
  // Step 1 precedes any mask: its accuracy is the unmasked one for every K.
  std::map<std::string, std::set<std::string>> step1;
  std::stringstream mr(mrows);
  for (std::string l; std::getline(mr, l);)
    if (auto c = split_csv_row(l); c.size() == 10 && c[2] == "1") step1[c[0]].insert(c[3]);
  EXPECT_EQ(step1["clean"].size(), 1u);
  EXPECT_EQ(step1["block"].size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir / "masked/masking.png"));
  // Models without input at every step, and a mask without a schedule, are one-line errors.
  auto ff_masked = ventral::test::run_ventral("eval " + (dir / "ff") + " --present 1 --out " + (dir / "ffm"));
  EXPECT_EQ(ff_masked.status, 2);
  EXPECT_EQ(std::count(ff_masked.output.begin(), ff_masked.output.end(), '\n'), 1) << ff_masked.output;
  EXPECT_NE(ff_masked.output.find("--present: cortical_b does not take the image at every step"), std::string::npos)
      << ff_masked.output;
  auto no_present = ventral::test::run_ventral("eval " + (dir / "blt") + " --mask noise --out " + (dir / "m2"));
  EXPECT_EQ(no_present.status, 2);
  EXPECT_NE(no_present.output.find("--mask: needs --present"), std::string::npos) << no_present.output;
  auto bad_mask = ventral::test::run_ventral("eval " + (dir / "blt") + " --present 1 --mask fog --out " + (dir / "m3"));
  EXPECT_EQ(bad_mask.status, 2);
  EXPECT_NE(bad_mask.output.find("--mask: expects blank or noise, got 'fog'"), std::string::npos) << bad_mask.output;
}

// Issue 14: seeds. Every model trains once per seed, the report gives mean ± sd, and the
// combined test equals a hand computation from the per-seed evaluations.
TEST(CompareEndToEnd, SeedsTrainEveryModelPerSeedAndTheReportCombinesThem) {
  TempDir dir;
  write_tiny_base(dir);
  ventral::test::write_text(dir / "x.yaml",
                            "base: base.yaml\ntrain_perturb: debris:1-3\nseeds: [0, 1]\nmodels:\n  - name: cortical_b\n"
                            "  - name: cortical_blt\n    config:\n      model.steps: 3\n  - name: blt_clean\n"
                            "    train_perturb: none\n    config:\n      model.name: cortical_blt\n      model.steps: 3\n"
                            "reference: cortical_b\neval:\n  perturb: debris:2\n  limit: 60\n  present: \"1\"\n");
  auto r = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " --out " + (dir / "out"));
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* m : {"cortical_b", "cortical_blt", "blt_clean"})
    for (const char* seed : {"seed0", "seed1"}) {
      const std::string run = dir / ("out/runs/" + std::string(m) + "/" + seed);
      EXPECT_TRUE(std::filesystem::exists(run + "/test.json")) << run;
      const Config cfg = Config::load(run + "/config.yaml");
      EXPECT_EQ(cfg.get_int("seed"), seed == std::string("seed0") ? 0 : 1) << run;
      EXPECT_EQ(cfg.get_string("data.augment.perturb"), std::string(m) == "blt_clean" ? "" : "debris:1-3") << run;
      EXPECT_TRUE(std::filesystem::exists(dir / ("out/eval/" + std::string(m) + "/" + seed + "/results.csv")));
    }
  // Different seeds: different runs.
  EXPECT_NE(read(dir / "out/runs/cortical_blt/seed0/metrics.csv"), read(dir / "out/runs/cortical_blt/seed1/metrics.csv"));
  std::string report = read(dir / "out/REPORT.md");
  EXPECT_NE(report.find("Training seeds: 0, 1."), std::string::npos);
  EXPECT_NE(report.find("## Paired tests against cortical_b over 2 seeds"), std::string::npos) << report;
  EXPECT_NE(report.find("`debris:1-3`"), std::string::npos);
  // The clean row of cortical_blt: per-seed differences from the summaries, by hand.
  std::vector<double> d;
  for (const char* seed : {"seed0", "seed1"}) {
    auto acc = [&](const std::string& m) {
      auto j = nlohmann::json::parse(read(dir / ("out/eval/" + m + "/" + seed + "/summary.json")));
      const auto steps = j["steps"].get<std::vector<int64_t>>();
      const size_t k = static_cast<size_t>(std::find(steps.begin(), steps.end(), j["readout_step"].get<int64_t>()) - steps.begin());
      return std::stod(format_number("%.6f", j["clean_accuracy"][k].get<double>()));
    };
    d.push_back(100 * (acc("cortical_blt") - acc("cortical_b")));
  }
  const double mean = (d[0] + d[1]) / 2, sd = std::fabs(d[0] - d[1]) / std::sqrt(2.0);
  const std::string tests = report.substr(report.find("## Paired tests"));
  std::string row = tests.substr(tests.find("| cortical_blt | clean | "));
  row = row.substr(0, row.find('\n'));
  EXPECT_NE(row.find(format_number("%+.2f", mean) + " ± " + format_number("%.2f", sd)), std::string::npos) << row;
  // df 1: p = 1 − 2/π·atan(|t|) (undefined, a dash, when both seeds differ equally); sign flips
  // of two differences: all-plus and all-minus reach the observed |mean|, the mixed two only
  // when the differences do not share a sign.
  const double p = sd > 0 ? 1 - 2 / M_PI * std::atan(std::fabs(mean) / (sd / std::sqrt(2.0))) : mean == 0 ? 1.0 : NAN;
  const double flips = d[0] * d[1] <= 0 ? 1.0 : 0.5;  // flipping one sign reaches |d0 + d1| iff they do not share a sign
  EXPECT_NE(row.find(" | " + (std::isnan(p) ? std::string("–") : format_number("%.3g", p)) + " | " + format_number("%.3g", flips) + " |"),
            std::string::npos)
      << row << " expected p " << p << " and sign-flip p " << flips;
  // The models table shows mean ± sd with the t-interval.
  std::string blt = report.substr(report.find("| cortical_blt | cortical_blt |"));
  blt = blt.substr(0, blt.find('\n'));
  EXPECT_NE(blt.find(" ± "), std::string::npos) << blt;
  // With 2 seeds Student's t (12.7) reached past 100%: the interval stays within 0–100%.
  const size_t open = blt.find(" ("), dash = blt.find("–", open);
  ASSERT_NE(dash, std::string::npos) << blt;
  EXPECT_GE(std::stod(blt.substr(open + 2)), 0.0) << blt;
  EXPECT_LE(std::stod(blt.substr(dash + std::string("–").size())), 100.0) << blt;
  EXPECT_NE(report.find("Reference (feed-forward baseline): **cortical_b**"), std::string::npos) << report;
  // Backward masking for the models that take the image at every step (not the feed-forward B).
  const std::string masking = report.substr(report.find("## Backward masking"));
  EXPECT_NE(masking.find("| cortical_blt | steps 1–1, then blank |"), std::string::npos) << masking;
  EXPECT_NE(masking.find("| blt_clean | every step (1–3) |"), std::string::npos) << masking;
  EXPECT_EQ(masking.substr(0, masking.find("## Reading")).find("| cortical_b |"), std::string::npos) << masking;
  EXPECT_TRUE(std::filesystem::exists(dir / "out/figures/masking.png"));
  EXPECT_NE(read(dir / "out/eval/cortical_blt/seed0/results.csv").find(",1,blank\n"), std::string::npos);
  // "every step" is the models table's final-step clean accuracy (mean ± sd over the seeds).
  const std::string every_key = "| cortical_blt | every step (1–3) | ";
  std::string every = masking.substr(masking.find(every_key) + every_key.size());
  every = every.substr(0, every.find(" |"));
  EXPECT_NE(blt.find("| " + every + " ("), std::string::npos) << every << " vs " << blt;
  // --seeds replaces the list: a third seed trains only the new runs.
  auto more = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " --seeds 0,1,2 --models cortical_b,cortical_blt --out " +
                                         (dir / "out"));
  ASSERT_EQ(more.status, 0) << more.output;
  EXPECT_NE(more.output.find("cortical_blt (seed 1) already trained"), std::string::npos) << more.output;
  EXPECT_NE(more.output.find("training cortical_blt (seed 2)"), std::string::npos) << more.output;
  EXPECT_NE(read(dir / "out/REPORT.md").find("over 3 seeds"), std::string::npos);
  // Bad seed lists are one-line errors.
  ventral::test::write_text(dir / "twice.yaml", "base: base.yaml\nseeds: [1, 1]\nmodels:\n  - name: cortical_b\n");
  auto twice = ventral::test::run_ventral("compare " + (dir / "twice.yaml"));
  EXPECT_EQ(twice.status, 2);
  EXPECT_NE(twice.output.find("seed 1 is listed twice"), std::string::npos) << twice.output;
  ventral::test::write_text(dir / "neg.yaml", "base: base.yaml\nseeds: [-1]\nmodels:\n  - name: cortical_b\n");
  EXPECT_EQ(ventral::test::run_ventral("compare " + (dir / "neg.yaml")).status, 2);
  ventral::test::write_text(dir / "perturb.yaml", "base: base.yaml\ntrain_perturb: fog:1\nmodels:\n  - name: cortical_b\n");
  auto fog = ventral::test::run_ventral("compare " + (dir / "perturb.yaml"));
  EXPECT_EQ(fog.status, 2);
  EXPECT_NE(fog.output.find("unknown perturbation 'fog'"), std::string::npos) << fog.output;
}

// Every config shipped in configs/ loads and validates, so a recipe cannot rot: training
// configs through the schema and the model and data checks, experiments through load_experiment.
TEST(Configs, EveryShippedConfigLoadsAndValidates) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(VENTRAL_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string path = entry.path().string();
    const bool experiment = read(path).find("\nmodels:") != std::string::npos;
    SCOPED_TRACE(path);
    if (experiment) {
      Experiment x = load_experiment(path);
      EXPECT_FALSE(x.models.empty());
    } else {
      Config cfg = Config::load(path);
      check_model_options(cfg);
      training_perturbation(cfg);
      TrainOptions::from_config(cfg);
    }
    ++n;
  }
  EXPECT_GE(n, 14);
}

TEST(CompareExperiment, PerModelBaseSubsetAndEvalOverrides) {
  TempDir dir;
  ventral::test::write_text(dir / "a.yaml", "model:\n  name: resnet20\n");
  ventral::test::write_text(dir / "b.yaml", "train:\n  epochs: 3\n");
  ventral::test::write_text(dir / "x.yaml",
                            "base: a.yaml\nmodels:\n  - name: resnet20\n  - name: cortical_blt\n    base: b.yaml\n"
                            "  - name: blt_sync\n    base: b.yaml\n    config:\n      model.name: cortical_blt\n"
                            "      model.unroll: synchronous\nreference: resnet20\neval:\n  steps: \"1:8\"\n  limit: 100\n");
  Experiment x = load_experiment(dir / "x.yaml", {"eval.limit=7", "eval.steps=1:2", "train.epochs=2"});
  ASSERT_EQ(x.models.size(), 3u);
  EXPECT_EQ(x.models[0].base, "");
  EXPECT_EQ(std::filesystem::path(x.models[1].base).filename(), "b.yaml");
  EXPECT_EQ(x.limit, 7);
  EXPECT_EQ(x.steps, "1:2");
  EXPECT_EQ(x.overrides, std::vector<std::string>{"train.epochs=2"});
  Experiment only = load_experiment(dir / "x.yaml", {}, {"resnet20", "blt_sync"});
  ASSERT_EQ(only.models.size(), 2u);
  EXPECT_EQ(only.models[1].name, "blt_sync");
  EXPECT_EQ(only.limit, 100);
  EXPECT_THROW(load_experiment(dir / "x.yaml", {}, {"cortical_blt"}), InputError);  // drops the reference
  EXPECT_THROW(load_experiment(dir / "x.yaml", {}, {"resnet20", "cornet"}), InputError);
  EXPECT_THROW(load_experiment(dir / "x.yaml", {"eval.limit=ten"}), InputError);
  EXPECT_THROW(load_experiment(dir / "x.yaml", {"eval.stepz=3"}), InputError);
  ventral::test::write_text(dir / "twice.yaml", "base: a.yaml\nmodels:\n  - name: resnet20\n  - name: resnet20\n");
  EXPECT_THROW(load_experiment(dir / "twice.yaml"), InputError);
}

TEST(CompareEndToEnd, ReportTableMatchesTheEvaluation) {
  TempDir dir;
  write_tiny_base(dir);
  ventral::test::write_text(dir / "x.yaml",
                            "base: base.yaml\nmodels:\n  - name: cortical_b\n  - name: cortical_blt\n    config:\n"
                            "      model.steps: 3\nreference: cortical_b\neval:\n  steps: \"1:4\"\n"
                            "  perturb: block:1-2,gaussian_noise:3\n  limit: 60\n");
  auto r = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " --out " + (dir / "out"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::string report = read(dir / "out/REPORT.md");
  for (const char* fig : {"figures/accuracy_vs_steps.png", "figures/accuracy_vs_severity.png",
                          "figures/training_curves.png", "figures/perturbations.png"}) {
    EXPECT_NE(report.find(fig), std::string::npos) << fig;
    EXPECT_TRUE(std::filesystem::exists(dir / ("out/" + std::string(fig)))) << fig;
  }
  // The table's clean accuracy at the final step (the trained step count: 3 for cortical_blt,
  // evaluated at 1-4) equals results.csv for each model.
  for (const char* m : {"cortical_b", "cortical_blt"}) {
    std::string results = read(dir / ("out/eval/" + std::string(m) + "/results.csv"));
    auto summary = nlohmann::json::parse(read(dir / ("out/eval/" + std::string(m) + "/summary.json")));
    int64_t readout = summary["readout_step"];
    EXPECT_EQ(readout, std::string(m) == "cortical_blt" ? 3 : 1);
    std::string last_clean;
    std::stringstream rows(results);
    for (std::string line; std::getline(rows, line);)
      if (line.rfind("clean,0," + std::to_string(readout) + ",", 0) == 0) last_clean = line;
    ASSERT_FALSE(last_clean.empty()) << m;
    std::vector<std::string> c = split_csv_row(last_clean);
    char expected[32];
    std::snprintf(expected, sizeof expected, "%.2f (", 100 * std::stod(c[3]));
    std::string row = report.substr(report.find("| " + std::string(m) + " | " + m));
    row = row.substr(0, row.find('\n'));
    EXPECT_NE(row.find(expected), std::string::npos) << row << " vs " << last_clean;
  }
  EXPECT_NE(report.find("## Reading"), std::string::npos);
  EXPECT_NE(report.find("cortical_blt: clean accuracy"), std::string::npos);
  // A second run reuses the trained models instead of retraining.
  auto again = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " --out " + (dir / "out"));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already trained, reusing"), std::string::npos);
  // ...but not one trained with another recipe: that is an error before anything runs.
  auto changed = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " train.epochs=2 --out " + (dir / "out"));
  EXPECT_EQ(changed.status, 2);
  EXPECT_NE(changed.output.find("runs/cortical_b/config.yaml: this run of cortical_b was trained with a different "
                                "config than the experiment asks for (train.epochs: 1 -> 2)"),
            std::string::npos)
      << changed.output;
  // Execution-only keys (threads) may differ.
  auto threads = ventral::test::run_ventral("compare " + (dir / "x.yaml") + " threads=2 eval.limit=20 --out " + (dir / "out"));
  EXPECT_EQ(threads.status, 0) << threads.output;
  // Bad experiment files are one-line errors.
  ventral::test::write_text(dir / "bad.yaml", "base: base.yaml\nmodels:\n  - name: resnet21\n");
  auto bad = ventral::test::run_ventral("compare " + (dir / "bad.yaml"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("unknown model 'resnet21'"), std::string::npos) << bad.output;
  ventral::test::write_text(dir / "typo.yaml", "base: base.yaml\nmodel:\n  - name: resnet20\n");
  auto typo = ventral::test::run_ventral("compare " + (dir / "typo.yaml"));
  EXPECT_NE(typo.output.find("did you mean 'models'"), std::string::npos) << typo.output;
}

TEST(Plot, GridSharesOneLegendAndDashesSeriesPastThePalette) {
  auto chart = [](int n, const std::string& prefix) {
    Chart c{"panel", "step", "accuracy", {}, NAN, NAN};
    for (int k = 0; k < n; ++k) c.series.push_back({prefix + "model_with_a_long_name_" + std::to_string(k), {1, 2, 3}, {0.1 * k, 0.1 * k, 0.1 * k}});
    return c;
  };
  // Same ten series in both panels: one legend strip under the grid, no legend column in the panels.
  cv::Mat shared = render_grid({chart(10, ""), chart(10, "")}, "t", 2, 420, 300);
  ASSERT_GT(shared.rows, 36 + 300);
  cv::Mat strip = shared.rowRange(36 + 300, shared.rows);
  cv::Mat gray;
  cv::cvtColor(strip, gray, cv::COLOR_BGR2GRAY);
  EXPECT_GT(cv::countNonZero(gray < 128), 200);  // names and line samples are drawn
  // Different series per panel: each keeps its own legend, no strip.
  cv::Mat separate = render_grid({chart(3, "a"), chart(3, "b")}, "t", 2, 420, 300);
  EXPECT_EQ(separate.rows, 36 + 300);
  // Series 0 and 8 share a colour; 8 is dashed, so its line sample has gaps.
  Chart two{"", "x", "y", {{"solid", {0, 1}, {0, 0}}}, NAN, NAN};
  for (int k = 1; k <= 8; ++k) two.series.push_back({"s" + std::to_string(k), {0, 1}, {double(k), double(k)}});
  cv::Mat img = render_chart(two, 640, 420);
  auto dark_in_row = [&](int y, int x0, int x1) {
    int n = 0;
    for (int x = x0; x < x1; ++x) {
      cv::Vec3b p = img.at<cv::Vec3b>(y, x);
      n += p[0] < 60 && p[1] < 60 && p[2] < 60;
    }
    return n;
  };
  // The y of series 0 (value 0) and series 8 (value 8) on the plot: bottom and top of the range.
  int solid = 0, dashed = 0;
  for (int y = 30; y < 420 - 46; ++y) {
    int n = dark_in_row(y, 120, 300);
    if (n > 150) solid++;
    else if (n > 60) dashed++;
  }
  EXPECT_GT(solid, 0);
  EXPECT_GT(dashed, 0);
}

// Issue 17: folder class names are matched to the model's by name (exactly, ignoring case,
// spaces and punctuation, or through --class-map), never assumed to be in the same order.
TEST(EvaluationData, FolderClassesAreMatchedByNameNeverByPosition) {
  TempDir dir;
  auto image = [&](const std::string& path) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    cv::imwrite(path, cv::Mat(28, 28, CV_8UC1, cv::Scalar(7)));
  };
  LoadedRun run;
  run.classes = {"T-shirt/top", "Trouser", "Ankle boot"};
  run.channels = 1;
  run.image_size = 28;
  // Sorted folder names are ankle-boot, t-shirt-top, trouser: another order than the model's.
  image(dir / "a/trouser/1.png");
  image(dir / "a/t-shirt-top/1.png");
  image(dir / "a/ankle-boot/1.png");
  Dataset d = evaluation_data(run, "folder:" + (dir / "a"), "test", 0);
  EXPECT_EQ(d.classes, run.classes);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{2, 0, 1}));  // ankle-boot, t-shirt-top, trouser
  image(dir / "b/sandal/1.png");
  image(dir / "b/trouser/1.png");
  auto error = [&](const std::string& map) {
    try {
      evaluation_data(run, "folder:" + (dir / "b"), "test", 0, map);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  std::string unmatched = error("");
  EXPECT_NE(unmatched.find("'sandal' match none of the model's classes (T-shirt/top, Trouser, Ankle boot)"),
            std::string::npos) << unmatched;
  EXPECT_NE(unmatched.find("--class-map"), std::string::npos) << unmatched;
  ventral::test::write_text(dir / "map.tsv", "# folder\tmodel class\nsandal\tAnkle boot\n");
  EXPECT_EQ(error(dir / "map.tsv"), "(accepted)");
  Dataset mapped = evaluation_data(run, "folder:" + (dir / "b"), "test", 0, dir / "map.tsv");
  EXPECT_EQ(mapped.labels, (std::vector<int64_t>{2, 1}));  // sandal -> Ankle boot, trouser
  ventral::test::write_text(dir / "bad.tsv", "sandal Ankle boot\n");
  EXPECT_NE(error(dir / "bad.tsv").find("bad.tsv:1: expected 'folder name<TAB>model class name'"), std::string::npos);
  // A map line naming no class of the model is a typo in the map; a folder mapped twice is ambiguous.
  ventral::test::write_text(dir / "wrong.tsv", "sandal\tSneaker\n");
  EXPECT_NE(error(dir / "wrong.tsv").find("wrong.tsv: maps 'sandal' to 'Sneaker', which is not a class of the model"),
            std::string::npos) << error(dir / "wrong.tsv");
  ventral::test::write_text(dir / "twice.tsv", "sandal\tTrouser\nsandal\tAnkle boot\n");
  EXPECT_NE(error(dir / "twice.tsv").find("twice.tsv:2: folder 'sandal' is mapped twice"), std::string::npos)
      << error(dir / "twice.tsv");
  // Model classes that normalise to the same key: a loose match would pick one of them at random.
  LoadedRun twins = run;
  twins.classes = {"Ankle boot", "ankle-boot", "Trouser"};
  image(dir / "c/ANKLE BOOT/1.png");
  std::string ambiguous;
  try {
    evaluation_data(twins, "folder:" + (dir / "c"), "test", 0);
  } catch (const InputError& e) {
    ambiguous = e.what();
  }
  EXPECT_NE(ambiguous.find("class 'ANKLE BOOT' matches 2 of the model's classes once case, spaces and punctuation are "
                           "ignored ('Ankle boot', 'ankle-boot')"),
            std::string::npos) << ambiguous;
}

// Issue 14: statistics over seeds, checked against closed forms.
TEST(Metrics, SeedStatisticsMatchHandComputations) {
  // t quantiles (tables): df 2 → 4.302653, df 4 → 2.776445, df 30 → 2.042272.
  EXPECT_NEAR(student_t_quantile_975(2), 4.302653, 1e-5);
  EXPECT_NEAR(student_t_quantile_975(4), 2.776445, 1e-5);
  EXPECT_NEAR(student_t_quantile_975(30), 2.042272, 1e-5);
  // Closed forms of the two-sided p: df 1 → 1 − 2/π·atan|t|; df 2 → 1 − |t|/√(t² + 2).
  EXPECT_NEAR(student_t_two_sided_p(1.7, 1), 1 - 2 / M_PI * std::atan(1.7), 1e-10);
  EXPECT_NEAR(student_t_two_sided_p(-3.2, 2), 1 - 3.2 / std::sqrt(3.2 * 3.2 + 2), 1e-10);
  EXPECT_NEAR(student_t_two_sided_p(0, 5), 1.0, 1e-12);
  // Per-seed accuracies 90, 92, 94 %: mean 92, sd 2, 95% interval 92 ± 4.302653·2/√3.
  SeedStats s = seed_stats({0.90, 0.92, 0.94});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.92, 1e-12);
  EXPECT_NEAR(s.sd, 0.02, 1e-12);
  EXPECT_NEAR(s.ci_high - s.mean, 4.302653 * 0.02 / std::sqrt(3.0), 1e-6);
  EXPECT_NEAR(s.mean - s.ci_low, 4.302653 * 0.02 / std::sqrt(3.0), 1e-6);
  EXPECT_TRUE(std::isnan(seed_stats({0.9}).sd));
  // A fixed table of per-seed differences (model − reference, points): +1, +2, +3.
  // t = 2 / (1/√3) = 3.4641, df 2: p = 1 − t/√(t² + 2) = 0.074180. Sign flips: only all-plus and
  // all-minus reach |mean| 2 → 2/8.
  EXPECT_NEAR(paired_t_p({1, 2, 3}), 1 - std::sqrt(12.0) / std::sqrt(14.0), 1e-9);
  EXPECT_NEAR(paired_t_p({1, 2, 3}), 0.074180, 1e-6);
  EXPECT_DOUBLE_EQ(sign_flip_p({1, 2, 3}), 0.25);
  // Five seeds, one against: {+2, +1, +3, −1, +2}, sum 7. Flipping a subset F gives 7 − 2·ΣF, so
  // |sum| ≥ 7 needs ΣF ≤ 0 ({}, {−1}, {+1, −1}) or ΣF ≥ 7 (their complements): 6 of 32 patterns.
  EXPECT_DOUBLE_EQ(sign_flip_p({2, 1, 3, -1, 2}), 6.0 / 32.0);
  EXPECT_TRUE(std::isnan(paired_t_p({1.5})));
  EXPECT_TRUE(std::isnan(paired_t_p({2, 2, 2})));  // no spread: t undefined
  EXPECT_DOUBLE_EQ(paired_t_p({0, 0}), 1.0);
  // A measure that does not exist (NaN) is never significant.
  EXPECT_TRUE(std::isnan(sign_flip_p({1, NAN, 2})));
  EXPECT_TRUE(std::isnan(paired_t_p({1, NAN, 2})));
  EXPECT_TRUE(std::isnan(sign_flip_p({})));
  // Tiny differences count exactly like large ones.
  EXPECT_DOUBLE_EQ(sign_flip_p({1e-7, 2e-7, 3e-7}), 0.25);
}

// Issue 14: backward masking. A blank mask is zero input, and a cortical net's bottom-up
// convolution has no bias, so "image at step 1, then blank" must equal the same weights built
// to see the image at the first step only (model.input_every_step: false).
TEST(Masking, BlankAfterStepOneEqualsAModelThatSeesTheImageOnlyOnce) {
  auto build = [](bool every_step) {
    Config cfg = Config::load("", {"model.name=cortical_blt", "model.width=4", "model.steps=4",
                                   std::string("model.input_every_step=") + (every_step ? "true" : "false")});
    return create_model("cortical_blt", model_options(cfg, 1, 10, 28));
  };
  torch::manual_seed(7);
  ModelPtr every = build(true), once = build(false);
  {
    torch::NoGradGuard no_grad;
    auto src = every->named_parameters();
    for (auto& p : once->named_parameters()) p.value().copy_(src[p.key()]);
    auto bsrc = every->named_buffers();
    for (auto& b : once->named_buffers()) b.value().copy_(bsrc[b.key()]);
  }
  every->eval();
  once->eval();
  ASSERT_TRUE(every->takes_input_every_step());
  ASSERT_FALSE(once->takes_input_every_step());
  torch::Tensor x = torch::rand({6, 1, 28, 28});
  {
    torch::NoGradGuard no_grad;
    every->set_step_inputs({x, torch::zeros_like(x)});
    auto masked = every->forward(x, 4);
    every->set_step_inputs({});
    auto seen_once = once->forward(x, 4), unmasked = every->forward(x, 4);
    for (size_t t = 0; t < 4; ++t) EXPECT_TRUE(torch::equal(masked[t], seen_once[t])) << "step " << t + 1;
    EXPECT_TRUE(torch::equal(masked[0], unmasked[0]));   // step 1 saw the image either way
    EXPECT_FALSE(torch::equal(masked[3], unmasked[3]));  // the mask changed what followed
  }
  // The same through ventral eval's prediction loop (mask built per batch, schedule set and cleared).
  const std::vector<int64_t> steps = {1, 2, 3, 4};
  LoaderOptions o;
  o.batch_size = 32;
  const MaskSchedule blank{1, "blank", 0};
  Predictions masked = predict(*every, shapes(), steps, o, "", &blank);
  Predictions seen_once = predict(*once, shapes(), steps, o);
  EXPECT_EQ(masked.pred, seen_once.pred);
  EXPECT_EQ(masked.conf, seen_once.conf);
  // Shown at every step (K = 4 of 4): the same as no schedule.
  const MaskSchedule all_steps{4, "blank", 0};
  EXPECT_EQ(predict(*every, shapes(), steps, o, "", &all_steps).conf, predict(*every, shapes(), steps, o).conf);
  // The schedule is gone afterwards: a plain prediction is unmasked again.
  EXPECT_NE(predict(*every, shapes(), steps, o).conf, masked.conf);
  // Noise: per image, whatever the batch size; equal to presenting image, image, noise by hand.
  const MaskSchedule noise{2, "noise", 5};
  Predictions by32 = predict(*every, shapes(), steps, o, "", &noise);
  o.batch_size = 7;
  const Predictions by7 = predict(*every, shapes(), steps, o, "", &noise);
  EXPECT_EQ(by7.pred, by32.pred);
  for (size_t i = 0; i < by7.conf.size(); ++i) ASSERT_NEAR(by7.conf[i], by32.conf[i], 1e-5) << i;  // batch-size rounding only
  std::vector<int64_t> first(8);
  std::iota(first.begin(), first.end(), 0);
  torch::Tensor eight = torch::empty({8, 1, 28, 28});
  for (int64_t i = 0; i < 8; ++i) render_sample(shapes(), i, LoaderOptions{}, 0, eight.data_ptr<float>() + i * 28 * 28);
  torch::Tensor mask = mask_images(noise, eight, first);
  EXPECT_NEAR(mask.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(mask.std().item<double>(), 1.0, 0.05);
  torch::NoGradGuard no_grad;
  every->set_step_inputs({eight, eight, mask});
  auto by_hand = every->forward(eight, 4);
  every->set_step_inputs({});
  for (int64_t i = 0; i < 8; ++i)
    EXPECT_NEAR(torch::softmax(by_hand[3][i], 0).max().item<float>(), by32.conf[static_cast<size_t>(i) * 4 + 3], 1e-6) << i;
  // A model that does not take the image at every step cannot be masked.
  EXPECT_THROW(predict(*once, shapes(), steps, o, "", &blank), std::invalid_argument);
}
