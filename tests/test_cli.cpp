// The CLI contract: exit 0 on success, 2 with one "error: ..." line for bad input.
#include <sys/stat.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "helpers.hpp"
#include "core/text.hpp"
#include "inference/run_dir.hpp"

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

// A flat gray 28x28 PNG.
std::vector<unsigned char> gray_png() {
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(28, 28, CV_8UC1, cv::Scalar(9)), png);
  return png;
}

// An image folder of two classes, x and y, with `per_class` gray PNGs each.
void write_two_class_folder(const std::string& folder, int per_class) {
  for (const char* c : {"x", "y"})
    for (int i = 0; i < per_class; ++i)
      write_bytes(folder + "/" + c + "/" + std::to_string(i) + ".png", gray_png());
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
  expect_input_error(experiment("eval:\n  limit: abc\n"), "key 'eval.limit' expects a whole number, 0 or more");
  expect_input_error(experiment("eval:\n  seed: -1\n"), "key 'eval.seed' expects a whole number from 0 to 18446744073709551615");
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

// ---- streamed image folders through the binary ------------------------------------------------

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/core.hpp>
#include <sstream>

namespace {

// A folder of n JPEGs of mixed sizes (64–127 px a side) in 10 classes.
void write_jpeg_folder(const std::string& root, int n) {
  cv::RNG rng(7);
  for (int i = 0; i < n; ++i) {
    cv::Mat img(64 + (i * 37) % 64, 64 + (i * 53) % 64, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 256);
    const std::string dir = root + "/class" + std::to_string(i % 10);
    std::filesystem::create_directories(dir);
    ASSERT_TRUE(cv::imwrite(dir + "/" + std::to_string(i) + ".jpg", img));
  }
}

struct ChildRun {
  int status = -1;
  long peak_rss_kib = 0;
};

// Runs the binary with `args` (split at spaces), stdout and stderr into `log`, and returns its exit
// status and its peak resident memory as the kernel counted it (ru_maxrss).
ChildRun run_measured(const std::string& args, const std::string& log) {
  std::vector<std::string> words = {VENTRAL_BINARY};
  std::istringstream in(args);
  for (std::string w; in >> w;) words.push_back(w);
  const pid_t pid = fork();
  if (pid == 0) {
    // One malloc arena for all threads: fewer arenas, less of the peak that comes and goes
    // between runs of the same data (see StreamedTrainingMemoryDoesNotGrowWithTheDataset).
    setenv("MALLOC_ARENA_MAX", "1", 1);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  ChildRun r;
  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) == pid) {
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.peak_rss_kib = usage.ru_maxrss;
  }
  return r;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

// Streaming keeps memory bounded by the batches in flight, not by the dataset: training at 112 px
// on 3,000 images peaks within 10% of training on 300 (the issue's bound). The control: the same
// 3,000 images held in memory (113 MB decoded) break that bound, so the test can fail. One
// streamed run's peak varies between runs of the same data by more than the bound (586-715 MiB
// on one machine, with either folder; it once failed the bound by 0.1% in CI), so each streamed
// peak is the lowest of three runs, the part that does not come and go (measured then: 3,000
// images 0.99x-1.04x of 300, the in-memory control 1.37x-1.45x).
TEST(Cli, StreamedTrainingMemoryDoesNotGrowWithTheDataset) {
  TempDir dir;
  write_jpeg_folder(dir / "small", 300);
  write_jpeg_folder(dir / "large", 3000);
  int runs = 0;
  auto peak_of = [&](const std::string& name, const std::string& stream) {
    const std::string tag = name + stream + std::to_string(++runs);
    const std::string log = dir / (tag + ".log"), cfg = dir / (tag + ".yaml");
    write_text(cfg, "data:\n  dataset: folder:" + dir / name + "\n  stream: " + stream +
                        "\n  image_size: 112\n  loader_threads: 2\n  mean: [0.5, 0.5, 0.5]\n  std: [0.3, 0.3, 0.3]\n"
                        "  augment: {random_resized_crop: true, hflip: true}\n"
                        "model: {name: resnet20}\ntrain: {batch_size: 16, stop_after_steps: 4}\nthreads: 2\n");
    const ChildRun r = run_measured("train " + cfg + " --run-dir " + dir / (tag + "_run"), log);
    const std::string out = read_text(log);
    EXPECT_EQ(r.status, 75) << out;  // stopped by train.stop_after_steps
    const std::string storage = stream == "on" ? "streamed from " + std::to_string(name == "small" ? 300 : 3000) + " files"
                                               : "in memory";
    EXPECT_NE(out.find(storage), std::string::npos) << out;
    return r.peak_rss_kib;
  };
  auto lowest_of_three = [&](const std::string& name) {
    return std::min({peak_of(name, "on"), peak_of(name, "on"), peak_of(name, "on")});
  };
  const long small = lowest_of_three("small"), large = lowest_of_three("large"), held = peak_of("large", "off");
  std::fprintf(stderr, "peak resident memory: 300 streamed %ld KiB, 3000 streamed %ld KiB, 3000 in memory %ld KiB\n",
               small, large, held);
  EXPECT_LE(large, small * 1.10);
  EXPECT_GT(held, small * 1.10) << "the control: 3,000 images held in memory should exceed the bound";
}

TEST(Cli, DataReportsStreamedFoldersFromTheIndexAndASample) {
  TempDir dir;
  write_jpeg_folder(dir / "f", 2100);
  auto r = run_ventral("data folder:" + dir / "f" + " --image-size 32 --stream on");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("images   2100"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("storage  streamed from 2100 files"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("from a sample of 2000 of the 2100 images"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("class9         210"), std::string::npos) << r.output;
  // The same folder held in memory: every image counted, no sample.
  r = run_ventral("data folder:" + dir / "f" + " --image-size 32");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("storage  in memory"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("sample"), std::string::npos) << r.output;
}

TEST(Cli, BadListsAndUndecodableImagesExitTwoNamingTheFile) {
  TempDir dir;
  ventral::test::RunResult r;
  write_jpeg_folder(dir / "img", 20);
  write_text(dir / "l.csv", "img/class0/0.jpg,class0\nimg/class1/nope.jpg,class1\n");
  expect_input_error("data list:" + dir / "l.csv", "l.csv:2: " + dir / "img/class1/nope.jpg" + ": no such file");
  write_text(dir / "img/class3/bad.jpg", "not a jpeg");
  expect_input_error("data folder:" + dir / "img", "bad.jpg: cannot decode image");
  // Streamed, the bad file is found when it is first decoded (measuring the pixel statistics, or
  // in a loader thread): one error line naming it, exit 2.
  write_text(dir / "bad.yaml", "data:\n  dataset: folder:" + dir / "img" +
                                   "\n  stream: on\n  image_size: 32\n  val_fraction: 0\n"
                                   "train: {batch_size: 4, epochs: 1}\n");
  for (const char* stats : {"", " data.preset=cifar"}) {
    r = run_ventral("train " + dir / "bad.yaml" + stats + " --run-dir " +
                    dir / (std::string("run") + (*stats ? "_preset" : "")));
    EXPECT_EQ(r.status, 2) << r.output;
    const std::string line = "error: " + dir / "img/class3/bad.jpg" + ": cannot decode image (";
    EXPECT_NE(r.output.find(line), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find(line), r.output.rfind(line)) << r.output;
  }
}

// A path that cannot be read for another reason than its absence says the reason.
TEST(Cli, ALinkLoopIsNotCalledAMissingFile) {
  TempDir dir;
  std::filesystem::create_symlink(dir / "loop.yaml", dir / "loop.yaml");
  expect_input_error("config " + dir / "loop.yaml", "loop.yaml: cannot read (Too many levels of symbolic links)");
  // Where std::filesystem meets the loop first (a run folder, an output folder): exit 2 too.
  std::filesystem::create_symlink(dir / "L", dir / "L");
  expect_input_error("eval " + dir / "L", "Too many levels of symbolic links");
  expect_input_error("train --resume --run-dir " + dir / "L", "Too many levels of symbolic links");
}

TEST(Cli, OutputsThatCannotBeWholeAreRefusedUpFront) {
  TempDir dir;
  // A FIFO as --profile: opening it to test it blocked forever.
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  expect_input_error("bench --model cortical_b --iters 1 --warmup 0 --batch 2 --profile " + (dir / "fifo"),
                     "exists and is not a regular file");
  // Values the parsers took in part: trailing text, octal, duplicated keys.
  expect_input_error("perturb --data synthetic:8 --family block:4.9 --out " + (dir / "s.png"), "bad severities in 'block:4.9'");
  expect_input_error("config train.epochs=010", "no leading zeros");
  write_text(dir / "dup.yaml", "train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n");
  expect_input_error("config " + (dir / "dup.yaml"), "line 4: key 'train.epochs' appears twice");
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\n");
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\neval:\n  limit: 100\n  limit: 10\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan", "key 'eval.limit' appears twice");
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan model.name=resnet20", "model.name is set per entry of 'models'");
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\neval:\n  mask: noise\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan", "eval.present, which is not set");
}

TEST(Cli, IgnoredInputIsRefusedOrSaid) {
  TempDir dir;
  // Seeds: CLI11 read 2^64 as 2^64 - 1 and 0x10 as 16.
  const std::string sheet = "perturb --data synthetic:8 --family block --n 1 --out " + (dir / "s.png");
  expect_input_error(sheet + " --seed 18446744073709551616", "is too large: a seed is a whole number from 0 to");
  expect_input_error(sheet + " --seed 0x10", "'0x10' is not a number");
  EXPECT_EQ(run_ventral(sheet + " --seed 18446744073709551615").status, 0);
  // gzip: bytes after the stream were ignored; a second member (cat a.gz b.gz) is valid gzip.
  auto images = idx_header({2, 1, 1});
  images.insert(images.end(), {7, 9});
  auto labels = idx_header({2});
  labels.insert(labels.end(), {0, 1});
  for (const char* d : {"junk", "members", "both"}) {
    write_bytes(dir / (std::string(d) + "/train-images-idx3-ubyte.raw"), images);
    write_bytes(dir / (std::string(d) + "/train-labels-idx1-ubyte"), labels);
  }
  const std::string in = dir / "junk/train-images-idx3-ubyte";
  ASSERT_EQ(ventral::test::run_shell("gzip -c " + in + ".raw > " + in + ".gz && printf 'junk' >> " + in + ".gz").status, 0);
  expect_input_error("data mnist:" + (dir / "junk") + " --split train", "4 bytes of trailing data after the gzip stream");
  // The same bytes as two members: the header in one, the pixels in the other.
  const std::string two = dir / "members/train-images-idx3-ubyte";
  ASSERT_EQ(ventral::test::run_shell("head -c 16 " + two + ".raw | gzip -c > " + two + ".gz && tail -c 2 " + two +
                                     ".raw | gzip -c >> " + two + ".gz").status, 0);
  auto r = run_ventral("data mnist:" + (dir / "members") + " --split train");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("shape    1x1x1"), std::string::npos) << r.output;
  // Both the raw file and the .gz: the raw one is read, and the note says so.
  const std::string both = dir / "both/train-images-idx3-ubyte";
  ASSERT_EQ(ventral::test::run_shell("cp " + both + ".raw " + both + " && gzip -c " + both + ".raw > " + both + ".gz").status, 0);
  r = run_ventral("data mnist:" + (dir / "both") + " --split train");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("both train-images-idx3-ubyte and train-images-idx3-ubyte.gz exist; reading "
                          "train-images-idx3-ubyte"), std::string::npos) << r.output;
  // A test split of another shape than the training split was scored at its own size.
  auto small = idx_header({2, 2, 2});
  small.insert(small.end(), 8, 5);
  write_bytes(dir / "shapes/train-images-idx3-ubyte", images);
  write_bytes(dir / "shapes/train-labels-idx1-ubyte", labels);
  write_bytes(dir / "shapes/t10k-images-idx3-ubyte", small);
  write_bytes(dir / "shapes/t10k-labels-idx1-ubyte", labels);
  write_text(dir / "shapes.yaml", "data:\n  dataset: mnist:" + (dir / "shapes") + "\nmodel:\n  name: cortical_b\n");
  expect_input_error("train " + (dir / "shapes.yaml") + " --run-dir " + (dir / "run"),
                     "the test split's images are 1x2x2 (channels x height x width), the training split's 1x1x1");
  // A folder's entries that hold no images of a class are counted in a note, not dropped silently.
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)), png);
  for (const char* f : {"f/a/1.png", "f/a/deeper/2.png", "f/b/3.png", "f/loose.png"}) write_bytes(dir / f, png);
  std::filesystem::create_symlink(dir / "nowhere.png", dir / "f/b/dangling.png");
  for (int pass = 0; pass < 2; ++pass) {  // built, then from the cache
    r = run_ventral("data folder:" + (dir / "f"));
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("skipped 1 sub-folder inside a class folder (not read: a class's images are the files "
                            "directly in its folder), 1 entry that is not a file (dangling links, pipes or devices) "
                            "and 1 file beside the class folders (in no class)"), std::string::npos) << r.output;
  }
  // A list's classes.txt that is a folder was ignored.
  write_bytes(dir / "l/1.png", png);
  write_text(dir / "l/train.csv", "1.png,cat\n");
  std::filesystem::create_directories(dir / "l/classes.txt");
  expect_input_error("data list:" + (dir / "l/train.csv") + " --split train", "classes.txt: is a folder, not a file");
  // YAML nested past yaml-cpp's depth limit said "bad file".
  write_text(dir / "deep.yaml", "a: " + std::string(5000, '[') + "\n");
  expect_input_error("config " + (dir / "deep.yaml"), "deep.yaml: invalid YAML at line 2: nested more than 500 levels deep");
  // compare --plan checks what every planned run would fail on.
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\n");
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\n");
  const std::string plan = "compare " + (dir / "x.yaml") + " --plan --out " + (dir / "study");
  expect_input_error(plan + " data.dataset=synthetic:0", "synthetic:N needs an image count from 1 to 10000000");
  expect_input_error(plan + " data.dataset=mnist:" + (dir / "nothing"), "nothing: no such folder");
  expect_input_error(plan + " model.weights=" + (dir / "missing.pt"), "key 'model.weights': " + (dir / "missing.pt") +
                                                                        ": no such file");
  expect_input_error(plan + " train.milestones=[2]", "key 'train.milestones' is set to [2] but has no effect: "
                                                       "train.schedule is cosine");
  expect_input_error(plan + " train.optimizer=adam train.momentum=0.5", "key 'train.momentum' is set to 0.5 but has no effect");
  expect_input_error(plan + " data.normalize=false data.mean=[0.5]", "key 'data.mean' is set to [0.5] but has no effect");
  EXPECT_EQ(run_ventral(plan + " train.milestones=[2] train.schedule=step").status, 0);
}

