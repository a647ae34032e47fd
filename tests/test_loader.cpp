#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/config.hpp"
#include "core/rng.hpp"
#include "datasets/experiment.hpp"
#include "datasets/loader.hpp"
#include "helpers.hpp"
#include "inference/checkpoint.hpp"

using namespace ventral;

namespace {

// A 2-image, 1×4×4 dataset whose pixel values are their own positions: 0, 10, 20, ...
Dataset ramp() {
  Dataset d;
  d.height = d.width = 4;
  d.channels = 1;
  d.classes = {"a", "b"};
  for (int i = 0; i < 2; ++i) {
    for (int p = 0; p < 16; ++p) d.pixels.push_back(static_cast<uint8_t>(p * 10 + i));
    d.labels.push_back(i);
  }
  return d;
}

std::vector<torch::Tensor> epoch_batches(BatchLoader& loader, int64_t epoch) {
  std::vector<torch::Tensor> out;
  loader.start_epoch(epoch);
  while (auto b = loader.next()) {
    out.push_back(b->images);
    out.push_back(b->labels);
  }
  return out;
}

}  // namespace

TEST(Render, NormalisesWithMeanAndStd) {
  Dataset d = ramp();
  LoaderOptions o;
  o.mean = {0.5};
  o.std = {0.25};
  std::vector<float> out(16);
  render_sample(d, 0, o, 0, out.data());
  for (int p = 0; p < 16; ++p) EXPECT_NEAR(out[p], (p * 10 / 255.0 - 0.5) / 0.25, 1e-5);
  o.mean.clear();
  render_sample(d, 1, o, 0, out.data());
  EXPECT_NEAR(out[3], 31 / 255.0, 1e-6);
}

TEST(Render, FlipMirrorsEveryRow) {
  Dataset d = ramp();
  LoaderOptions o;
  o.augment = true;
  o.augmentation.hflip = true;
  std::vector<float> plain(16), out(16);
  LoaderOptions off = o;
  off.augment = false;
  int flipped = 0;
  for (int epoch = 0; epoch < 40; ++epoch) {
    render_sample(d, 0, o, epoch, out.data());
    render_sample(d, 0, off, epoch, plain.data());
    bool same = out == plain;
    bool mirrored = true;
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) mirrored &= out[y * 4 + x] == plain[y * 4 + 3 - x];
    EXPECT_TRUE(same || mirrored);
    flipped += mirrored;
  }
  EXPECT_GT(flipped, 8);  // p = 1/2 over 40 draws
  EXPECT_LT(flipped, 32);
}

TEST(Render, CropWithPaddingShiftsAndFillsBlack) {
  Dataset d = ramp();
  LoaderOptions o;
  o.augment = true;
  o.augmentation.crop_padding = 1;
  std::vector<float> out(16);
  std::set<std::vector<float>> seen;
  for (int epoch = 0; epoch < 60; ++epoch) {
    render_sample(d, 0, o, epoch, out.data());
    // Each output is the image shifted by (dy, dx) in {-1,0,1}² with zeros shifted in.
    bool matched = false;
    for (int dy = -1; dy <= 1 && !matched; ++dy)
      for (int dx = -1; dx <= 1 && !matched; ++dx) {
        bool ok = true;
        for (int y = 0; y < 4; ++y)
          for (int x = 0; x < 4; ++x) {
            int sy = y + dy, sx = x + dx;
            float want = (sy >= 0 && sy < 4 && sx >= 0 && sx < 4) ? (sy * 4 + sx) * 10 / 255.f : 0.f;
            ok &= std::abs(out[y * 4 + x] - want) < 1e-6;
          }
        matched = ok;
      }
    EXPECT_TRUE(matched);
    seen.insert(out);
  }
  EXPECT_EQ(seen.size(), 9u);  // all nine shifts occur
}

