// The CLI contract: exit 0 on success, 2 with one "error: ..." line for bad input.
#include <opencv2/imgcodecs.hpp>

#include "helpers.hpp"

using ventral::test::idx_header;
using ventral::test::run_ventral;
using ventral::test::TempDir;
using ventral::test::write_bytes;
using ventral::test::write_text;

namespace {

// Asserts exit status 2 and a single "error: " line containing `needle`.
void expect_input_error(const std::string& args, const std::string& needle) {
  auto r = run_ventral(args);
  EXPECT_EQ(r.status, 2) << args << "\n" << r.output;
  EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.output;
}

}  // namespace

TEST(Cli, DataSummaryOfTheFashionMnistTestSet) {
  auto r = run_ventral("data fashion-mnist --split test");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("images   10000"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("1x28x28"), std::string::npos);
  EXPECT_NE(r.output.find("Ankle boot     1000"), std::string::npos) << r.output;
  auto j = run_ventral("data synthetic:40 --json");
  ASSERT_EQ(j.status, 0);
  EXPECT_NE(j.output.find("\"images\": 40"), std::string::npos) << j.output;
}

TEST(Cli, HelpDocumentsEveryCommand) {
  auto r = run_ventral("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* cmd : {"data", "config"}) EXPECT_NE(r.output.find(cmd), std::string::npos);
  EXPECT_EQ(run_ventral("data --help").status, 0);
}

TEST(Cli, MalformedInputsExitTwoWithOneLine) {
  TempDir dir;
  // IDX: truncated, wrong magic, count mismatch, hostile header, gzip garbage.
  auto labels = idx_header({2});
  labels.insert(labels.end(), {0, 1});
  for (const char* c : {"trunc", "magic", "count", "hostile", "gzip"})
    write_bytes(dir / (std::string(c) + "/train-labels-idx1-ubyte"), labels);
  auto trunc = idx_header({2, 28, 28});
  trunc.resize(trunc.size() + 100);
  write_bytes(dir / "trunc/train-images-idx3-ubyte", trunc);
  auto magic = idx_header({2, 28, 28});
  magic[3] = 2;
  write_bytes(dir / "magic/train-images-idx3-ubyte", magic);
  auto count = idx_header({3, 1, 1});
  count.insert(count.end(), {1, 2, 3});
  write_bytes(dir / "count/train-images-idx3-ubyte", count);
  auto hostile = idx_header({2000000000u, 28, 28});
  write_bytes(dir / "hostile/train-images-idx3-ubyte", hostile);
  write_bytes(dir / "gzip/train-images-idx3-ubyte.gz", {0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8});
  expect_input_error("data mnist:" + (dir / "trunc"), "truncated");
  expect_input_error("data mnist:" + (dir / "magic"), "bad IDX magic");
  expect_input_error("data mnist:" + (dir / "count"), "holds 3 images but");
  expect_input_error("data mnist:" + (dir / "hostile"), "IDX header declares 2000000000x28x28");
  expect_input_error("data mnist:" + (dir / "gzip"), "corrupt or truncated gzip");
  // CIFAR: truncated record.
  write_bytes(dir / "cifar/test_batch.bin", std::vector<unsigned char>(3073 + 10, 1));
  expect_input_error("data cifar10:" + (dir / "cifar") + " --split test", "truncated CIFAR-10 record");
  // Folders: empty, corrupt PNG, non-image file.
  std::filesystem::create_directories(dir / "empty");
  expect_input_error("data folder:" + (dir / "empty"), "empty image folder");
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(28, 28, CV_8UC1, cv::Scalar(9)), png);
  png.resize(png.size() - 20);
  write_bytes(dir / "corrupt/shirt/1.png", png);
  expect_input_error("data folder:" + (dir / "corrupt"), "1.png: cannot decode image");
  write_text(dir / "text/shirt/readme.md", "# hello\n");
  expect_input_error("data folder:" + (dir / "text"), "readme.md: cannot decode image");
  // SPEC, usage and configs.
  expect_input_error("data imagenet", "unknown dataset 'imagenet'");
  expect_input_error("data --split validation", "split");
  expect_input_error("frobnicate", "frobnicate");
  write_text(dir / "key.yaml", "train:\n  batchsize: 64\n");
  expect_input_error("config " + (dir / "key.yaml"), "did you mean 'train.batch_size'");
  write_text(dir / "type.yaml", "train:\n  epochs: [1, 2]\n");
  expect_input_error("config " + (dir / "type.yaml"), "key 'train.epochs' expects an integer");
  expect_input_error("config " + (dir / "missing.yaml"), "missing.yaml: no such file");
  expect_input_error("config seed=-1", "out of range");
  // compare: --models takes one comma-separated list, so the overrides after it stay overrides.
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: resnet20\n");
  write_text(dir / "exp.yaml", "base: base.yaml\nmodels:\n  - name: a\n  - name: b\n    config:\n      model.name: cortical_b\n");
  expect_input_error("compare " + (dir / "exp.yaml") + " --models a,nosuch", "--models names 'nosuch'");
  expect_input_error("compare " + (dir / "exp.yaml") + " --models a,b eval.nosuch=1", "unknown override 'eval.nosuch'");
}