TEST(Cli, ASignalRemovesTheFileBeingWrittenAndIsReported) {
  TempDir dir;
  // perturb --write writes thousands of files; SIGTERM arrives in the middle of them (SIGINT
  // alike, but a shell starts background jobs with SIGINT ignored, and ventral keeps it so).
  auto r = ventral::test::run_shell("cd " + dir.str() + " && { " + VENTRAL_BINARY + " perturb --data fashion-mnist --family all " +
                                    "--write out > log.txt 2>&1 & pid=$!; sleep 3; kill -TERM $pid; wait $pid; echo status=$?; }");
  EXPECT_NE(r.output.find("status=143"), std::string::npos) << r.output;
  const std::string log = ventral::test::run_shell("cat " + (dir / "log.txt")).output;
  EXPECT_NE(log.find("error: terminated (SIGTERM); the command did not finish and its output is incomplete"),
            std::string::npos) << log;
  // No temporary file (hidden, .NAME.tmp.N) is left behind; the finished files are whole.
  const auto left = ventral::test::run_shell("find " + (dir / "out") + " -name '.*.tmp.*' | wc -l").output;
  EXPECT_EQ(left, "0\n") << left;
  EXPECT_NE(ventral::test::run_shell("find " + (dir / "out") + " -name '*.png' | head -1").output, "");
}

// Round five of hostile inputs (issue 17): numbers that were silently wrong, a hang, an
// internal error, and files of the user's that were overwritten.
TEST(Cli, FifthRoundWrongNumbersHangsAndOverwritesAreRefused) {
  TempDir dir;
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  const std::string train = "train " + (dir / "base.yaml");
  // Validation that held out nothing ran on every training image (and picked best.pt by them).
  expect_input_error(train + " data.dataset=synthetic:40 --run-dir " + (dir / "v"), "holds out no image of the 40");
  ASSERT_EQ(run_ventral(train + " data.val_fraction=0 --run-dir " + (dir / "nv")).status, 0);
  const std::string csv = read_text(dir / "nv/metrics.csv");
  const auto row = ventral::split_csv_row(csv.substr(csv.find('\n') + 1, csv.find('\n', csv.find('\n') + 1) - csv.find('\n') - 1));
  ASSERT_GE(row.size(), 6u) << csv;
  EXPECT_EQ(row[4], "") << csv;  // val_loss: no validation, an empty cell
  EXPECT_EQ(row[5], "") << csv;
  // A folder without train/ and test/: the "test" is the training images, and the note says so.
  std::vector<unsigned char> png;
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 10; ++i) {
      cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(40 * c + i)), png);
      write_bytes(dir / ("one/c" + std::to_string(c) + "/" + std::to_string(i) + ".png"), png);
    }
  auto r = run_ventral(train + " data.dataset=folder:" + (dir / "one") + " train.batch_size=4 --run-dir " + (dir / "f"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("the test images are the training images"), std::string::npos) << r.output;
  // One image per batch norm channel: a size to change, not an internal error.
  expect_input_error("bench --model cortical_b --image-size 8 --batch 1 --iters 1 --warmup 0",
                     "a batch norm in training mode sees one value per channel");
  // Nested aliases: 539 bytes that expand to 9^11 values (the walk over them never ended).
  std::string bomb = "seed: 1\nk0: &a0 [x]\n";
  for (int k = 1; k <= 11; ++k) {
    bomb += "k" + std::to_string(k) + ": &a" + std::to_string(k) + " [";
    for (int j = 0; j < 9; ++j) bomb += (j ? ",*a" : "*a") + std::to_string(k - 1);
    bomb += "]\n";
  }
  write_text(dir / "bomb.yaml", bomb);
  expect_input_error("config " + (dir / "bomb.yaml"), "values once its aliases (*name) are expanded");
  // Features only into a new or empty folder or over an earlier export: not into checkpoints/.
  expect_input_error("eval " + (dir / "nv") + " --limit 8 --features IT --features-out " + (dir / "nv/checkpoints") +
                         " --out " + (dir / "e"),
                     "holds files but no feature export");
  // bench options that the measurement asked for does not read.
  expect_input_error("bench --images 100", "bench: --images applies to --perturb only");
  expect_input_error("bench --peak --model resnet20", "bench: --model applies to timing a model");
  expect_input_error("bench --loader --perturb all", "separate measurements");
  // A number too small for a double was read as 0; bounds print as written, not as 1.04858e+06.
  expect_input_error("config train.lr=1e-400", "key 'train.lr' value 1e-400 is too close to 0");
  expect_input_error("config train.batch_size=0", "is out of range [1, 1048576]");
  // Integers are decimal: 010 was 8 (octal), 0x1c 28.
  expect_input_error("models --image-size 010", "'010' is not a decimal integer");
  expect_input_error("perturb --data synthetic:8 --family block:1 --seed 010 --out " + (dir / "s.png"),
                     "'010' is not a decimal integer");
  // A folder holding a person's config.yaml is no run: it was adopted and overwritten.
  const std::string mine = "# my notes on this config\n" + read_text(dir / "base.yaml");
  write_text(dir / "mine/config.yaml", mine);
  write_text(dir / "mine/notes.txt", "keep\n");
  expect_input_error("train " + (dir / "mine/config.yaml") + " --run-dir " + (dir / "mine"), "was not written by ventral");
  EXPECT_EQ(read_text(dir / "mine/config.yaml"), mine);
  // config --out replaces only a config ventral wrote, never a run's own file.
  write_text(dir / "photo.png", "not a config\n");
  expect_input_error("config " + (dir / "base.yaml") + " --out " + (dir / "photo.png"), "is not a config ventral wrote");
  EXPECT_EQ(read_text(dir / "photo.png"), "not a config\n");
  expect_input_error("config " + (dir / "base.yaml") + " --out " + (dir / "nv/config.yaml"), "inside the run directory");
  expect_input_error("config " + (dir / "base.yaml") + " --out " + (dir / "nv/checkpoints/last.pt"), "is not a config ventral wrote");
  ASSERT_EQ(run_ventral("config " + (dir / "base.yaml") + " --out " + (dir / "c.yaml")).status, 0);
  EXPECT_EQ(run_ventral("config " + (dir / "base.yaml") + " train.epochs=2 --out " + (dir / "c.yaml")).status, 0);
  // config.yaml edited between a stop and --resume changed the run half-way.
  EXPECT_EQ(run_ventral(train + " train.stop_after_steps=2 --run-dir " + (dir / "s")).status, 75);
  std::string cfg = read_text(dir / "s/config.yaml");
  cfg.replace(cfg.find("epochs: 1"), 9, "epochs: 3");
  write_text(dir / "s/config.yaml", cfg);
  expect_input_error("train --resume --run-dir " + (dir / "s"), "train.epochs: 1 -> 3");
}