TEST(Render, ErasingZeroesARectangle) {
  Dataset d;
  d.height = d.width = 16;
  d.channels = 1;
  d.classes = {"a"};
  d.pixels.assign(256, 255);
  d.labels = {0};
  LoaderOptions o;
  o.augment = true;
  o.augmentation.erasing = 1.0;
  std::vector<float> out(256);
  render_sample(d, 0, o, 0, out.data());
  int zeros = static_cast<int>(std::count(out.begin(), out.end(), 0.f));
  EXPECT_GE(zeros, 1);
  EXPECT_LE(zeros, static_cast<int>(0.45 * 256));
}

TEST(Loader, SameBatchesWhateverTheThreadCount) {
  Dataset d = load_dataset("synthetic:300", Split::Train);
  LoaderOptions o;
  o.batch_size = 32;
  o.augment = true;
  o.augmentation = {2, true, 0.5};
  o.mean = {0.2};
  o.std = {0.3};
  o.seed = 11;
  o.threads = 1;
  BatchLoader one(d, {}, o);
  o.threads = 3;
  o.prefetch = 1;
  BatchLoader three(d, {}, o);
  for (int64_t epoch : {0, 1}) {
    auto a = epoch_batches(one, epoch);
    auto b = epoch_batches(three, epoch);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(a.size(), 2u * 10);  // 300 / 32 → 10 batches, last partial
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  }
  EXPECT_FALSE(torch::equal(epoch_batches(one, 0)[1], epoch_batches(one, 1)[1]));  // reshuffled
}

