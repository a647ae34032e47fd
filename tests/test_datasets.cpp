#include <zlib.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"
#include "helpers.hpp"

using namespace ventral;
using ventral::test::idx_header;
using ventral::test::TempDir;
using ventral::test::write_bytes;
using ventral::test::write_text;

namespace {

std::string error_of(const std::function<void()>& f) { return ventral::test::error_text<InputError>(f); }

// Writes a valid IDX pair of n images (h×w, pixel = index + row) with labels i % 10.
void write_idx_pair(const std::string& dir, const std::string& prefix, uint32_t n, uint32_t h, uint32_t w) {
  auto img = idx_header({n, h, w});
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t p = 0; p < h * w; ++p) img.push_back(static_cast<unsigned char>(i + p / w));
  auto lab = idx_header({n});
  for (uint32_t i = 0; i < n; ++i) lab.push_back(static_cast<unsigned char>(i % 10));
  write_bytes(dir + "/" + prefix + "-images-idx3-ubyte", img);
  write_bytes(dir + "/" + prefix + "-labels-idx1-ubyte", lab);
}

std::vector<unsigned char> gzip(const std::vector<unsigned char>& raw) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<unsigned char> out(raw.size() + 1024);
  zs.next_in = const_cast<unsigned char*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

}  // namespace

TEST(FashionMnist, DebianPackageHasTheDocumentedSplits) {
  Dataset train = load_dataset("fashion-mnist", Split::Train);
  Dataset test = load_dataset("fashion-mnist", Split::Test);
  EXPECT_EQ(train.size(), 60000u);
  EXPECT_EQ(test.size(), 10000u);
  for (const Dataset* d : {&train, &test}) {
    EXPECT_EQ(d->channels, 1);
    EXPECT_EQ(d->height, 28);
    EXPECT_EQ(d->width, 28);
    ASSERT_EQ(d->classes.size(), 10u);
  }
  EXPECT_EQ(train.classes[0], "T-shirt/top");
  EXPECT_EQ(train.classes[9], "Ankle boot");
  for (int64_t c : train.class_counts()) EXPECT_EQ(c, 6000);
  for (int64_t c : test.class_counts()) EXPECT_EQ(c, 1000);
  ChannelStats s = channel_stats(train);
  EXPECT_NEAR(s.mean[0], 0.2860, 5e-4);  // the widely quoted Fashion-MNIST statistics
  EXPECT_NEAR(s.std[0], 0.3530, 5e-4);
}

TEST(Idx, ReadsRawAndGzipIdentically) {
  TempDir dir;
  write_idx_pair(dir.str(), "train", 12, 4, 5);
  Dataset raw = load_dataset("mnist:" + dir.str(), Split::Train);
  ASSERT_EQ(raw.size(), 12u);
  EXPECT_EQ(raw.height, 4);
  EXPECT_EQ(raw.width, 5);
  EXPECT_EQ(raw.labels[11], 1);
  EXPECT_EQ(raw.image(3)[5], 3 + 1);  // image 3, row 1
  TempDir gz;
  for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"})
    write_bytes(gz / (std::string(f) + ".gz"), gzip(read_file(dir / f)));
  Dataset zipped = load_dataset("mnist:" + gz.str(), Split::Train);
  EXPECT_EQ(zipped.pixels, raw.pixels);
  EXPECT_EQ(zipped.labels, raw.labels);
}