TEST(Cli, NamesOutputsAndValuesThatWouldGoWrongAreRefused) {
  TempDir dir;
  // Class names that cannot be written: not UTF-8 (the JSON writer stopped half way through a
  // run folder, exit 1) or holding a line break (classes.txt split the class in two).
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)), png);
  write_bytes(dir / "latin1/caf\xE9/1.png", png);
  write_bytes(dir / "latin1/tea/1.png", png);
  expect_input_error("data folder:" + (dir / "latin1"), "class name 'caf\\xe9' is not valid UTF-8 text");
  write_bytes(dir / "newline/ci\nrcle/1.png", png);
  write_bytes(dir / "newline/square/1.png", png);
  expect_input_error("data folder:'" + (dir / "newline") + "'", "holds a line break, tab or other control character");
  // Empty option values meant the default (--run-dir '' trained into runs/...).
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  expect_input_error("train " + (dir / "base.yaml") + " --run-dir ''", "--run-dir: an empty value");
  expect_input_error("perturb --data synthetic:8 --n 1 --out " + (dir / "s.png") + " --family ''", "--family: an empty value");
  // Standard output that cannot be written: exit 2, not success with nothing written.
  expect_input_error("config " + (dir / "base.yaml") + " > /dev/full", "cannot write to standard output");
  // Seeds: the right reason, and the file that says it.
  write_text(dir / "seed.yaml", "seed: 9223372036854775808\n");
  expect_input_error("config " + (dir / "seed.yaml"), "key 'seed' value 9223372036854775808 is out of range");
  write_text(dir / "seeds.yaml", "base: base.yaml\nseeds: [9223372036854775000]\nmodels:\n  - name: cortical_b\n");
  expect_input_error("compare " + (dir / "seeds.yaml") + " --plan", "seeds.yaml: key 'seeds': 9223372036854775000 is out of range");
  // A compare model's name names folders and files: it cannot climb out of --out.
  write_text(dir / "evil.yaml", "base: base.yaml\nmodels:\n  - name: ../../evil\n    config: {model.name: cortical_b}\n");
  expect_input_error("compare " + (dir / "evil.yaml") + " --plan --out " + (dir / "study"), "key 'models[].name': '../../evil' names run folders");
  EXPECT_FALSE(std::filesystem::exists(dir / "evil.yaml.plan"));
  // perturb --write merged into a folder holding something else (a dataset gained 11 classes).
  write_bytes(dir / "dataset/shirt/1.png", png);
  expect_input_error("perturb --data synthetic:8 --family block:1 --write " + (dir / "dataset"),
                     "holds 'shirt', which no earlier perturb --write made");
  ASSERT_EQ(run_ventral("perturb --data synthetic:8 --family block:1 --write " + (dir / "sets")).status, 0);
  EXPECT_EQ(run_ventral("perturb --data synthetic:8 --family block:1,jpeg:2 --write " + (dir / "sets")).status, 0);
  // export replaces only an earlier export: not another run's files, not a file it did not write.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "a")).status, 0);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "b")).status, 0);
  expect_input_error("export " + (dir / "a") + " --out " + (dir / "b/model.pt"), "inside the run directory");
  expect_input_error("export " + (dir / "a") + " --out " + (dir / "b/checkpoints/last.pt"), "inside the run directory");
  write_text(dir / "mine/model.json", "{\"keep\": 1}\n");
  expect_input_error("export " + (dir / "a") + " --out " + (dir / "mine/model.pt"), "which ventral export did not write");
  ASSERT_EQ(run_ventral("export " + (dir / "a") + " --out " + (dir / "x/model.pt")).status, 0);
  EXPECT_EQ(run_ventral("export " + (dir / "b") + " --out " + (dir / "x/model.pt")).status, 0);  // again: allowed
  // A run trained by this version without its model.json is refused (older runs, whose checkpoints
  // hold no config, are evaluated unchecked with a note).
  std::filesystem::remove(dir / "b/model.json");
  expect_input_error("eval " + (dir / "b") + " --limit 16 --out " + (dir / "eb"), "model.json: missing, though the run");
}

TEST(Cli, SixthRoundValuesThatChangeNothingAreRefused) {
  TempDir dir;
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\ntrain:\n  epochs: 2\n  batch_size: 16\n");
  const std::string train = "train " + (dir / "base.yaml") + " --run-dir " + (dir / "never");
  // Keys whose effect another key switches off.
  expect_input_error(train + " train.weight_decay=0 train.decay_bn_and_bias=true",
                     "key 'train.decay_bn_and_bias' is set to true but has no effect: train.weight_decay is 0");
  expect_input_error(train + " data.augment.perturb_fraction=0.5",
                     "key 'data.augment.perturb_fraction' is set to 0.5 but has no effect: data.augment.perturb is not set");
  expect_input_error(train + " data.stream=on", "key 'data.stream' is set to on but has no effect");
  expect_input_error(train + " data.skip_bad_images=true", "is not an image folder or list");
  // Values in range one by one that the run never reaches together.
  expect_input_error(train + " train.schedule=step train.milestones=[1,2]",
                     "key 'train.milestones' holds 2, which a run of train.epochs 2 never reaches");
  expect_input_error(train + " train.warmup_epochs=2", "the warm-up would last the whole run of train.epochs 2");
  expect_input_error(train + " data.augment.perturb=block:1-5 data.augment.perturb_fraction=0", "perturbs no image");
  expect_input_error(train + " data.augment.perturb=block:0", "block at severity 0 is the clean image");
  // A subset larger than the training split was the whole split, silently.
  expect_input_error(train + " data.max_train_images=1000", "key 'data.max_train_images' is 1000 but synthetic:64 holds");
  // fashion-mnist: with nothing after the colon was the packaged copy, synthetic: the default size.
  expect_input_error("data fashion-mnist:", "nothing after ':'; give fashion-mnist:DIR");
  expect_input_error("data synthetic:", "nothing after ':'; give synthetic:N");
  // A list labelled 01 and 1 trained them as one class.
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)), png);
  for (const char* f : {"a.png", "b.png", "c.png"}) write_bytes(dir / (std::string("l/") + f), png);
  write_text(dir / "l/train.csv", "a.png,0\nb.png,01\nc.png,1\n");
  expect_input_error("data list:" + (dir / "l/train.csv") + " --split train",
                     "train.csv:3: label '1' is class number 1, written '01' on line 2");
  // Streamed images of another size were resized without the note the in-memory load gives.
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < 8; ++i) {
      cv::imencode(".png", cv::Mat(i == 5 ? 12 : 8, i == 5 ? 12 : 8, CV_8UC1, cv::Scalar(30 * c + i)), png);
      write_bytes(dir / ("mixed/c" + std::to_string(c) + "/" + std::to_string(i) + ".png"), png);
    }
  auto streamed = run_ventral("train " + (dir / "base.yaml") + " data.dataset=folder:" + (dir / "mixed") +
                              " data.stream=on data.val_fraction=0 train.epochs=1 train.batch_size=4 --run-dir " + (dir / "streamed"));
  EXPECT_EQ(streamed.status, 0) << streamed.output;
  EXPECT_NE(streamed.output.find("5.png is not 8x8 like the first image and was resized to it"), std::string::npos)
      << streamed.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "never/checkpoints"));
  // eval options that change nothing.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.epochs=1 --run-dir " + (dir / "run")).status, 0);
  const std::string eval = "eval " + (dir / "run") + " --limit 16 --out " + (dir / "e");
  expect_input_error(eval + " --seed 3", "--seed: only with --perturb or --mask noise");
  expect_input_error(eval + " --class-map " + (dir / "base.yaml"), "--class-map: only with --data SPEC");
  expect_input_error(eval + " --exit-threshold 0.5,0.9,0.5", "--exit-threshold: 0.5 is given twice");
  expect_input_error(eval + " --features IT --features-n 17", "--features-n 17: --limit 16 evaluates only 16 images");
  EXPECT_FALSE(std::filesystem::exists(dir / "e/results.csv"));
  EXPECT_EQ(run_ventral(eval + " --perturb block:1 --seed 3 --features IT --features-n 16").status, 0);
  // A key given twice on one command line: the first value was silently lost.
  expect_input_error("config " + (dir / "base.yaml") + " train.lr=0.1 train.lr=0.2",
                     "'train.lr' is given twice on the command line ('train.lr=0.1', then 'train.lr=0.2')");
  expect_input_error(eval + " --weights " + (dir / "w.pt") + " --model cortical_b --set model.width=4 --set model.width=8",
                     "'model.width' is given twice");
  // ventral config refuses what train refuses before reading data (it printed such configs as fine).
  expect_input_error("config " + (dir / "base.yaml") + " train.warmup_epochs=2", "the warm-up would last the whole run");
  expect_input_error("config " + (dir / "base.yaml") + " train.step_weights=[1,2]", "train.step_weights is set but");
  // compare took the last of two experiment files; eval --weights --set took training keys.
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\n");
  expect_input_error("compare " + (dir / "x.yaml") + " " + (dir / "x.yaml") + " --plan", "more than one experiment file");
  expect_input_error("eval --weights " + (dir / "w.pt") + " --model cortical_b --data synthetic:64 --set data.augment.hflip=true",
                     "data.augment.hflip shapes training only");
}