TEST(Loader, CoversEveryIndexOnceAndHonoursDropLast) {
  Dataset d = load_dataset("synthetic:100", Split::Train);
  std::vector<int64_t> subset;
  for (int64_t i = 0; i < 100; i += 2) subset.push_back(i);
  LoaderOptions o;
  o.batch_size = 16;
  o.threads = 2;
  BatchLoader loader(d, subset, o);
  loader.start_epoch(0);
  std::vector<int64_t> seen;
  while (auto b = loader.next()) {
    seen.insert(seen.end(), b->indices.begin(), b->indices.end());
    for (size_t k = 0; k < b->indices.size(); ++k)
      EXPECT_EQ(b->labels[k].item<int64_t>(), d.labels[b->indices[k]]);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, subset);
  o.drop_last = true;
  BatchLoader dropping(d, subset, o);
  EXPECT_EQ(dropping.batches_per_epoch(), 3);
  dropping.start_epoch(0);
  int n = 0;
  while (auto b = dropping.next()) {
    EXPECT_EQ(b->images.size(0), 16);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(Loader, UnshuffledOrderIsTheIndexOrder) {
  Dataset d = load_dataset("synthetic:50", Split::Train);
  LoaderOptions o;
  o.batch_size = 50;
  o.shuffle = false;
  BatchLoader loader(d, {}, o);
  loader.start_epoch(0);
  auto b = loader.next();
  ASSERT_TRUE(b);
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(b->indices[i], i);
  EXPECT_FLOAT_EQ(b->images[7][0][3][4].item<float>(), d.image(7)[3 * 28 + 4] / 255.f);
  // Abandoning an epoch midway and starting another must not hang.
  loader.start_epoch(1);
  loader.start_epoch(2);
  EXPECT_TRUE(loader.next().has_value());
}

TEST(Rng, PortableStreams) {
  Rng a({1, 2, 3}), b({1, 2, 3}), c({1, 2, 4});
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng({1, 2, 3}).next(), c.next());
  EXPECT_EQ(mix64(0), 0xe220a8397b1dcdafULL);  // splitmix64 reference value
  Rng r(5);
  double sum = 0, sq = 0;
  for (int i = 0; i < 20000; ++i) {
    double v = r.normal();
    sum += v;
    sq += v * v;
  }
  EXPECT_NEAR(sum / 20000, 0.0, 0.03);
  EXPECT_NEAR(sq / 20000, 1.0, 0.05);
}

// data.augment.perturb: family and severity per (seed, epoch, index), perturb_image underneath.
namespace {
LoaderOptions perturbing(const std::string& spec, double fraction, uint64_t seed = 3) {
  LoaderOptions o;
  o.perturbation.specs = parse_perturbations(spec);
  o.perturbation.fraction = fraction;
  o.seed = seed;
  return o;
}
std::vector<float> rendered(const Dataset& d, int64_t index, const LoaderOptions& o, int64_t epoch) {
  std::vector<float> out(d.image_bytes());
  render_sample(d, index, o, epoch, out.data());
  return out;
}
}  // namespace

TEST(TrainPerturbation, DrawsDependOnlyOnSeedEpochAndIndex) {
  const Dataset d = make_synthetic(64, 1);
  const LoaderOptions o = perturbing("debris:1-5,block:2-4", 1.0);
  int differ_by_epoch = 0, differ_from_clean = 0;
  const LoaderOptions clean;
  for (int64_t i = 0; i < 32; ++i) {
    EXPECT_EQ(rendered(d, i, o, 2), rendered(d, i, o, 2)) << i;  // same (seed, epoch, index): same image
    differ_by_epoch += rendered(d, i, o, 2) != rendered(d, i, o, 3);
    differ_from_clean += rendered(d, i, o, 2) != rendered(d, i, clean, 2);
    // What is drawn is what perturb_image makes of the image.
    const PerturbationDraw draw = draw_perturbation(o, 2, i);
    ASSERT_GE(draw.family, 0);
    std::vector<uint8_t> expected(d.image_bytes());
    perturb_image(d, i, o.perturbation.specs[static_cast<size_t>(draw.family)].family, draw.severity,
                  perturbation_seed(o, 2), expected.data());
    const std::vector<float> got = rendered(d, i, o, 2);
    for (size_t p = 0; p < expected.size(); ++p) ASSERT_FLOAT_EQ(got[p], expected[p] / 255.f) << i << " pixel " << p;
  }
  EXPECT_GE(differ_by_epoch, 28);  // another epoch: other draws (a rare draw may repeat)
  EXPECT_GE(differ_from_clean, 30);
  // Another seed draws differently.
  int differ_by_seed = 0;
  for (int64_t i = 0; i < 32; ++i) differ_by_seed += rendered(d, i, o, 2) != rendered(d, i, perturbing("debris:1-5,block:2-4", 1.0, 4), 2);
  EXPECT_GE(differ_by_seed, 28);
}

TEST(TrainPerturbation, FamiliesSeveritiesAndTheCleanShareAreUniformOver10000Draws) {
  const LoaderOptions o = perturbing("debris:1-5,block:2-4", 0.8);
  const int n = 10000;
  int clean = 0;
  std::map<std::pair<int, int>, int> counts;
  std::map<int, int> by_family;
  for (int64_t i = 0; i < n; ++i) {
    const PerturbationDraw d = draw_perturbation(o, 5, i);
    if (d.family < 0) {
      ++clean;
      continue;
    }
    ++counts[{d.family, d.severity}];
    ++by_family[d.family];
  }
  const int perturbed = n - clean;
  EXPECT_NEAR(static_cast<double>(perturbed) / n, 0.8, 0.02);
  ASSERT_EQ(by_family.size(), 2u);
  for (const auto& [family, c] : by_family) EXPECT_NEAR(static_cast<double>(c) / perturbed, 0.5, 0.02) << family;
  // debris 1..5 (1/5 each of its draws), block 2..4 (1/3 each); nothing else.
  EXPECT_EQ(counts.size(), 8u);
  for (const auto& [key, c] : counts) {
    const auto& severities = o.perturbation.specs[static_cast<size_t>(key.first)].severities;
    ASSERT_NE(std::find(severities.begin(), severities.end(), key.second), severities.end());
    EXPECT_NEAR(static_cast<double>(c) / by_family[key.first], 1.0 / static_cast<double>(severities.size()), 0.02)
        << key.first << ":" << key.second;
  }
  // Off (no spec, or fraction 0): nothing is drawn as perturbed.
  EXPECT_LT(draw_perturbation(LoaderOptions{}, 0, 0).family, 0);
  EXPECT_LT(draw_perturbation(perturbing("debris", 0.0), 0, 0).family, 0);
}

TEST(TrainPerturbation, LoaderBatchesAreTheSameWhateverTheThreadCount) {
  const Dataset d = make_synthetic(100, 2);
  LoaderOptions o = perturbing("debris:1-5,bubbles:3", 0.7);
  o.batch_size = 16;
  o.augment = true;
  o.augmentation = {2, true, 0.3};
  o.threads = 1;
  BatchLoader one(d, {}, o);
  o.threads = 3;
  BatchLoader three(d, {}, o);
  const auto a = epoch_batches(one, 1), b = epoch_batches(three, 1);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
}

// data.preset=imagenet against torchvision itself (issue 16): 20 generated PNGs of odd sizes and
// aspect ratios, whose red, green and blue channels differ, decoded, resized (shorter side 256),
// centre-cropped (224) and normalised by ventral's folder reader and evaluation loader equal
// torchvision's Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize (measured: equal);
// the same comparison with the channels reversed (BGR) fails. python/ventral_torch's Preprocess
// is within 2 levels of both.
TEST(Preprocessing, ImagenetPresetEqualsTorchvisionWithinTwoLevels) {
  if (ventral::test::run_shell("/usr/bin/python3 -c 'import torchvision, PIL'").status != 0)
    GTEST_SKIP() << "python3-torchvision or python3-pil is not installed (scripts/setup installs them)";
  ventral::test::TempDir dir;
  const std::vector<std::pair<int, int>> sizes = {{257, 301}, {1000, 333}, {333, 1000}, {224, 224}, {255, 999},
                                                  {600, 450}, {450, 600}, {301, 257}, {513, 511}, {97, 389},
                                                  {389, 97},  {256, 256}, {640, 480}, {480, 640}, {223, 225},
                                                  {1023, 767}, {767, 1023}, {300, 700}, {701, 299}, {129, 131}};
  Rng rng({7, 0});
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto [w, h] = sizes[i];
    cv::Mat rgb(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        // Red: a horizontal ramp; green: vertical stripes of period 7; blue: noise.
        auto* p = rgb.ptr<uint8_t>(y) + 3 * x;
        p[0] = static_cast<uint8_t>(255 * x / std::max(1, w - 1));
        p[1] = static_cast<uint8_t>(((x / 7 + y / 5) % 2) ? 220 : 30);
        p[2] = static_cast<uint8_t>(rng.below(256));
      }
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    const std::string cls = dir / (i % 2 ? "b" : "a");
    std::filesystem::create_directories(cls);
    ASSERT_TRUE(cv::imwrite(cls + "/img" + std::to_string(100 + i) + ".png", bgr));
  }
  auto r = ventral::test::run_shell("/usr/bin/python3 " + std::string(VENTRAL_SOURCE_DIR) +
                                    "/tests/python/torchvision_preprocess.py " + dir.str() + " " + (dir / "tv.pt"));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(r.output, "20\n");
  const torch::Tensor theirs = read_state_dict(dir / "tv.pt").at("x");

  Config cfg;
  cfg.set("data.preset=imagenet");
  const Preprocessing pre = preprocessing(cfg);
  EXPECT_EQ(pre.load.resize, 256);
  EXPECT_EQ(pre.load.center_crop, 224);
  Dataset d = load_dataset("folder:" + dir.str(), Split::Test, pre.load);
  ASSERT_EQ(d.size(), 20u);
  EXPECT_EQ(d.height, 224);
  EXPECT_EQ(d.channels, 3);
  BatchLoader loader(d, {}, evaluation_loader_options(cfg, pre.mean, pre.std));
  loader.start_epoch(0);
  std::vector<torch::Tensor> batches;
  while (auto b = loader.next()) batches.push_back(b->images);
  const torch::Tensor ours = torch::cat(batches);
  ASSERT_EQ(ours.sizes(), theirs.sizes());
  const torch::Tensor std = torch::tensor(pre.std, torch::kFloat).view({1, 3, 1, 1});
  const double levels = ((ours - theirs).abs() * std).max().item<double>() * 255;
  // The issue asks for 2/255; PIL's fixed-point resampling is reproduced, so the 8-bit values
  // are equal and only float rounding of the normalisation remains.
  EXPECT_LE(levels, 0.01) << "largest difference in 8-bit levels";
  // ventral_torch.Preprocess (torch's antialiased bilinear interpolation in float, not PIL's
  // 8-bit passes) stays within a level of both.
  const torch::Tensor twin = read_state_dict(dir / "tv.pt").at("twin");
  EXPECT_LE(((twin - theirs).abs() * std).max().item<double>() * 255, 2.0);
  EXPECT_LE(((twin - ours).abs() * std).max().item<double>() * 255, 2.0);
  const double swapped = ((ours.flip(1) - theirs).abs() * std).max().item<double>() * 255;
  EXPECT_GT(swapped, 50.0) << "channel order: BGR would be as close as RGB";
  std::printf("largest difference from torchvision: %.3f levels of 255\n", levels);
}