TEST(Idx, MalformedFilesGiveClearErrors) {
  TempDir dir;
  auto lab = idx_header({3});
  lab.insert(lab.end(), {0, 1, 2});
  write_bytes(dir / "labels", lab);

  auto truncated = idx_header({3, 4, 4});
  truncated.resize(truncated.size() + 20);  // 48 bytes promised
  write_bytes(dir / "truncated", truncated);
  EXPECT_NE(error_of([&] { read_idx(dir / "truncated", dir / "labels", {"a", "b", "c"}); })
                .find("truncated or corrupt header"), std::string::npos);

  auto magic = idx_header({3, 4, 4});
  magic[2] = 0x0d;  // float data
  magic.resize(magic.size() + 48);
  write_bytes(dir / "magic", magic);
  EXPECT_NE(error_of([&] { read_idx(dir / "magic", dir / "labels", {"a", "b", "c"}); })
                .find("bad IDX magic 0x00000d03"), std::string::npos);

  auto four = idx_header({4, 2, 2});
  four.resize(four.size() + 16);
  write_bytes(dir / "four", four);
  EXPECT_NE(error_of([&] { read_idx(dir / "four", dir / "labels", {"a", "b", "c"}); })
                .find("holds 4 images but"), std::string::npos);

  // A header claiming ~4 billion 4096×4096 images in a 40-byte file must fail fast.
  auto hostile = idx_header({0xffffffffu, 4096, 4096});
  hostile.resize(hostile.size() + 24);
  write_bytes(dir / "hostile", hostile);
  std::string msg = error_of([&] { read_idx(dir / "hostile", dir / "labels", {"a", "b", "c"}); });
  EXPECT_NE(msg.find("IDX header declares 4294967295x4096x4096"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the file holds 24"), std::string::npos) << msg;

  write_bytes(dir / "garbage.gz", {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11, 0x22});
  EXPECT_NE(error_of([&] { read_idx(dir / "garbage.gz", dir / "labels", {"a", "b", "c"}); })
                .find("corrupt or truncated gzip data"), std::string::npos);

  // A gzip bomb: a valid header for 2 images of 2x2, then 64 MiB of zeros, compressed to ~64 KiB.
  // Refused as soon as the stream passes the 24 bytes the header declares, not after 64 MiB.
  {
    std::vector<unsigned char> bomb = idx_header({2, 2, 2});
    bomb.resize(bomb.size() + (size_t(64) << 20));
    write_bytes(dir / "bomb.gz", gzip(bomb));
    std::string why = error_of([&] { read_idx(dir / "bomb.gz", dir / "labels", {"a", "b", "c"}); });
    EXPECT_NE(why.find("inflates beyond the 24 bytes its header declares"), std::string::npos) << why;
    // The same header with exactly its data inflates and parses.
    std::vector<unsigned char> fine = idx_header({2, 2, 2});
    fine.resize(fine.size() + 8, 7);
    write_bytes(dir / "fine.gz", gzip(fine));
    write_bytes(dir / "two_labels", [] {
      auto l = idx_header({2});
      l.push_back(0);
      l.push_back(1);
      return l;
    }());
    EXPECT_EQ(read_idx(dir / "fine.gz", dir / "two_labels", {"a", "b"}).size(), 2u);
    // A wrong magic inside gzip is named as such, not as a gzip problem.
    std::vector<unsigned char> wrong = fine;
    wrong[3] = 0x01;
    write_bytes(dir / "wrong.gz", gzip(wrong));
    EXPECT_NE(error_of([&] { read_idx(dir / "wrong.gz", dir / "two_labels", {"a", "b"}); }).find("bad IDX magic 0x00000801"),
              std::string::npos);
  }

  write_bytes(dir / "tiny", {0, 0});
  EXPECT_NE(error_of([&] { read_idx(dir / "tiny", dir / "labels", {"a"}); }).find("no header"),
            std::string::npos);

  auto bad_label = idx_header({3});
  bad_label.insert(bad_label.end(), {0, 7, 1});
  write_bytes(dir / "bad_label", bad_label);
  auto ok = idx_header({3, 1, 1});
  ok.insert(ok.end(), {1, 2, 3});
  write_bytes(dir / "ok", ok);
  EXPECT_NE(error_of([&] { read_idx(dir / "ok", dir / "bad_label", {"a", "b"}); }).find("label 7 at index 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_dataset("mnist:" + dir.str(), Split::Test); }).find("missing t10k-images"),
            std::string::npos);
}

TEST(Cifar10, ReadsRecordsAsInterleavedRgb) {
  TempDir dir;
  std::vector<unsigned char> batch;
  for (int r = 0; r < 3; ++r) {
    batch.push_back(static_cast<unsigned char>(r * 3));
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) batch.push_back(static_cast<unsigned char>(c * 100 + r));
  }
  write_bytes(dir / "test_batch.bin", batch);
  write_text(dir / "batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
  Dataset d = load_dataset("cifar10:" + dir.str(), Split::Test);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.height, 32);
  EXPECT_EQ(d.labels[2], 6);
  EXPECT_EQ(d.classes[6], "g");
  const uint8_t* px = d.image(1) + (5 * 32 + 7) * 3;
  EXPECT_EQ(px[0], 1);
  EXPECT_EQ(px[1], 101);
  EXPECT_EQ(px[2], 201);

  batch.resize(batch.size() - 100);
  write_bytes(dir / "test_batch.bin", batch);
  EXPECT_NE(error_of([&] { load_dataset("cifar10:" + dir.str(), Split::Test); }).find("truncated CIFAR-10 record"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_dataset("cifar10:" + dir.str(), Split::Train); }).find("data_batch_1.bin: no such file"),
            std::string::npos);
}

TEST(Folder, ClassesSortedImagesConvertedAndResized) {
  TempDir dir;
  cv::Mat gray(10, 10, CV_8UC1, cv::Scalar(200));
  cv::Mat color(20, 20, CV_8UC3, cv::Scalar(255, 0, 0));  // BGR: blue
  std::filesystem::create_directories(dir / "zebra");
  std::filesystem::create_directories(dir / "ant");
  cv::imwrite(dir / "zebra/1.png", gray);
  cv::imwrite(dir / "ant/b.png", color);
  cv::imwrite(dir / "ant/a.bmp", gray);
  Dataset d = load_dataset("folder:" + dir.str(), Split::Test, {3, 16});
  EXPECT_EQ(d.classes, (std::vector<std::string>{"ant", "zebra"}));
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(d.height, 16);
  EXPECT_EQ(d.channels, 3);
  const uint8_t* blue = d.image(1);  // ant/b.png, stored RGB
  EXPECT_EQ(blue[0], 0);
  EXPECT_EQ(blue[2], 255);
  Dataset native = load_dataset("folder:" + dir.str(), Split::Test);
  EXPECT_EQ(native.channels, 1);  // the first image (ant/a.bmp) is gray
  EXPECT_EQ(native.height, 10);
}

// Without a size asked for, a folder keeps its images' shape (40 wide, 30 high), resized once
// to the first image's where they differ; never squashed to a square.
TEST(Folder, NonSquareImagesKeepTheirShape) {
  TempDir dir;
  std::filesystem::create_directories(dir / "a");
  ASSERT_TRUE(cv::imwrite(dir / "a/1.png", cv::Mat(30, 40, CV_8UC1, cv::Scalar(9))));
  ASSERT_TRUE(cv::imwrite(dir / "a/2.png", cv::Mat(60, 80, CV_8UC1, cv::Scalar(9))));
  Dataset d = load_dataset("folder:" + dir.str(), Split::Test);
  EXPECT_EQ(d.width, 40);
  EXPECT_EQ(d.height, 30);
  EXPECT_EQ(d.pixels.size(), 2u * 40 * 30);
}

TEST(Folder, BadFoldersAndFilesNameTheCulprit) {
  TempDir dir;
  std::filesystem::create_directories(dir / "empty");
  EXPECT_NE(error_of([&] { load_dataset("folder:" + (dir / "empty"), Split::Test); }).find("empty image folder"),
            std::string::npos);
  std::filesystem::create_directories(dir / "x/cls");
  cv::imwrite(dir / "x/cls/good.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)));
  write_text(dir / "x/cls/notes.txt", "not an image");
  std::string msg = error_of([&] { load_dataset("folder:" + (dir / "x"), Split::Test); });
  EXPECT_NE(msg.find("notes.txt: cannot decode image"), std::string::npos) << msg;
  std::filesystem::remove(dir / "x/cls/notes.txt");
  std::vector<unsigned char> png;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), png);
  png.resize(png.size() / 2);
  write_bytes(dir / "x/cls/corrupt.png", png);
  msg = error_of([&] { load_dataset("folder:" + (dir / "x"), Split::Test); });
  EXPECT_NE(msg.find("corrupt.png: cannot decode image"), std::string::npos) << msg;
  std::filesystem::remove(dir / "x/cls/corrupt.png");
  // A malformed DICOM file (128-byte preamble, then "DICM"): Debian's OpenCV hands it to GDCM,
  // which aborted the process (a fuzzing finding). Only the formats ventral names are decoded.
  std::vector<unsigned char> dicom(128, 0xff);
  dicom[0] = 'P', dicom[1] = '4';
  for (char c : std::string("DICM. ")) dicom.push_back(static_cast<unsigned char>(c));
  write_bytes(dir / "x/cls/scan.png", dicom);
  msg = error_of([&] { load_dataset("folder:" + (dir / "x"), Split::Test); });
  EXPECT_NE(msg.find("scan.png: cannot decode image (not a PNG, JPEG, BMP, PNM, TIFF or WebP file"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load_dataset("folder:" + (dir / "nope"), Split::Test); }).find("no such folder"),
            std::string::npos);
}