TEST(Cli, SixthRoundOutputsReplaceOnlyWhatVentralWrote) {
  TempDir dir;
  // perturb --out replaced any PNG: now only one ventral wrote (its "Software" text chunk).
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)), png);
  write_bytes(dir / "holiday.png", png);
  const std::string sheet = "perturb --data synthetic:8 --family block:1 --n 2 --out ";
  expect_input_error(sheet + (dir / "holiday.png"), "holiday.png: exists and is not a PNG ventral wrote");
  EXPECT_EQ(read_text(dir / "holiday.png"), std::string(png.begin(), png.end()));
  ASSERT_EQ(run_ventral(sheet + (dir / "sheet.png")).status, 0);
  EXPECT_EQ(run_ventral(sheet + (dir / "sheet.png")).status, 0);  // its own sheet again: replaced
  // The chunk is well formed: libpng (through PIL, which checks every CRC) reads it back.
  if (ventral::test::run_shell("/usr/bin/python3 -c 'import PIL'").status == 0) {
    auto pil = ventral::test::run_shell("/usr/bin/python3 -c \"from PIL import Image; im = Image.open('" + (dir / "sheet.png") +
                                        "'); im.load(); print(im.info['Software'])\"");
    EXPECT_EQ(pil.output, "ventral\n");
  }
  const cv::Mat decoded = cv::imread(dir / "sheet.png", cv::IMREAD_UNCHANGED);
  EXPECT_FALSE(decoded.empty());
  // bench --profile replaced any file; now only an earlier profile.
  write_text(dir / "notes.json", "{\"mine\": 1}\n");
  const std::string bench = "bench --model cortical_b --image-size 16 --iters 1 --warmup 0 --batch 2 --profile ";
  expect_input_error(bench + (dir / "notes.json"), "notes.json exists and is not a profile bench wrote");
  EXPECT_EQ(read_text(dir / "notes.json"), "{\"mine\": 1}\n");
  ASSERT_EQ(run_ventral(bench + (dir / "prof.json")).status, 0);
  EXPECT_EQ(run_ventral(bench + (dir / "prof.json")).status, 0);
  // compare --out wrote plan/, runs/, eval/ and REPORT.md into any folder.
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\n");
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\n");
  write_text(dir / "thesis/chapter1.tex", "keep\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan --out " + (dir / "thesis"),
                     "holds 'chapter1.tex', which ventral compare does not write");
  EXPECT_FALSE(std::filesystem::exists(dir / "thesis/plan"));
  EXPECT_EQ(run_ventral("compare " + (dir / "x.yaml") + " --plan --out " + (dir / "study")).status, 0);
  EXPECT_EQ(run_ventral("compare " + (dir / "x.yaml") + " --plan --out " + (dir / "study")).status, 0);
  // eval --out took any folder holding a file called results.csv for an evaluation.
  write_text(dir / "pandas/results.csv", "a,b\n1,2\n");
  write_text(dir / "run.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  ASSERT_EQ(run_ventral("train " + (dir / "run.yaml") + " --run-dir " + (dir / "run")).status, 0);
  expect_input_error("eval " + (dir / "run") + " --limit 8 --out " + (dir / "pandas"), "holds files but no evaluation");
  EXPECT_EQ(read_text(dir / "pandas/results.csv"), "a,b\n1,2\n");
  ASSERT_EQ(run_ventral("eval " + (dir / "run") + " --limit 8 --out " + (dir / "e")).status, 0);
  EXPECT_EQ(run_ventral("eval " + (dir / "run") + " --limit 8 --out " + (dir / "e")).status, 0);
  // A checkpoint with bytes appended loaded as if whole.
  write_text(dir / "appended.pt", read_text(dir / "run/checkpoints/last.pt") + "appended");
  expect_input_error("eval " + (dir / "run") + " --checkpoint " + (dir / "appended.pt") + " --limit 8 --out " + (dir / "e"),
                     "appended.pt: damaged zip archive (8 bytes after its end record");
  // Seventh round: a key nested and dotted in one file, --set twice for perturb, --keys with a
  // file, early exits of a feed-forward model, --out naming a file, an empty class folder.
  write_text(dir / "twice.yaml", "train: {lr: 1}\ntrain.lr: 2\n");
  expect_input_error("config " + (dir / "twice.yaml"), "key 'train.lr' is given twice, nested and dotted");
  expect_input_error(sheet + (dir / "s2.png") + " --set data.image_size=16 --set data.image_size=8", "is given twice");
  expect_input_error("config --keys " + (dir / "twice.yaml"), "--keys: lists the schema and reads no config");
  expect_input_error("eval " + (dir / "run") + " --limit 8 --out " + (dir / "e") + " --exit-threshold 0.5",
                     "is feed-forward (one step), so there is no step to exit early at");
  expect_input_error("eval " + (dir / "run") + " --limit 8 --out " + (dir / "run.yaml"), "is a file, not a folder");
  for (const char* split : {"train", "test"})
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 10; ++i) {
        if (c == 2 && split == std::string("train")) continue;  // train/c2 stays empty
        cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(40 * c + i)), png);
        write_bytes(dir / ("withempty/" + std::string(split) + "/c" + std::to_string(c) + "/" + std::to_string(i) + ".png"), png);
      }
  std::filesystem::create_directories(dir / "withempty/train/c2");
  expect_input_error("train " + (dir / "run.yaml") + " data.dataset=folder:" + (dir / "withempty") + " train.batch_size=4 --run-dir " +
                         (dir / "we"),
                     "class 'c2' has no training images");
  expect_input_error("train " + (dir / "run.yaml") + " train.step_loss=weights --run-dir " + (dir / "we"),
                     "train.step_loss is 'weights' but train.step_weights is empty");
  // bench options its measurement does not read; --images above the test set was capped silently.
  expect_input_error("bench --loader --data synthetic:64 --image-size 64", "bench: --image-size applies to timing a model or --peak");
  expect_input_error("bench --perturb block --data synthetic:64 --iters 3", "bench: --iters applies to timing a model or --peak");
  expect_input_error("bench --perturb block --data synthetic:64 --batch 7", "bench: --batch applies to timing a model");
  expect_input_error("bench --perturb block --data synthetic:64 --images 1000", "--images 1000: synthetic:64 holds only");
  // An experiment entry named after a registered model that trains another under its name.
  write_text(dir / "mislabel.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\n    config: {model.name: resnet20}\n");
  expect_input_error("compare " + (dir / "mislabel.yaml") + " --plan --out " + (dir / "ml"),
                     "models[cortical_b] is named after the registered model cortical_b but its config sets model.name=resnet20");
  expect_input_error("data mnist:" + (dir / "run.yaml"), "run.yaml: is a file, not a folder");
}

// The sixth probe round's leftovers: a message names where the value was set (the config file,
// the command line, an experiment's overrides or its entry), a run whose config.yaml was edited
// or whose input.json was deleted is refused, and values that change nothing are refused.
TEST(Cli, SeventhRoundMessagesNameWhereAValueWasSet) {
  TempDir dir;
  write_text(dir / "base.yaml", "data:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\ntrain:\n  epochs: 2\n"
                                "  batch_size: 16\n  lr: 0\n");
  const std::string train = "train " + (dir / "base.yaml") + " --run-dir " + (dir / "never");
  expect_input_error(train, "base.yaml: key 'train.lr' is 0, so training would change no weight");
  // A command-line key was blamed on the config file.
  expect_input_error(train + " train.lr=0.1 train.weight_decay=0 train.decay_bn_and_bias=true",
                     "error: command line: key 'train.decay_bn_and_bias' is set to true but has no effect");
  // An experiment's keys were blamed on the command line.
  write_text(dir / "x.yaml", "base: base.yaml\noverrides:\n  train.lr: 0.1\nmodels:\n  - name: cortical_b\n"
                             "  - name: wide\n    config:\n      model.name: cortical_b\n      train.gamma: 0.5\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan",
                     "x.yaml (models[wide]): key 'train.gamma' is set to 0.5 but has no effect");
  expect_input_error("compare " + (dir / "x.yaml") + " --models cortical_b,cortical_b --plan", "--models: names 'cortical_b' twice");
  write_text(dir / "ff.yaml", "base: base.yaml\noverrides:\n  train.lr: 0.1\nmodels:\n  - name: cortical_b\n");
  expect_input_error("compare " + (dir / "ff.yaml") + " eval.steps=1:4 --plan",
                     "compare: eval.steps: every model of the experiment is feed-forward (one step)");
  write_text(dir / "self.yaml", "base: self.yaml\nmodels:\n  - name: cortical_b\n");
  expect_input_error("compare " + (dir / "self.yaml") + " --plan", "self.yaml: key 'base' names this experiment file itself");
  write_text(dir / "bad_name.yaml", "base: base.yaml\nmodels:\n  - name: \"bl\xc3\xa9\"\n");
  expect_input_error("compare " + (dir / "bad_name.yaml") + " --plan", "bad_name.yaml: key 'models[].name': ");
  // A folder with train/ but no test/ was read as one class called "train" (an "empty image folder").
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)), png);
  write_bytes(dir / "split/train/c0/a.png", png);
  expect_input_error("data folder:" + (dir / "split"), "split: holds train/ with class folders but no test/");
  write_bytes(dir / "vehicles/train/a.png", png);  // a class that is called train stays one
  write_bytes(dir / "vehicles/bus/a.png", png);
  EXPECT_EQ(run_ventral("data folder:" + (dir / "vehicles")).status, 0);
  // A run's config.yaml edited after training: input.json's shape won without a word.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.lr=0.1 train.epochs=1 --run-dir " + (dir / "run")).status, 0);
  expect_input_error("eval " + (dir / "run") + " --limit 8 --reference " + (dir / "run") + "/",
                     "is the evaluated run itself");
  const std::string saved = read_text(dir / "run/config.yaml");
  std::string edited = saved;
  const std::string trained_size = "\n  image_size: 0\n";
  const size_t at = edited.find(trained_size);
  ASSERT_NE(at, std::string::npos) << saved;
  edited.replace(at, trained_size.size(), "\n  image_size: 32\n");
  write_text(dir / "run/config.yaml", edited);
  expect_input_error("eval " + (dir / "run") + " --limit 8",
                     "config.yaml: data.image_size is 32 but the run trained on 28 (input.json)");
  write_text(dir / "run/config.yaml", saved);
  std::filesystem::remove(dir / "run/input.json");
  expect_input_error("eval " + (dir / "run") + " --limit 8", "input.json: missing, though the run was trained by a version");
}