// ---- streamed datasets in the loader ----------------------------------------------------------

namespace {

// 30 images of mixed sizes in 3 classes, PNG and JPEG.
std::string streaming_folder(const ventral::test::TempDir& dir) {
  Rng rng({42});
  for (int i = 0; i < 30; ++i) {
    const int w = 30 + static_cast<int>(rng.below(40)), h = 24 + static_cast<int>(rng.below(40));
    cv::Mat img(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(rng.below(256)), static_cast<uint8_t>(4 * x + i),
                                            static_cast<uint8_t>(3 * y));
    const std::string cls = dir / ("k" + std::to_string(i % 3));
    std::filesystem::create_directories(cls);
    EXPECT_TRUE(cv::imwrite(cls + "/" + std::to_string(i) + (i % 2 ? ".jpg" : ".png"), img));
  }
  return "folder:" + dir.str();
}

std::vector<Batch> epoch_batches(const Dataset& d, const LoaderOptions& o, int64_t epoch) {
  BatchLoader loader(d, {}, o);
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

}  // namespace

// The streamed path and the in-memory path give the same batches: training (shuffled, flipped,
// padded crops, erasing, perturbed with debris and bubbles, several threads) and evaluation.
TEST(Stream, StreamingAndInMemoryGiveTheSameBatches) {
  ventral::test::TempDir dir;
  const std::string spec = streaming_folder(dir);
  LoadOptions load{3, 0, 40, 32};
  load.stream = "off";
  const Dataset held = load_dataset(spec, Split::Train, load);
  load.stream = "on";
  const Dataset streamed = load_dataset(spec, Split::Train, load);
  ASSERT_TRUE(streamed.streamed());
  ASSERT_FALSE(held.streamed());
  LoaderOptions train = perturbing("debris:2-5,bubbles:1-3", 0.6, 5);
  train.batch_size = 8;
  train.augment = true;
  train.augmentation.hflip = true;
  train.augmentation.crop_padding = 3;
  train.augmentation.erasing = 0.5;
  train.mean = {0.5, 0.4, 0.3};
  train.std = {0.2, 0.25, 0.3};
  train.threads = 3;
  LoaderOptions eval;
  eval.batch_size = 7;
  eval.shuffle = false;
  eval.threads = 2;
  for (const LoaderOptions& o : {train, eval})
    for (int64_t epoch : {0, 1}) {
      const auto a = epoch_batches(held, o, epoch), b = epoch_batches(streamed, o, epoch);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) {
        EXPECT_TRUE(torch::equal(a[k].images, b[k].images)) << "batch " << k << " epoch " << epoch;
        EXPECT_TRUE(torch::equal(a[k].labels, b[k].labels));
        EXPECT_EQ(a[k].indices, b[k].indices);
      }
    }
  // Evaluation under a condition perturbs in the loader what perturb_dataset perturbs whole.
  LoaderOptions condition = eval;
  condition.perturbation = evaluation_perturbation("debris", 4, 77);
  const Dataset whole = perturb_dataset(held, "debris", 4, 77);
  LoaderOptions plain = eval;
  for (const Dataset* d : {&held, &streamed}) {
    const auto a = epoch_batches(*d, condition, 0), b = epoch_batches(whole, plain, 0);
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k].images, b[k].images)) << "batch " << k;
  }
}