TEST(Cli, ConfigPrintsAndWritesTheResolvedConfig) {
  TempDir dir;
  write_text(dir / "c.yaml", "model:\n  name: resnet32\n");
  auto r = run_ventral("config " + (dir / "c.yaml") + " train.epochs=4 --out " + (dir / "out.yaml"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("name: resnet32"), std::string::npos);
  EXPECT_NE(r.output.find("epochs: 4"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "out.yaml"));
}

// Issue 17's findings, each a one-line error with exit 2 that says what to fix.
TEST(Cli, PathsKeysAndFlagsThatCannotWorkAreNamedWithTheFix) {
  TempDir dir;
  expect_input_error("bench --profile " + (dir / "missing/dir/prof.json") + " --iters 1 --warmup 0 --batch 2",
                     "--profile: cannot write");
  write_text(dir / "complex.yaml", "? [a, b]\n: 1\n");
  expect_input_error("config " + (dir / "complex.yaml"), "line 1: a key must be a plain name, got [a, b]");
  write_text(dir / "exp.yaml", "base: base.yaml\nmodels:\n  - name: a\n    config:\n      {x: 1}: 2\n");
  expect_input_error("compare " + (dir / "exp.yaml"), "a key must be a plain name");
  // Experiment values of the wrong kind name the key and what it expects.
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\n");
  auto experiment = [&](const std::string& tail) {
    write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: a\n" + tail);
    return "compare " + (dir / "x.yaml");
  };
  expect_input_error(experiment("eval:\n  limit: abc\n"), "key 'eval.limit' expects a non-negative integer");
  expect_input_error(experiment("eval:\n  seed: -1\n"), "key 'eval.seed' expects a non-negative integer");
  expect_input_error(experiment("eval:\n  steps: [1, 2]\n"), "key 'eval.steps' expects a step list such as 1:8, got [1, 2]");
  expect_input_error(experiment("eval: [1]\n"), "key 'eval' expects a mapping of keys");
  expect_input_error(experiment("overrides: 5\n"), "key 'overrides' expects a mapping of keys");
  expect_input_error(experiment("reference: [a]\n"), "key 'reference' expects a model name");
  write_text(dir / "y.yaml", "base: ~\nmodels:\n  - name: a\n");
  expect_input_error("compare " + (dir / "y.yaml"), "key 'base' expects a config file name, got nothing");
  std::filesystem::create_directories(dir / "adir");
  expect_input_error("config " + (dir / "adir"), "adir: is a folder, not a file");
  write_text(dir / "a_file", "x");
  expect_input_error("train " + (dir / "adir") + " --run-dir " + (dir / "a_file/run"), "is a folder, not a file");
  expect_input_error("perturb --data synthetic:8 --family block --write " + (dir / "a_file/out"), "cannot create the folder");
  expect_input_error("perturb --data synthetic:8 --family block --seed -1", "--seed");
  expect_input_error("bench --model resnet20 --steps 4 --iters 1 --warmup 0 --batch 2", "resnet20 is feed-forward");
  // A dataset with no images is refused where it is read, not scored as 0% or "0 images/s".
  auto none = idx_header({0, 28, 28});
  auto no_labels = idx_header({0});
  write_bytes(dir / "empty/train-images-idx3-ubyte", none);
  write_bytes(dir / "empty/train-labels-idx1-ubyte", no_labels);
  expect_input_error("data mnist:" + (dir / "empty"), "the train split holds no images");
}