// The seventh probe round (about 330 inputs; no crash, hang, stack trace or exit 1): numbers
// that were silently wrong and values that meant nothing.
TEST(Cli, SeventhProbeRoundWrongNumbersAndIdleValuesAreRefused) {
  namespace fs = std::filesystem;
  TempDir dir;
  write_text(dir / "base.yaml", "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_blt\n"
                                "  width: 4\n  steps: 3\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "blt")).status, 0);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " model.unroll=synchronous --run-dir " + (dir / "sync")).status, 0);
  // Another run's checkpoint of the same shapes (another unrolling) was scored as this run's.
  fs::copy(dir / "blt", dir / "swapped", fs::copy_options::recursive);
  fs::copy_file(dir / "sync/checkpoints/last.pt", dir / "swapped/checkpoints/last.pt", fs::copy_options::overwrite_existing);
  expect_input_error("eval " + (dir / "swapped") + " --limit 8", "these weights were trained with another config than");
  expect_input_error("eval " + (dir / "blt") + " --limit 8 --checkpoint " + (dir / "sync/checkpoints/last.pt"), "model.unroll");
  // model.json deleted: reordered classes were scored after a note.
  fs::copy(dir / "blt", dir / "no_json", fs::copy_options::recursive);
  fs::remove(dir / "no_json/model.json");
  expect_input_error("eval " + (dir / "no_json") + " --limit 8", "model.json: missing, though the run was trained by a version");
  // classes.txt edited: blamed on config.yaml (a class added) or called missing (emptied).
  fs::copy(dir / "blt", dir / "classes", fs::copy_options::recursive);
  write_text(dir / "classes/classes.txt", read_text(dir / "blt/classes.txt") + "extra\n");
  expect_input_error("eval " + (dir / "classes") + " --limit 8", "classes.txt: holds 11 class names, but the run trained on 10");
  write_text(dir / "classes/classes.txt", "");
  expect_input_error("eval " + (dir / "classes") + " --limit 8", "classes.txt: is empty");
  // export --out q replaced q.json, which described q.pt.
  ASSERT_EQ(run_ventral("export " + (dir / "blt") + " --out " + (dir / "q.pt")).status, 0);
  expect_input_error("export " + (dir / "blt") + " --out " + (dir / "q"), "which describes the export q.pt");
  EXPECT_EQ(run_ventral("export " + (dir / "blt") + " --out " + (dir / "q.pt")).status, 0);  // its own: replaced
  // ventral config passed what train refuses before reading data.
  expect_input_error("config " + (dir / "base.yaml") + " train.optimizer=adam train.betas=[0.9,0.99,0.9]",
                     "key 'train.betas' needs two values, got 3");
  expect_input_error("config " + (dir / "base.yaml") + " data.image_size=1", "the smallest image side ventral takes is 8");
  expect_input_error("config " + (dir / "base.yaml") + " data.dataset=foo:bar", "foo:bar");
  expect_input_error("config " + (dir / "base.yaml") + " train.step_loss=weights train.step_weights=[1,2]",
                     "train.step_weights has 2 values but cortical_blt reads out at 3 steps");
  // Step schedules that trained at lr 0, skipped the peak lr or applied gamma twice.
  const std::string step = "config " + (dir / "base.yaml") + " train.epochs=3 train.schedule=step ";
  expect_input_error(step + "train.milestones=[1] train.gamma=0", "key 'train.gamma' is 0");
  expect_input_error(step + "train.milestones=[0]", "holds an epoch at or below 0");
  expect_input_error(step + "train.milestones=[2,2]", "lists 2 twice");
  // Evaluation values dropped or merged without a word.
  const std::string eval = "eval " + (dir / "blt") + " --out " + (dir / "e") + " ";
  expect_input_error(eval + "--limit 99999", "--limit 99999: the dataset holds only");
  expect_input_error(eval + "--limit 8 --perturb block:0", "block at severity 0 is the clean image");
  expect_input_error(eval + "--limit 8 --perturb block:1,block:1", "block at severity 1 is listed twice");
  expect_input_error(eval + "--limit 8 --steps 1,1", "step 1 is listed twice");
  expect_input_error(eval + "--limit 8 --features V1,V1", "area 'V1' is listed twice");
  EXPECT_FALSE(fs::exists(dir / "e/results.csv"));
  // A study's seeds replaced an entry's own seed; a bad eval.steps blamed --steps.
  write_text(dir / "x.yaml", "base: base.yaml\nseeds: [0, 1]\nmodels:\n  - name: cortical_blt\n"
                             "  - name: other\n    config: {model.name: cortical_blt, seed: 3}\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --plan", "models[other].config sets seed, but 'seeds'");
  write_text(dir / "y.yaml", "base: base.yaml\nmodels:\n  - name: cortical_blt\n");
  expect_input_error("compare " + (dir / "y.yaml") + " eval.steps=0 --plan", "compare: eval.steps: '0' is not a step list");
  expect_input_error("compare " + (dir / "y.yaml") + " eval.perturb=block:0 --plan", "block at severity 0 is the clean image");
  // A list naming a folder called it missing.
  fs::create_directories(dir / "L/sub");
  write_text(dir / "L/train.csv", "sub,0\n");
  expect_input_error("data list:" + (dir / "L/train.csv"), "sub: is a folder, not an image file");
}

// The eighth probe round (about 160 inputs, no crash or exit 1; these of its findings fixed).
TEST(Cli, EighthProbeRoundImportedStatisticsStudySubsetsAndClassMaps) {
  TempDir dir;
  write_text(dir / "base.yaml", "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_b\n"
                                "  width: 4\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  // A negative running variance made every activation NaN, scored as one class at 10.9%.
  ASSERT_EQ(ventral::test::run_shell("/usr/bin/python3 -c \"import torch; s = torch.load('" + (dir / "w.pt") +
                      "'); s['V1.norm.norms.0.running_var'] = -s['V1.norm.norms.0.running_var']; torch.save(s, '" +
                      (dir / "neg.pt") + "')\"")
                .status,
            0);
  expect_input_error("train " + (dir / "base.yaml") + " model.weights=" + (dir / "neg.pt") + " --run-dir " + (dir / "never"),
                     "V1.norm.norms.0.running_var holds negative variances");
  // --models leaving out the reference, or every recurrent model, blamed the experiment.
  write_text(dir / "x.yaml", "base: base.yaml\nreference: cortical_b\nmodels:\n  - name: cortical_b\n"
                             "  - name: cortical_bl\n    config: {model.steps: 2}\n  - name: cortical_b_k\n"
                             "eval:\n  steps: \"1:2\"\n");
  expect_input_error("compare " + (dir / "x.yaml") + " --models cortical_bl --plan", "--models: leaves out the reference 'cortical_b'");
  expect_input_error("compare " + (dir / "x.yaml") + " --models cortical_b,cortical_b_k --plan",
                     "every model that --models chose is feed-forward");
  // A class-map line naming no class of the dataset (a misspelt folder) was ignored.
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(28, 28, CV_8UC1, cv::Scalar(9)), png);
  write_bytes(dir / "f/circle/a.png", png);
  write_bytes(dir / "f/square/a.png", png);
  write_text(dir / "map.tsv", "circel\tcircle\n");
  expect_input_error("eval " + (dir / "run") + " --data folder:" + (dir / "f") + " --class-map " + (dir / "map.tsv") +
                         " --out " + (dir / "e2"),
                     "map.tsv: maps 'circel', which is not a class of");
}

// perturb --write replaced a set image by image: a second dataset's smaller set left the first's
// other images beside it, and an interrupted write left a cut-off set that looked complete.
// Each set is now staged and replaces the earlier one whole; feature exports drop the arrays of
// an earlier export that they did not write.
TEST(Cli, EighthProbeRoundSetsAndFeatureFoldersHoldOneExportOnly) {
  namespace fs = std::filesystem;
  TempDir dir;
  ASSERT_EQ(run_ventral("perturb --data synthetic:256 --family block:1 --write " + (dir / "sets")).status, 0);
  ASSERT_EQ(run_ventral("perturb --data synthetic:64 --family block:1 --write " + (dir / "sets")).status, 0);
  size_t images = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "sets/block/1")) images += e.path().extension() == ".png";
  EXPECT_EQ(images, 16u);  // synthetic:64's test split, nothing of the first set's 64
  EXPECT_FALSE(fs::exists(dir / "sets/block/.1.partial"));
  write_text(dir / "base.yaml", "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_blt\n"
                                "  width: 4\n  steps: 2\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("eval " + (dir / "run") + " --features V1 IT --out " + (dir / "e")).status, 0);
  EXPECT_TRUE(fs::exists(dir / "e/features/V1_step2.npy"));
  ASSERT_EQ(run_ventral("eval " + (dir / "run") + " --features IT --out " + (dir / "e")).status, 0);
  EXPECT_FALSE(fs::exists(dir / "e/features/V1_step2.npy"));
  EXPECT_TRUE(fs::exists(dir / "e/features/IT_step2.npy"));
}

// Ninth round (the eighth probe round's leftovers). A run records the dataset folder it read as
// an absolute path (a relative one was resolved against whatever directory `eval` ran in, and
// another folder of the same name was scored silently); a run id tells its checkpoints from
// those of another run of the same config; an epoch resumed after a stop keeps the sums of its
// batches before the stop in metrics.csv (it held the batches after the stop only, or a zero row
// when the stop fell on the epoch's end).
TEST(Cli, NinthRoundRunsRecordTheirDatasetTheirIdentityAndWholeEpochs) {
  namespace fs = std::filesystem;
  TempDir dir;
  auto png = [](int value) {
    std::vector<unsigned char> bytes;
    cv::Mat img(28, 28, CV_8UC1, cv::Scalar(value));
    cv::circle(img, {14, 14}, 6 + value % 5, cv::Scalar(255 - value), -1);
    cv::imencode(".png", img, bytes);
    return bytes;
  };
  for (const char* split : {"train", "test"})
    for (int i = 0; i < 8; ++i) {
      write_bytes(dir / ("a/imgs/" + std::string(split) + "/circle/" + std::to_string(i) + ".png"), png(20 + i));
      write_bytes(dir / ("a/imgs/" + std::string(split) + "/square/" + std::to_string(i) + ".png"), png(200 + i));
    }
  write_bytes(dir / "b/imgs/train/dots/0.png", png(9));  // another folder of the same name, from elsewhere
  write_bytes(dir / "b/imgs/test/dots/0.png", png(9));
  write_text(dir / "a/cfg.yaml", "seed: 0\ndata:\n  dataset: folder:imgs\n  val_fraction: 0.25\nmodel:\n  name: cortical_b\n"
                                 "  width: 4\ntrain:\n  epochs: 2\n  batch_size: 4\n");
  const std::string in_a = "cd " + (dir / "a") + " && " + VENTRAL_BINARY + " ";
  ASSERT_EQ(ventral::test::run_shell(in_a + "train cfg.yaml --run-dir run").status, 0);
  EXPECT_NE(read_text(dir / "a/run/config.yaml").find("folder:" + (dir / "a/imgs")), std::string::npos)
      << read_text(dir / "a/run/config.yaml");
  // From b/, the run still reads a/imgs (b/imgs has one class of another name: it was refused).
  auto e = ventral::test::run_shell("cd " + (dir / "b") + " && " + VENTRAL_BINARY + " eval ../a/run --out e");
  ASSERT_EQ(e.status, 0) << e.output;
  const auto test = nlohmann::json::parse(read_text(dir / "a/run/test.json"));
  const auto summary = nlohmann::json::parse(read_text(dir / "b/e/summary.json"));
  EXPECT_EQ(summary["n"], test["n"]);
  EXPECT_DOUBLE_EQ(summary["clean_accuracy"].back().get<double>(), test["accuracy"].back().get<double>()) << summary.dump();

  // Stopped at the end of epoch 1 (3 steps of 12 images) and in the middle of epoch 2: resumed
  // with the config file again (its relative folder is the same data), metrics.csv's training
  // columns equal the uninterrupted run's.
  ASSERT_EQ(ventral::test::run_shell(in_a + "train cfg.yaml --run-dir stopped train.stop_after_steps=3").status, 75);
  auto at_epoch_end = ventral::test::run_shell(in_a + "train cfg.yaml --run-dir stopped --resume train.stop_after_steps=1");
  ASSERT_EQ(at_epoch_end.status, 75) << at_epoch_end.output;
  // The epoch whose steps were all done before the stop says so, not "epoch 1/2 0/0".
  EXPECT_NE(at_epoch_end.output.find("epoch 1/2 (resumed after step 3 of 3) 0/0"), std::string::npos) << at_epoch_end.output;
  auto resumed = ventral::test::run_shell(in_a + "train cfg.yaml --run-dir stopped --resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  auto training_columns = [](const std::string& csv) {  // epoch,lr,train_loss,train_acc of every row
    std::string out;
    std::istringstream in(csv);
    for (std::string line; std::getline(in, line);) {
      size_t cut = 0;
      for (int comma = 0; comma < 4 && cut != std::string::npos; ++comma) cut = line.find(',', cut + 1);
      out += line.substr(0, cut) + "\n";
    }
    return out;
  };
  const std::string whole = training_columns(read_text(dir / "a/run/metrics.csv"));
  EXPECT_EQ(std::count(whole.begin(), whole.end(), '\n'), 3) << whole;
  EXPECT_EQ(training_columns(read_text(dir / "a/stopped/metrics.csv")), whole);

  // Another run of the same config (a rerun, or the same study entry run twice): its checkpoint
  // is not this run's.
  ASSERT_EQ(ventral::test::run_shell(in_a + "train cfg.yaml --run-dir other").status, 0);
  fs::copy_file(dir / "a/other/checkpoints/last.pt", dir / "a/run/checkpoints/last.pt", fs::copy_options::overwrite_existing);
  expect_input_error("eval " + (dir / "a/run") + " --out " + (dir / "e3"), "written by another run");
  // A metrics.csv replaced (another run's, or edited): compare's curve is the run's own (last.pt's).
  write_text(dir / "a/stopped/metrics.csv", "epoch,lr,train_loss,train_acc,val_loss,val_acc_step1,seconds\n"
                                            "1,0.075,0.5,0.5,0.5,0.125,0.01\n2,0.0067,0.5,0.5,0.5,0.25,0.01\n");
  const auto curve = ventral::RunDir(dir / "a/stopped").read_validation_curve();
  ASSERT_EQ(curve.size(), 2u);
  std::istringstream rows(read_text(dir / "a/run/metrics.csv"));
  std::string header, first;
  std::getline(rows, header), std::getline(rows, first);
  const std::vector<std::string> cells = ventral::split_csv_row(first);
  EXPECT_DOUBLE_EQ(curve[0].second, std::stod(cells[cells.size() - 2]));
  EXPECT_NE(curve[0].second, 0.125);

  // A streamed test image that does not decode (data.skip_bad_images) is in no count: a stand-in
  // took its place and was scored (n was 17 of 16 decodable images).
  write_text(dir / "a/imgs/test/circle/9.png", "not an image");
  auto skip = ventral::test::run_shell(in_a + "train cfg.yaml --run-dir skip train.epochs=1 data.stream=on "
                                       "data.skip_bad_images=true");
  ASSERT_EQ(skip.status, 0) << skip.output;
  const auto skipped = nlohmann::json::parse(read_text(dir / "a/skip/test.json"));
  EXPECT_EQ(skipped["n"], 16) << skipped.dump();
  EXPECT_EQ(skipped["skipped_test_images"], 1) << skipped.dump();
  // A feature export leaves the stand-in's row out too (it exported a copy of the next image).
  auto features = ventral::test::run_shell(in_a + "eval skip --features IT --out ef");
  ASSERT_EQ(features.status, 0) << features.output;
  const auto index = nlohmann::json::parse(read_text(dir / "a/ef/features/index.json"));
  EXPECT_EQ(index["n"], 16) << index.dump();
  EXPECT_EQ(index["left_out"].size(), 1u) << index.dump();
}