// torchvision's RandomResizedCrop.get_params: the area share lies in the scale range and the
// aspect ratio in [3/4, 4/3] (up to rounding), the box inside the image; an image too thin for
// any try falls back to the central crop with its ratio clamped.
TEST(Stream, ResizedCropBoxesFollowTorchvision) {
  Rng rng({1});
  double share_sum = 0;
  const int n = 4000;
  for (int k = 0; k < n; ++k) {
    const CropBox b = resized_crop_box(500, 375, 0.08, 1.0, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.width, 500);
    ASSERT_LE(b.y + b.height, 375);
    const double share = static_cast<double>(b.width) * b.height / (500.0 * 375.0);
    const double ratio = static_cast<double>(b.width) / b.height;
    EXPECT_GE(share, 0.08 * 0.97);
    EXPECT_LE(share, 1.0);
    EXPECT_GE(ratio, 0.75 * 0.97);
    EXPECT_LE(ratio, 4.0 / 3.0 * 1.03);
    share_sum += share;
  }
  // Uniform in [0.08, 1] but for large draws that do not fit and are drawn again. torchvision
  // 0.14's get_params on a 500x375 image gives a mean share of 0.435 (20,000 draws, measured
  // with Debian's python3-torchvision); 4,000 draws here have a standard error of about 0.004.
  EXPECT_GT(share_sum / n, 0.42);
  EXPECT_LT(share_sum / n, 0.45);
  const CropBox thin = resized_crop_box(400, 10, 0.9, 1.0, rng);  // no try fits: central crop
  EXPECT_EQ(thin.height, 10);
  EXPECT_EQ(thin.width, 13);  // round(10 × 4/3)
  EXPECT_EQ(thin.x, (400 - 13) / 2);
}