TEST(Specs, UnknownSpecListsTheValidOnes) {
  std::string msg = error_of([] { load_dataset("imagenet", Split::Test); });
  EXPECT_NE(msg.find("unknown dataset 'imagenet'"), std::string::npos);
  EXPECT_NE(msg.find("fashion-mnist"), std::string::npos);
  EXPECT_NE(error_of([] { load_dataset("synthetic:-3", Split::Test); }).find("synthetic:N needs an image count from 1 to 10000000"),
            std::string::npos);
}

TEST(Synthetic, DeterministicBalancedAndLabelled) {
  Dataset a = load_dataset("synthetic:400", Split::Train);
  Dataset b = load_dataset("synthetic:400", Split::Train);
  Dataset t = load_dataset("synthetic:400", Split::Test);
  EXPECT_EQ(a.size(), 400u);
  EXPECT_EQ(t.size(), 100u);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_NE(std::vector<uint8_t>(a.pixels.begin(), a.pixels.begin() + 784),
            std::vector<uint8_t>(t.pixels.begin(), t.pixels.begin() + 784));
  for (int64_t c : a.class_counts()) EXPECT_EQ(c, 40);
}

TEST(Split, StratifiedSeededAndDisjoint) {
  Dataset d = load_dataset("synthetic:1000", Split::Train);
  TrainValSplit s = split_train_val(d, 0.2, 3);
  EXPECT_EQ(s.val.size(), 200u);
  EXPECT_EQ(s.train.size(), 800u);
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i : s.val) ++per_class[d.labels[i]];
  for (int64_t c : per_class) EXPECT_EQ(c, 20);
  std::vector<int64_t> all = s.train;
  all.insert(all.end(), s.val.begin(), s.val.end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i));
  EXPECT_EQ(split_train_val(d, 0.2, 3).val, s.val);
  EXPECT_NE(split_train_val(d, 0.2, 4).val, s.val);
}

TEST(Convert, GrayToRgbAndResize) {
  Dataset d = load_dataset("synthetic:20", Split::Train, {3, 32});
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.height, 32);
  EXPECT_EQ(d.pixels.size(), 20u * 32 * 32 * 3);
  const uint8_t* p = d.image(0) + (16 * 32 + 16) * 3;
  EXPECT_EQ(p[0], p[1]);
  EXPECT_EQ(p[1], p[2]);
}