// `eval --weights` of an export reads the description beside it (model, options, input size,
// normalisation, class names): the same numbers as the run, without --model or --set, and what is
// given may repeat it but not contradict it. A fine-tuning import that fits no tensor at all
// (weights_strict: false) is refused; the run header counts the tensors an import loaded.
TEST(Cli, NinthRoundExportsAreEvaluatedAsDescribed) {
  TempDir dir;
  write_text(dir / "base.yaml", "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_b\n"
                                "  width: 4\ntrain:\n  epochs: 1\n  batch_size: 16\n");
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  ASSERT_EQ(run_ventral("eval " + (dir / "run") + " --out " + (dir / "e1")).status, 0);
  auto r = run_ventral("eval --weights " + (dir / "w.pt") + " --data synthetic:64 --out " + (dir / "e2"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("w.json"), std::string::npos) << r.output;
  const auto run = nlohmann::json::parse(read_text(dir / "e1/summary.json"));
  const auto imported = nlohmann::json::parse(read_text(dir / "e2/summary.json"));
  EXPECT_EQ(imported["n"], run["n"]);
  EXPECT_EQ(imported["clean_accuracy"], run["clean_accuracy"]);
  EXPECT_EQ(run_ventral("eval --weights " + (dir / "w.pt") + " --model cortical_b --set model.width=4 --data synthetic:64 --out " +
                        (dir / "e3")).status,
            0);
  expect_input_error("eval --weights " + (dir / "w.pt") + " --model resnet20 --data synthetic:64 --out " + (dir / "e4"),
                     "contradicts");
  expect_input_error("eval --weights " + (dir / "w.pt") + " --set model.width=8 --data synthetic:64 --out " + (dir / "e4"),
                     "--set model.width=8: contradicts");
  // Images of another size than the model's input, given with --data, are resized with a note.
  std::vector<unsigned char> big;
  cv::imencode(".png", cv::Mat(32, 32, CV_8UC1, cv::Scalar(90)), big);
  write_bytes(dir / "big/circle/a.png", big);
  write_bytes(dir / "big/square/a.png", big);
  auto resized = run_ventral("eval " + (dir / "run") + " --data folder:" + (dir / "big") + " --out " + (dir / "e5"));
  ASSERT_EQ(resized.status, 0) << resized.output;
  EXPECT_NE(resized.output.find("2 of 2 images are not 28x28 (the model's input size) and were resized"), std::string::npos)
      << resized.output;
  // A folder without splits is named as itself in summary.json (it was called "DIR/test").
  EXPECT_EQ(nlohmann::json::parse(read_text(dir / "e5/summary.json"))["dataset"], "folder:" + (dir / "big"));
  expect_input_error("train " + (dir / "base.yaml") + " model.name=resnet20 model.weights=" + (dir / "w.pt") +
                         " model.weights_strict=false --run-dir " + (dir / "never"),
                     "none of the file's tensors fits the model");
}

// Smaller leftovers of the eighth round: an override YAML reads as nothing (`perturb=,` turned the
// training perturbation off), a config file holding a NUL byte (yaml-cpp's message pointed past
// it), `data --split test` on a folder without a test split, and `bench --threads` above the cores.
TEST(Cli, NinthRoundOverridesOfNothingNulBytesAndUnsplitFolders) {
  TempDir dir;
  expect_input_error("config data.augment.perturb=,", "has no value YAML can read");
  EXPECT_EQ(run_ventral("config data.augment.perturb=").status, 0);  // empty on purpose: off
  write_bytes(dir / "nul.yaml", {'s', 'e', 'e', 'd', ':', ' ', '1', '\n', 0, 'x', ':', ' ', '1', '\n'});
  expect_input_error("config " + (dir / "nul.yaml"), "nul.yaml: line 2 holds a NUL byte");
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(28, 28, CV_8UC1, cv::Scalar(9)), png);
  write_bytes(dir / "f/circle/a.png", png);
  write_bytes(dir / "f/square/a.png", png);
  auto data = run_ventral("data folder:" + (dir / "f") + " --split test");
  EXPECT_EQ(data.status, 0) << data.output;
  EXPECT_NE(data.output.find("has no separate test split: these are all its images"), std::string::npos) << data.output;
  auto bench = run_ventral("bench --model cortical_b --batch 2 --iters 1 --warmup 0 --threads 64");
  EXPECT_EQ(bench.status, 0) << bench.output;
  EXPECT_NE(bench.output.find("--threads 64 is more than the"), std::string::npos) << bench.output;
}

// The ninth probe round (a helper, ~300 inputs against this session's changes). A reference run
// of other classes or another input shape was scored on the evaluated run's images and labels
// (McNemar against a model of another task; exit 1 for other channels); `--set data.resize` /
// `data.center_crop` slipped past an export's description; an alias inside its own anchor
// crashed the YAML reader (exit 139); `--resume` took another run's last.pt and adopted its id;
// a model.json stripped of its run id turned the check off; `link/..` in a dataset path was
// resolved lexically, not as the kernel does, and `imgs/` was another folder than `imgs` on
// resume; a description's wrongly typed field was named by nlohmann's text only.
TEST(Cli, NinthProbeRoundReferencesDescriptionsAnchorsAndRunIds) {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string base = "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_b\n"
                           "  width: 4\ntrain:\n  epochs: 1\n  batch_size: 16\n";
  write_text(dir / "base.yaml", base);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " data.image_size=16 --run-dir " + (dir / "small")).status, 0);
  write_two_class_folder(dir / "xy", 8);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " data.dataset=folder:" + (dir / "xy") + " train.batch_size=4 --run-dir " +
                        (dir / "xyrun")).status,
            0);
  expect_input_error("eval " + (dir / "run") + " --reference " + (dir / "xyrun") + " --out " + (dir / "e1"),
                     "xyrun: its classes (x, y) are not those of");
  expect_input_error("eval " + (dir / "run") + " --reference " + (dir / "small") + " --out " + (dir / "e1"),
                     "small: takes 1x16x16 images");
  // An export's description: resize and crop may not be changed, nor a field given another type.
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  expect_input_error("eval --weights " + (dir / "w.pt") + " --data synthetic:64 --set data.resize=40 --set data.center_crop=28",
                     "contradicts");
  std::string description = read_text(dir / "w.json");
  const size_t width = description.find("\"width\": 4");
  ASSERT_NE(width, std::string::npos) << description;
  write_text(dir / "w.json", description.replace(width, 10, "\"width\": \"4\""));
  expect_input_error("eval --weights " + (dir / "w.pt") + " --data synthetic:64", "field 'options.width' is \"4\", not a whole number");
  // An alias inside its own anchor.
  write_text(dir / "anchor.yaml", "seed: 0\nx: &a [*a]\n");
  expect_input_error("config " + (dir / "anchor.yaml"), "an alias inside its own anchor?");
  write_text(dir / "anchor2.yaml", "a: &x\n  b: *x\n");
  expect_input_error("config " + (dir / "anchor2.yaml"), "an alias inside its own anchor?");
  // Resuming with another run's last.pt, and a model.json without its run id.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.epochs=2 train.stop_after_steps=1 --run-dir " + (dir / "t1")).status, 75);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.epochs=2 train.stop_after_steps=1 --run-dir " + (dir / "t2")).status, 75);
  fs::copy_file(dir / "t2/checkpoints/last.pt", dir / "t1/checkpoints/last.pt", fs::copy_options::overwrite_existing);
  expect_input_error("train --resume --run-dir " + (dir / "t1"), "t1/checkpoints/last.pt: written by another run");
  auto model = nlohmann::json::parse(read_text(dir / "run/model.json"));
  model.erase("run_id");
  write_text(dir / "run/model.json", model.dump(2));
  expect_input_error("eval " + (dir / "run") + " --out " + (dir / "e2"), "model.json: holds no run id");
  // link/.. is the link target's parent, as the kernel reads it; imgs/ and imgs are one folder.
  for (const char* c : {"p", "q"})
    for (int i = 0; i < 8; ++i) write_bytes(dir / ("deep/imgs/" + std::string(c) + "/" + std::to_string(i) + ".png"), gray_png());
  fs::create_directories(dir / "deep/x");
  fs::create_symlink(dir / "deep/x", dir / "lx");
  const std::string here = "cd " + std::string(dir / "") + " && " + VENTRAL_BINARY + " ";
  auto linked = ventral::test::run_shell(here + "train base.yaml data.dataset=folder:lx/../imgs train.batch_size=4 "
                                         "train.epochs=2 train.stop_after_steps=3 --run-dir r7");
  ASSERT_EQ(linked.status, 75) << linked.output;
  EXPECT_NE(read_text(dir / "r7/config.yaml").find("folder:" + (dir / "deep/imgs")), std::string::npos)
      << read_text(dir / "r7/config.yaml");
  auto slash = ventral::test::run_shell(here + "train base.yaml data.dataset=folder:deep/imgs/ train.batch_size=4 "
                                        "train.epochs=2 --run-dir r7 --resume");
  EXPECT_EQ(slash.status, 0) << slash.output;
}