// RandomResizedCrop in the loader: drawn per (seed, epoch, index), the same through both paths
// on a folder (cut from the decoded file at its own resolution when streamed, from the stored
// image in memory: the same when the stored image is the file's own size), and off in evaluation.
TEST(Stream, RandomResizedCropIsSeededAndOnlyInTraining) {
  ventral::test::TempDir dir;
  std::filesystem::create_directories(dir / "a");
  for (int i = 0; i < 4; ++i) {
    cv::Mat img(48, 48, CV_8UC3);
    cv::randu(img, 0, 255);
    ASSERT_TRUE(cv::imwrite(dir / ("a/" + std::to_string(i) + ".png"), img));
  }
  LoadOptions load{3, 48};
  const Dataset held = load_dataset("folder:" + dir.str(), Split::Train, load);
  load.stream = "on";
  const Dataset streamed = load_dataset("folder:" + dir.str(), Split::Train, load);
  LoaderOptions o;
  o.augment = true;
  o.augmentation.resized_crop = true;
  o.seed = 9;
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(rendered(held, i, o, 1), rendered(streamed, i, o, 1)) << i;
    EXPECT_EQ(rendered(held, i, o, 1), rendered(held, i, o, 1));
    EXPECT_NE(rendered(held, i, o, 1), rendered(held, i, o, 2)) << "another epoch, another crop";
    LoaderOptions eval = o;
    eval.augment = false;
    std::vector<float> plain = rendered(held, i, eval, 1);
    for (size_t p = 0; p < plain.size(); ++p) {
      const size_t c = p / (48 * 48), yx = p % (48 * 48);
      ASSERT_FLOAT_EQ(plain[p], held.image(static_cast<size_t>(i))[yx * 3 + c] / 255.f);
    }
  }
}