// The ninth probe round's leftovers: what a message must say to be acted on.
TEST(Cli, TenthRoundMessagesSayWhatToDo) {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string base = "seed: 0\ndata:\n  dataset: synthetic:64\nmodel:\n  name: cortical_b\n  width: 4\n"
                           "train:\n  epochs: 1\n  batch_size: 16\n";
  write_text(dir / "base.yaml", base);
  // " #" in an override starts a YAML comment: the value would be cut there.
  expect_input_error("config " + (dir / "base.yaml") + " 'data.dataset=folder:../h #b'", "YAML reads '#b' as a comment");
  // Quoted, the '#' is part of the folder's name (which does not exist here).
  expect_input_error("config " + (dir / "base.yaml") + " 'data.dataset=\"folder:h #b\"'", "h #b: no such folder");
  // A training config given to compare, or an experiment given to train or as a base, is named as
  // the wrong kind of file (not as an unknown key).
  write_text(dir / "x.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\nreference: cortical_b\n");
  write_text(dir / "xx.yaml", "base: x.yaml\nmodels:\n  - name: cortical_b\nreference: cortical_b\n");
  expect_input_error("compare " + (dir / "base.yaml") + " --plan", "is a training config (it has no 'models' list)");
  expect_input_error("train " + (dir / "x.yaml"), "is an experiment file (it lists 'models'), not a training config");
  expect_input_error("compare " + (dir / "xx.yaml") + " --plan", "xx.yaml: base: ");
  // A section takes a mapping of its keys, as in a file; anything else names the section.
  auto section = run_ventral("config " + (dir / "base.yaml") + " 'data.augment={hflip: true, crop_padding: 2}'");
  ASSERT_EQ(section.status, 0) << section.output;
  EXPECT_NE(section.output.find("crop_padding: 2"), std::string::npos) << section.output;
  expect_input_error("config " + (dir / "base.yaml") + " data.augment=3", "'data.augment' is a section");
  expect_input_error("config " + (dir / "base.yaml") + " 'data.augment={flipp: true}'", "unknown key 'data.augment.flipp'");
  // An export given where a training checkpoint goes says how to read it.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  expect_input_error("eval " + (dir / "run") + " --checkpoint " + (dir / "w.pt") + " --out " + (dir / "e"),
                     "evaluate them with `ventral eval --weights");
  // A file that holds no weights is named as such before what else --weights lacks.
  write_text(dir / "tiny.yaml", "a: 1\n");
  auto tiny = run_ventral("eval --weights " + (dir / "tiny.yaml") + " --model resnet20 --data synthetic:64");
  EXPECT_EQ(tiny.status, 2) << tiny.output;
  EXPECT_NE(tiny.output.find("tiny.yaml"), std::string::npos) << tiny.output;
  EXPECT_EQ(tiny.output.find("input size is unknown"), std::string::npos) << tiny.output;
  // A run whose image folder moved after training: the message says how to evaluate it anyway.
  write_two_class_folder(dir / "xy", 8);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " data.dataset=folder:" + (dir / "xy") +
                        " train.batch_size=4 --run-dir " + (dir / "xyrun")).status,
            0);
  fs::rename(dir / "xy", dir / "moved");
  expect_input_error("eval " + (dir / "xyrun") + " --out " + (dir / "e2"), "give them with --data SPEC");
  auto elsewhere = run_ventral("eval " + (dir / "xyrun") + " --data folder:" + (dir / "moved") + " --out " + (dir / "e2"));
  EXPECT_EQ(elsewhere.status, 0) << elsewhere.output;
}

// Probe round ten: descriptions checked field by field, resumes that need model.json, keys given
// twice through a section, limits above the data, tags and merge keys.
TEST(Cli, TenthProbeRoundDescriptionsResumesAndKeys) {
  namespace fs = std::filesystem;
  TempDir dir;
  const std::string base = "seed: 0\ndata:\n  dataset: synthetic:64\n  val_fraction: 0.25\nmodel:\n  name: cortical_b\n"
                           "  width: 4\ntrain:\n  epochs: 1\n  batch_size: 16\n";
  write_text(dir / "base.yaml", base);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " --run-dir " + (dir / "run")).status, 0);
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  const std::string original = read_text(dir / "w.json");
  // Each edit of the description is refused naming the field (it was read, or ignored, silently).
  auto edited = [&](const std::string& from, const std::string& to) {
    std::string text = original;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    write_text(dir / "w.json", text);
    return "eval --weights " + (dir / "w.pt") + " --data synthetic:64 --out " + (dir / "e");
  };
  expect_input_error(edited("\"steps\": 1,", "\"steps\": 5,"), "field 'steps' is 5, but the model it describes runs 1");
  expect_input_error(edited("\"layout\": \"NCHW\"", "\"layout\": \"NHWC\""), "field 'input.layout' is \"NHWC\"");
  expect_input_error(edited("\"center_crop\": 0", "\"center_crop\": 100"), "do not describe an input");
  expect_input_error(edited("\"width\": 4", "\"width\": 4, \"bogus\": 1"), "field 'options.bogus' is not one");
  expect_input_error(edited("\"model\": \"cortical_b\"", "\"model\": \"\""), "field 'model': unknown model ''");
  expect_input_error(edited("\"channels\": 1", "\"channels\": 3"), "field 'input.channel_order' is \"gray\"");
  expect_input_error(edited("ventral model description 1;", "ventral model description 2;"), "descriptions of format 1");
  expect_input_error(edited("\"model\": \"cortical_b\",", "\"model\": \"cortical_b\", \"model\": \"resnet20\","),
                     "key \"model\" appears twice in one object");
  expect_input_error(edited("\"circle\"", "\"circ\\nle\""), "not a class name (empty, or with a line break");
  // A crop without a resize is an input data.* allows: its export is read as written.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " data.center_crop=24 --run-dir " + (dir / "crop")).status, 0);
  ASSERT_EQ(run_ventral("export " + (dir / "crop") + " --out " + (dir / "c.pt")).status, 0);
  auto cropped = run_ventral("eval --weights " + (dir / "c.pt") + " --data synthetic:64 --out " + (dir / "ec"));
  EXPECT_EQ(cropped.status, 0) << cropped.output;
  auto cropped_run = run_ventral("eval " + (dir / "crop") + " --data synthetic:64 --out " + (dir / "ecr"));
  EXPECT_EQ(cropped_run.status, 0) << cropped_run.output;
  EXPECT_EQ(read_text(dir / "ec/results.csv"), read_text(dir / "ecr/results.csv"));
  // A damaged description is named as such, not answered with "needs --model".
  write_text(dir / "w.json", original + "trailing");
  expect_input_error("eval --weights " + (dir / "w.pt") + " --data synthetic:64 --out " + (dir / "e"),
                     "restore it from `ventral export`, or move it away");
  write_text(dir / "w.json", original);
  // A class-names file that starts with a byte-order mark names the same classes.
  std::string classes = "\xEF\xBB\xBF";
  for (const char* c : {"circle", "square", "triangle", "cross", "ring", "hbar", "vbar", "diagonal", "diamond", "dots"})
    classes += std::string(c) + "\n";
  write_text(dir / "classes.txt", classes);
  auto bom = run_ventral("eval --weights " + (dir / "w.pt") + " --data synthetic:64 --classes " + (dir / "classes.txt") +
                         " --out " + (dir / "e"));
  EXPECT_EQ(bom.status, 0) << bom.output;

  // Resuming: without model.json another run's last.pt would be adopted; an empty run id is none.
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.epochs=2 train.stop_after_steps=1 --run-dir " + (dir / "t1")).status, 75);
  ASSERT_EQ(run_ventral("train " + (dir / "base.yaml") + " train.epochs=2 train.stop_after_steps=2 --run-dir " + (dir / "t2")).status, 75);
  fs::copy_file(dir / "t2/checkpoints/last.pt", dir / "t1/checkpoints/last.pt", fs::copy_options::overwrite_existing);
  fs::rename(dir / "t1/model.json", dir / "t1/model.json.away");
  expect_input_error("train --resume --run-dir " + (dir / "t1"), "t1/model.json: missing, though the run has started");
  auto model = nlohmann::json::parse(read_text(dir / "t1/model.json.away"));
  model["run_id"] = "";
  write_text(dir / "t1/model.json", model.dump(2));
  expect_input_error("train --resume --run-dir " + (dir / "t1"), "model.json: holds no run id");

  // A section given whole and one of its keys on one command line; YAML tags and merge keys.
  expect_input_error("config " + (dir / "base.yaml") + " train.lr=0.1 'train={lr: 0.2}'", "one sets the section 'train' whole");
  expect_input_error("config " + (dir / "base.yaml") + " 'train.epochs=!!float 2'", "has the YAML tag");
  write_text(dir / "tag.yaml", base + "seed: !custom 0\n");
  write_text(dir / "tag.yaml", "seed: !custom 0\n");
  expect_input_error("config " + (dir / "tag.yaml"), "key 'seed' has the YAML tag '!custom'");
  write_text(dir / "merge.yaml", "m: &m {lr: 0.1}\n");
  write_text(dir / "merge.yaml", "train: {<<: {lr: 0.1}, epochs: 1}\n");
  expect_input_error("config " + (dir / "merge.yaml"), "is a YAML merge key");
  expect_input_error("config " + (dir / "base.yaml") + " model.width=4096", "key 'model.width' value 4096 is out of range [0, 512]");

  // perturb --write refuses what eval --perturb refuses; compare's eval.limit above the test set.
  const std::string perturb = "perturb --data synthetic:20 --write " + (dir / "pw") + " --family ";
  expect_input_error(perturb + "block:1,block:1", "block at severity 1 is listed twice");
  expect_input_error(perturb + "block:0", "block at severity 0 is the clean image");
  EXPECT_FALSE(fs::exists(dir / "pw"));
  write_text(dir / "exp.yaml", "base: base.yaml\nmodels:\n  - name: cortical_b\neval:\n  limit: 100000\n");
  expect_input_error("compare " + (dir / "exp.yaml") + " --out " + (dir / "cmp"), "eval.limit 100000:");
  write_text(dir / "exp2.yaml", "base: base.yaml\nmodels:\n  - name: foo\n");
  expect_input_error("compare " + (dir / "exp2.yaml") + " --out " + (dir / "cmp2"), "exp2.yaml (models[foo]): key 'model.name': unknown model 'foo'");
  // An image that does not decode says how to go on.
  write_two_class_folder(dir / "xy", 4);
  const std::vector<unsigned char> png = gray_png();
  write_bytes(dir / "xy/x/cut.png", std::vector<unsigned char>(png.begin(), png.begin() + 40));
  expect_input_error("data folder:" + (dir / "xy"), "or set data.skip_bad_images=true");
}