// data.skip_bad_images on a streamed dataset: an undecodable file's slot in a batch holds the
// next image of its class in the loader's own order, with its own label; batches keep their size.
TEST(Stream, AnUndecodableImageGetsAStandInOfItsClassFromTheLoadersOwnImages) {
  ventral::test::TempDir dir;
  const std::string spec = streaming_folder(dir);  // k0: images 0, 3, 6, ...; k1: 1, 4, ...
  ventral::test::write_text(dir / "k1/4.png", "not an image");
  LoadOptions load{3, 16};
  load.stream = "on";
  load.skip_bad_images = true;
  const Dataset d = load_dataset(spec, Split::Train, load);
  // Sorted names in k1: 1.jpg, 10.png, 13.jpg, 16.png, 19.jpg, 22.png, 25.jpg, 28.png, 4.png, 7.jpg.
  const int64_t bad = 10 + 8, next = 10 + 9;
  ASSERT_EQ(d.files->name(static_cast<size_t>(d.ids[bad])), "k1/4.png");
  LoaderOptions eval;
  eval.batch_size = 30;
  eval.shuffle = false;
  const auto batches = epoch_batches(d, eval, 0);
  ASSERT_EQ(batches.size(), 1u);
  const torch::Tensor images = batches[0].images;
  ASSERT_EQ(images.size(0), 30);
  EXPECT_TRUE(torch::equal(images[bad], images[next]));
  EXPECT_EQ(batches[0].labels[bad].item<int64_t>(), 1);
  EXPECT_EQ(batches[0].stand_ins, std::vector<int64_t>{bad});  // which evaluation leaves out of its counts
  // A loader of some images only: the stand-in comes from among them, not from the rest.
  const std::vector<int64_t> own = {0, 1, bad, 12, 13};  // 12, 13: k1/13.jpg, k1/16.png
  BatchLoader loader(d, own, eval);
  loader.start_epoch(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch);
  EXPECT_TRUE(torch::equal(batch->images[2], batch->images[3])) << "the next k1 image in this loader's order";
  EXPECT_EQ(d.files->skipped(), 1u);
}

// The index is what data parallelism shards: on a streamed folder, the ranks' loaders decode
// disjoint sets of files that together are the epoch, and their parts of each batch are the
// batch one process builds (training), or every rank-th batch (evaluation).
TEST(Stream, RanksDecodeDisjointFilesOfAStreamedFolder) {
  ventral::test::TempDir dir;
  const std::string spec = streaming_folder(dir);
  LoadOptions load{3, 16};
  load.stream = "on";
  const Dataset d = load_dataset(spec, Split::Train, load);
  for (bool split : {true, false}) {
    LoaderOptions o;
    o.batch_size = 8;
    o.seed = 3;
    o.split_batches = split;
    const auto whole = epoch_batches(d, o, 1);
    std::vector<int64_t> seen;
    std::vector<torch::Tensor> parts;
    for (int64_t r = 0; r < 3; ++r) {
      LoaderOptions s = o;
      s.shard_rank = r, s.shard_count = 3;
      for (const Batch& b : epoch_batches(d, s, 1)) {
        seen.insert(seen.end(), b.indices.begin(), b.indices.end());
        if (split) parts.push_back(b.images);
      }
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_TRUE(std::adjacent_find(seen.begin(), seen.end()) == seen.end()) << "a file decoded by two ranks";
    EXPECT_EQ(seen.size(), d.size());
    if (split) {  // rank r's part of batch b is rows [n r / 3, n (r + 1) / 3) of the whole batch b
      const int64_t batches = static_cast<int64_t>(whole.size());
      for (int64_t b = 0; b < batches; ++b) {
        std::vector<torch::Tensor> rows;
        for (int64_t r = 0; r < 3; ++r) rows.push_back(parts[static_cast<size_t>(r * batches + b)]);
        EXPECT_TRUE(torch::equal(torch::cat(rows), whole[static_cast<size_t>(b)].images)) << "batch " << b;
      }
    }
  }
}