// Probe round twelve: what was cut, resized, converted or skipped without a word, and CLI11's
// own wording.
TEST(Cli, TwelfthProbeRoundNothingSilent) {
  namespace fs = std::filesystem;
  TempDir dir;
  // A NUL byte in a path cut it short: training read "fashion-mnist".
  write_text(dir / "nul.yaml", "data:\n  dataset: \"fashion-mnist\\u0000junk\"\n");
  expect_input_error("config " + (dir / "nul.yaml"), "holds a control character (byte 0x00 at position 13)");
  // Integer keys are bounded as integers: in double, this rounded to the bound and passed.
  expect_input_error("config seed=9200000000000000500", "out of range [0, 9200000000000000000]");
  EXPECT_EQ(run_ventral("config seed=9200000000000000000").status, 0);
  // A wrong data.std on a built-in gray dataset: named where it was set, and `config` refuses it too.
  expect_input_error("config 'data.std=[0.3,0.3]'", "command line: key 'data.std' has 2 values for 1-channel images");
  // Nesterov momentum without momentum was plain SGD without a word.
  expect_input_error("config train.momentum=0", "set train.nesterov=false as well");
  EXPECT_EQ(run_ventral("config train.momentum=0 train.nesterov=false").status, 0);
  // CLI11's wording, in ventral's.
  expect_input_error("eval r --steps 1:2 --steps 3", "--steps: given 2 times; give it once");
  expect_input_error("eval r --limit 1e3", "--limit: '1e3' is not a decimal integer");
  expect_input_error("eval r --limit 200000000", "--limit: 200000000 is out of range (0 to 100000000)");
  // A sheet row of severity 0 repeats the clean row; --n has no sheet without --out.
  expect_input_error("perturb --data synthetic:8 --family block:0 --out " + (dir / "s.png"), "is the clean image");
  expect_input_error("perturb --data synthetic:8 --family block:1 --n 3 --write " + (dir / "w"), "--n: sets the contact sheet");
  // An empty CIFAR batch is named as empty.
  write_bytes(dir / "cifar/test_batch.bin", {});
  expect_input_error("data cifar10:" + (dir / "cifar") + " --split test", "test_batch.bin: empty file");
  // A two-class folder whose classes are named `a` and `b`, read by `ventral data`.
  auto two_classes_named = [&](const std::string& folder, const std::string& a, const std::string& b) {
    write_two_class_folder(dir / folder, 2);
    fs::rename(dir / (folder + "/x"), dir / (folder + "/" + a));
    fs::rename(dir / (folder + "/y"), dir / (folder + "/" + b));
    return run_ventral("data folder:" + (dir / folder));
  };
  // Classes that class matching would take for one.
  auto cats = two_classes_named("cats", "Cat", "cat");
  ASSERT_EQ(cats.status, 0) << cats.output;
  EXPECT_NE(cats.output.find("classes 'Cat' and 'cat' differ only in case"), std::string::npos) << cats.output;
  // Names in other scripts are distinct classes (class matching keeps non-ASCII letters whole).
  auto animals = two_classes_named("animals", "\u732b", "\u72ac");
  ASSERT_EQ(animals.status, 0) << animals.output;
  EXPECT_EQ(animals.output.find("differ only"), std::string::npos) << animals.output;
  // A hidden folder and a colour image in a gray folder are said.
  write_two_class_folder(dir / "mixed", 3);
  write_bytes(dir / "mixed/.hidden/0.png", gray_png());
  std::vector<unsigned char> rgb;
  cv::imencode(".png", cv::Mat(28, 28, CV_8UC3, cv::Scalar(10, 200, 30)), rgb);
  write_bytes(dir / "mixed/y/9.png", rgb);
  auto mixed = run_ventral("data folder:" + (dir / "mixed"));
  ASSERT_EQ(mixed.status, 0) << mixed.output;
  EXPECT_NE(mixed.output.find("skipped 1 hidden folder"), std::string::npos) << mixed.output;
  EXPECT_NE(mixed.output.find("1 of 7 images are stored in colour and were converted to gray"), std::string::npos)
      << mixed.output;
  EXPECT_EQ(run_ventral("data folder:" + (dir / "mixed") + " --channels 1").output.find("converted"),
            std::string::npos);
  // A dataset whose channels are known only from its files is checked when they are read.
  EXPECT_EQ(run_ventral("config data.dataset=folder:" + (dir / "mixed") + " 'data.mean=[0.5,0.5,0.5]' "
                        "'data.std=[0.2,0.2,0.2]'").status, 0);
  // An IDX test set of another size than the run's is resized with a note, as folders are.
  auto idx = [&](const std::string& folder, const std::string& prefix, uint32_t n, uint32_t h, uint32_t w) {
    auto images = idx_header({n, h, w});
    for (uint32_t i = 0; i < n * h * w; ++i) images.push_back(static_cast<unsigned char>((i * 7) % 251));
    auto labels = idx_header({n});
    for (uint32_t i = 0; i < n; ++i) labels.push_back(static_cast<unsigned char>(i % 10));
    write_bytes(dir / (folder + "/" + prefix + "-images-idx3-ubyte"), images);
    write_bytes(dir / (folder + "/" + prefix + "-labels-idx1-ubyte"), labels);
  };
  idx("digits", "train", 20, 28, 28);
  idx("digits", "t10k", 10, 28, 28);
  idx("wide", "t10k", 10, 14, 56);
  write_text(dir / "tiny.yaml", "seed: 0\ndata:\n  dataset: mnist:" + (dir / "digits") + "\n  val_fraction: 0\n"
             "model:\n  name: cortical_bl\n  width: 4\n  steps: 2\ntrain:\n  epochs: 1\n  batch_size: 10\n");
  ASSERT_EQ(run_ventral("train " + (dir / "tiny.yaml") + " --run-dir " + (dir / "run")).status, 0);
  auto wide = run_ventral("eval " + (dir / "run") + " --data mnist:" + (dir / "wide") + " --out " + (dir / "e1"));
  ASSERT_EQ(wide.status, 0) << wide.output;
  EXPECT_NE(wide.output.find("10 of 10 images are not 28x28 (the model's input size) and were resized to it (they are "
                             "56x14, width x height)"), std::string::npos) << wide.output;
  // Steps past those trained are said.
  auto past = run_ventral("eval " + (dir / "run") + " --steps 1:3 --out " + (dir / "e2"));
  ASSERT_EQ(past.status, 0) << past.output;
  EXPECT_NE(past.output.find("goes past the 2 steps cortical_bl was trained with"), std::string::npos) << past.output;
  EXPECT_EQ(past.output.find("resized"), std::string::npos) << past.output;  // its own images: no note
  // A class map that maps nothing, or holds a NUL after a class name.
  write_text(dir / "empty.map", "# nothing\n");
  const std::string own = " --data mnist:" + (dir / "digits") + " --out " + (dir / "e3");
  expect_input_error("eval " + (dir / "run") + " --class-map " + (dir / "empty.map") + own,
                     "maps nothing");
  write_bytes(dir / "nul.map", {'3', '\t', '3', 0, '\n'});
  expect_input_error("eval " + (dir / "run") + " --class-map " + (dir / "nul.map") + own,
                     "holds a control character other than the tab");
  // A description's size past int64 is refused as it reads, not wrapped negative.
  ASSERT_EQ(run_ventral("export " + (dir / "run") + " --out " + (dir / "w.pt")).status, 0);
  std::string description = read_text(dir / "w.json");
  const size_t at = description.find("\"image_size\": 28");
  ASSERT_NE(at, std::string::npos) << description;
  description.replace(at, 16, "\"image_size\": 9223372036854775808");
  write_text(dir / "w.json", description);
  expect_input_error("eval --weights " + (dir / "w.pt") + " --data mnist:" + (dir / "digits"),
                     "field 'input.image_size' is 9223372036854775808, larger than any value ventral takes");
  // Probe round thirteen: control characters in flags; an empty list item; a size below 8 names
  // its key; CIFAR batches left gzipped.
  expect_input_error("eval " + (dir / "run") + " --out \"$(printf '" + (dir / "a") + "\\tb')\"", "holds a control character");
  expect_input_error("perturb --data synthetic:8 --family 'block:1,,jpeg' --out " + (dir / "s.png"), "has an empty item");
  expect_input_error("train " + (dir / "tiny.yaml") + " data.image_size=7 --run-dir " + (dir / "r7"),
                     "key 'data.image_size' is 7: the smallest image side ventral takes is 8");
  expect_input_error("config data.center_crop=7", "key 'data.center_crop' is 7");
  expect_input_error("config model.name=nosuch", "command line: key 'model.name': unknown model 'nosuch'");
  // Round fourteen: keys bench --loader does not read, --threads there, image sides below 8 where
  // images are written or timed, and an empty item after a severity list.
  expect_input_error("bench --loader --data synthetic:64 --batch 4 data.max_train_images=10", "the loader timing reads only");
  expect_input_error("bench --loader --data synthetic:64 --batch 4 data.val_fraction=0.5", "the loader timing reads only");
  expect_input_error("bench --loader --data synthetic:64 --batch 4 --threads 2", "--threads applies to");
  expect_input_error("bench --loader --data synthetic:64 --batch 4 data.image_size=7", "key 'data.image_size' is 7");
  expect_input_error("perturb --data synthetic:8 --set data.image_size=4 --family block:3 --out " + (dir / "s.png"),
                     "key 'data.image_size' is 4: the smallest image side ventral takes is 8");
  expect_input_error("config data.resize=3 data.center_crop=8", "key 'data.resize' is 3");
  expect_input_error("perturb --data synthetic:8 --family block:1,2,,3 --out " + (dir / "s.png"), "has an empty item");
  expect_input_error("config data.mean=0.28", "(write a list in brackets, e.g. [0.28])");
  write_bytes(dir / "cifargz/test_batch.bin.gz", {0x1f, 0x8b, 8, 0});
  expect_input_error("data cifar10:" + (dir / "cifargz") + " --split test", "are read unpacked; run gunzip");
  // The run's own IDX files, replaced by another size since: said too.
  for (const char* file : {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    fs::copy_file(dir / (std::string("wide/") + file), dir / (std::string("digits/") + file),
                  fs::copy_options::overwrite_existing);
  auto replaced = run_ventral("eval " + (dir / "run") + " --out " + (dir / "e4"));
  ASSERT_EQ(replaced.status, 0) << replaced.output;
  EXPECT_NE(replaced.output.find("10 of 10 images are not 28x28"), std::string::npos) << replaced.output;
}
