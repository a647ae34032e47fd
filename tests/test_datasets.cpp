#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/dataset.hpp"
#include "datasets/decode.hpp"
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

// ---- streamed folders and file lists (datasets/files.cpp, datasets/decode.cpp) ----------------

namespace {

// A folder of n images in `classes` classes (class k holds images k, k+classes, ...), sizes
// varying, every third a JPEG; pixel values depend on the image's number.
void write_image_folder(const std::filesystem::path& root, int n, int classes) {
  for (int i = 0; i < n; ++i) {
    const int w = 20 + 7 * (i % 5), h = 16 + 5 * (i % 3);
    cv::Mat img(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(i * 13 + x * 5), static_cast<uint8_t>(y * 9),
                                            static_cast<uint8_t>((x * y + i) % 256));
    const auto cls = root / ("c" + std::to_string(i % classes));
    std::filesystem::create_directories(cls);
    char name[32];
    std::snprintf(name, sizeof name, "img%04d.%s", i, i % 3 == 0 ? "jpg" : "png");
    ASSERT_TRUE(cv::imwrite((cls / name).string(), img));
  }
}

// Sets every class folder's modification time a minute back, so that its index may be cached
// (an index of folders changed in the last two seconds is not: a change in the same clock tick
// would go unnoticed).
void age_folders(const std::filesystem::path& root) {
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (e.is_directory())
      std::filesystem::last_write_time(e.path(), std::filesystem::file_time_type::clock::now() - std::chrono::minutes(1));
}

}  // namespace

TEST(Stream, StreamedAndInMemoryFoldersHoldTheSamePixels) {
  TempDir dir;
  write_image_folder(dir / "f", 24, 3);
  for (const LoadOptions& base : {LoadOptions{3, 24}, LoadOptions{1, 0, 36, 28}, LoadOptions{}}) {
    LoadOptions off = base, on = base;
    off.stream = "off";
    on.stream = "on";
    const Dataset held = load_dataset("folder:" + (dir / "f"), Split::Test, off);
    const Dataset streamed = load_dataset("folder:" + (dir / "f"), Split::Test, on);
    EXPECT_FALSE(held.streamed());
    ASSERT_TRUE(streamed.streamed());
    EXPECT_TRUE(streamed.pixels.empty());
    EXPECT_NE(streamed.storage.find("streamed from 24 files"), std::string::npos) << streamed.storage;
    ASSERT_EQ(held.labels, streamed.labels);
    ASSERT_EQ(held.classes, streamed.classes);
    ASSERT_EQ(held.height, streamed.height);
    ASSERT_EQ(held.channels, streamed.channels);
    std::vector<uint8_t> scratch;
    for (size_t i = 0; i < held.size(); ++i)
      ASSERT_TRUE(std::equal(held.image(i), held.image(i) + held.image_bytes(), streamed.fetch(i, scratch)))
          << "image " << i;
    // A subset of a streamed dataset is streamed too, and fetches the same images.
    const Dataset part = streamed.subset({5, 2});
    ASSERT_TRUE(part.streamed());
    EXPECT_EQ(part.labels, (std::vector<int64_t>{held.labels[5], held.labels[2]}));
    EXPECT_TRUE(std::equal(held.image(2), held.image(2) + held.image_bytes(), part.fetch(1, scratch)));
  }
  // auto holds a small folder in memory.
  EXPECT_FALSE(load_dataset("folder:" + (dir / "f"), Split::Test, {3, 24}).streamed());
}

TEST(Stream, ChannelStatsOfAStreamedDatasetComeFromASampleSaidSo) {
  TempDir dir;
  write_image_folder(dir / "f", 12, 2);
  LoadOptions on{3, 16};
  on.stream = "on";
  const ChannelStats streamed = channel_stats(load_dataset("folder:" + (dir / "f"), Split::Test, on));
  const ChannelStats held = channel_stats(load_dataset("folder:" + (dir / "f"), Split::Test, {3, 16}));
  EXPECT_EQ(streamed.sampled, 0u);  // fewer images than the sample: every one
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(streamed.mean[c], held.mean[c], 1e-12);
    EXPECT_NEAR(streamed.std[c], held.std[c], 1e-12);
  }
}

TEST(Stream, TheFolderIndexIsCachedAndRebuiltWhenTheListingChanges) {
  TempDir dir;
  write_image_folder(dir / "f", 6, 2);
  // Just written: too fresh to cache.
  index_folder(dir / "f");
  EXPECT_FALSE(std::filesystem::exists(dir / "f/.ventral-index"));
  age_folders(dir / "f");
  EXPECT_EQ(index_folder(dir / "f").labels.size(), 6u);
  ASSERT_TRUE(std::filesystem::exists(dir / "f/.ventral-index"));
  // The cache is what is read: a file renamed behind its back, the folder's time put back,
  // still shows the old name.
  const auto stamp = std::filesystem::last_write_time(dir / "f/c0");
  std::filesystem::rename(dir / "f/c0/img0000.jpg", dir / "f/c0/renamed.jpg");
  std::filesystem::last_write_time(dir / "f/c0", stamp);
  EXPECT_EQ(index_folder(dir / "f").files->name(0), "c0/img0000.jpg");
  // A real change moves the folder's time: the index is rebuilt.
  std::filesystem::last_write_time(dir / "f/c0", stamp + std::chrono::seconds(5));
  ImageIndex fresh = index_folder(dir / "f");
  EXPECT_EQ(fresh.files->name(2), "c0/renamed.jpg");  // sorted: img0002, img0004, renamed
  EXPECT_EQ(fresh.labels.size(), 6u);
  // A damaged cache is rebuilt, not an error.
  write_text(dir / "f/.ventral-index", "ventral-index 1\nkey\tgarbage\n");
  EXPECT_EQ(index_folder(dir / "f").labels.size(), 6u);
  // An index edited by hand (its key kept, a label changed) is rebuilt, not trusted: its last
  // line checks the lines above it.
  age_folders(dir / "f");
  const auto when = [&](const std::string& p) { return std::filesystem::last_write_time(dir / ("f/" + p)); };
  const auto root = when(""), c0 = when("c0"), c1 = when("c1");
  ASSERT_EQ(index_folder(dir / "f").labels.front(), 0);
  std::ifstream in(dir / "f/.ventral-index");
  std::string cache((std::istreambuf_iterator<char>(in)), {});
  const size_t first = cache.find("\n0\tc0/");
  ASSERT_NE(first, std::string::npos) << cache;
  cache[first + 1] = '1';
  write_text(dir / "f/.ventral-index", cache);
  std::filesystem::last_write_time(dir / "f/c0", c0);
  std::filesystem::last_write_time(dir / "f/c1", c1);
  std::filesystem::last_write_time(dir / "f", root);
  EXPECT_EQ(index_folder(dir / "f").labels.front(), 0);
}

TEST(Stream, ListFilesNameTheirImagesRelativeToTheList) {
  TempDir dir;
  write_image_folder(dir / "img", 6, 2);
  write_text(dir / "train.csv", "path,label\nimg/c0/img0000.jpg,c0\nimg/c1/img0001.png,c1\n\"img/c0/img0002.png\",c0\n");
  write_text(dir / "test.csv", "img/c1/img0003.jpg,c1\r\nimg/c0/img0004.png,c0\r\n");
  Dataset train = load_dataset("list:" + (dir / "{split}.csv"), Split::Train, {3, 16});
  EXPECT_EQ(train.classes, (std::vector<std::string>{"c0", "c1"}));
  EXPECT_EQ(train.labels, (std::vector<int64_t>{0, 1, 0}));
  Dataset test = load_dataset("list:" + (dir / "{split}.csv"), Split::Test, {3, 16});
  EXPECT_EQ(test.classes, train.classes);
  EXPECT_EQ(test.labels, (std::vector<int64_t>{1, 0}));
  // The same images as the folder reader decodes.
  Dataset folder = load_dataset("folder:" + (dir / "img"), Split::Test, {3, 16});
  EXPECT_TRUE(std::equal(test.image(0), test.image(0) + test.image_bytes(), folder.image(4)));  // c1/img0003
  // Label numbers, named by classes.txt beside the list.
  write_text(dir / "n/classes.txt", "cat\ndog\n");
  write_text(dir / "n/all.csv", "../img/c0/img0000.jpg,1\n../img/c1/img0001.png,0\n");
  Dataset numbered = load_dataset("list:" + (dir / "n/all.csv"), Split::Train, {3, 16});
  EXPECT_EQ(numbered.classes, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(numbered.labels, (std::vector<int64_t>{1, 0}));
}

TEST(Stream, BadListsAreOneLineErrorsNamingTheFileAndLine) {
  TempDir dir;
  write_image_folder(dir / "img", 4, 2);
  auto error_for = [&](const std::string& name, const std::string& text, Split split = Split::Train) {
    write_text(dir / name, text);
    return error_of([&] { load_dataset("list:" + (dir / name), split, {3, 16}); });
  };
  std::string msg = error_for("missing.csv", "img/c0/img0000.jpg,c0\nimg/c0/nope.png,c0\n");
  EXPECT_NE(msg.find("missing.csv:2: " + (dir / "img/c0/nope.png") + ": no such file (paths are relative to the list's folder)"),
            std::string::npos) << msg;
  msg = error_for("dup.csv", "img/c0/img0000.jpg,c0\nimg/c1/img0001.png,c1\nimg/./c0/img0000.jpg,c0\n");
  EXPECT_NE(msg.find("dup.csv:3: duplicate path 'img/./c0/img0000.jpg' (also on line 1)"), std::string::npos) << msg;
  msg = error_for("fields.csv", "img/c0/img0000.jpg\n");
  EXPECT_NE(msg.find("fields.csv:1: expected path,label"), std::string::npos) << msg;
  msg = error_for("empty.csv", "\n\n");
  EXPECT_NE(msg.find("empty.csv: holds no images"), std::string::npos) << msg;
  msg = error_for("nul.csv", std::string("a,b\0c\n", 6));
  EXPECT_NE(msg.find("nul.csv: not a text file"), std::string::npos) << msg;
  msg = error_for("newline.csv", "img/c0/img0000.jpg,c0\n\"img/c0/a\tb.png\",c0\n");
  EXPECT_NE(msg.find("a\\x09b.png: no such file"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\t'), std::string::npos) << msg;
  // A test list naming a class the training list does not have.
  write_text(dir / "s/train.csv", "../img/c0/img0000.jpg,c0\n");
  write_text(dir / "s/test.csv", "../img/c1/img0001.png,c1\n");
  msg = error_of([&] { load_dataset("list:" + (dir / "s/{split}.csv"), Split::Test, {3, 16}); });
  EXPECT_NE(msg.find("test.csv:1: unknown class 'c1' (not among the 1 classes of " + (dir / "s/train.csv") + ")"),
            std::string::npos) << msg;
  write_text(dir / "t/classes.txt", "a\nb\n");
  write_text(dir / "t/l.csv", "../img/c0/img0000.jpg,2\n");
  msg = error_of([&] { load_dataset("list:" + (dir / "t/l.csv"), Split::Test, {3, 16}); });
  EXPECT_NE(msg.find("l.csv:1: unknown class '2' (not among the 2 classes of " + (dir / "t/classes.txt") + ")"),
            std::string::npos) << msg;
  EXPECT_NE(error_of([&] { load_dataset("list:" + (dir / "none.csv"), Split::Test); }).find("none.csv: no such file"),
            std::string::npos);
  // The same file written relative and absolute is a duplicate too.
  msg = error_for("abs.csv", "img/c0/img0000.jpg,c0\n" + dir / "img/c0/img0000.jpg" + ",c0\n");
  EXPECT_NE(msg.find("abs.csv:2: duplicate path"), std::string::npos) << msg;
  // A typo in a label number must not make a billion classes.
  msg = error_for("big.csv", "img/c0/img0000.jpg,0\nimg/c1/img0001.png,444444443\n");
  EXPECT_NE(msg.find("big.csv:2: label number 444444443 is above 99999"), std::string::npos) << msg;
  write_text(dir / "u/classes.txt", "a\nb\na\n");
  write_text(dir / "u/l.csv", "../img/c0/img0000.jpg,a\n");
  msg = error_of([&] { load_dataset("list:" + (dir / "u/l.csv"), Split::Test, {3, 16}); });
  EXPECT_NE(msg.find("classes.txt:3: class 'a' again (also on line 1)"), std::string::npos) << msg;
  // A byte-order mark before the header, and spaces around a label, are not part of them.
  write_text(dir / "bom.csv", "\xEF\xBB\xBFpath,label\nimg/c0/img0000.jpg,c0 \nimg/c1/img0001.png, c1\n");
  const Dataset bom = load_dataset("list:" + (dir / "bom.csv"), Split::Test, {3, 16});
  EXPECT_EQ(bom.classes, (std::vector<std::string>{"c0", "c1"}));
  EXPECT_EQ(bom.size(), 2u);
}

// Decoding from several threads at once, some files corrupt: every error names its own file and
// nothing reaches stderr (libpng and libjpeg print there by default, OpenCV's BMP, PNM, TIFF and
// WebP readers print truncated files on std::cerr).
TEST(Stream, DecodingInThreadsIsQuietAndNamesTheBadFile) {
  TempDir dir;
  write_image_folder(dir / "f", 8, 2);
  auto cut = [&](const std::string& name, size_t keep) {
    std::vector<unsigned char> bytes = read_file(dir / name);
    bytes.resize(std::min(bytes.size(), keep));
    write_bytes(dir / name, bytes);
  };
  cut("f/c1/img0001.png", read_file(dir / "f/c1/img0001.png").size() / 2);  // inside the pixel data
  cut("f/c0/img0000.jpg", 100);                                               // before the image data
  cut("f/c1/img0003.jpg", read_file(dir / "f/c1/img0003.jpg").size() * 2 / 3);  // inside the scan
  ASSERT_TRUE(cv::imwrite(dir / "f/c0/z.bmp", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3))));
  cut("f/c0/z.bmp", 900);
  ASSERT_TRUE(cv::imwrite(dir / "f/c0/z.ppm", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3))));
  cut("f/c0/z.ppm", 500);
  ASSERT_TRUE(cv::imwrite(dir / "f/c0/zp.ppm", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3)), {cv::IMWRITE_PXM_BINARY, 0}));
  cut("f/c0/zp.ppm", read_file(dir / "f/c0/zp.ppm").size() / 2);  // plain (text) PPM
  ASSERT_TRUE(cv::imwrite(dir / "f/c1/z.tif", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3))));
  cut("f/c1/z.tif", read_file(dir / "f/c1/z.tif").size() / 2);
  ASSERT_TRUE(cv::imwrite(dir / "f/c1/z.webp", cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3))));
  cut("f/c1/z.webp", 26);
  const std::set<std::string> bad = {dir / "f/c0/img0000.jpg", dir / "f/c1/img0001.png", dir / "f/c1/img0003.jpg",
                                     dir / "f/c0/z.bmp",         dir / "f/c0/z.ppm",        dir / "f/c0/zp.ppm",
                                     dir / "f/c1/z.tif",         dir / "f/c1/z.webp"};
  LoadOptions on{3, 16};
  on.stream = "on";
  const Dataset d = load_dataset("folder:" + (dir / "f"), Split::Test, on);  // the first image that decodes sets nothing
  ASSERT_EQ(d.size(), 13u);
  const std::string log = dir / "stderr.txt";
  std::fflush(stderr);
  const int saved = dup(2);
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  std::vector<std::vector<std::string>> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<uint8_t> scratch;
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < d.size(); ++i) {
          try {
            d.fetch(i, scratch);
          } catch (const InputError& e) {
            errors[t].push_back(e.what());
          }
        }
    });
  for (auto& th : threads) th.join();
  std::fflush(stderr);
  std::cerr.flush();
  dup2(saved, 2);
  close(saved);
  close(fd);
  EXPECT_EQ(read_file(log).size(), 0u) << "decoders printed on stderr";
  for (const auto& e : errors) {
    ASSERT_EQ(e.size(), 20 * bad.size());
    std::set<std::string> named;
    for (const auto& message : e) {
      const std::string file = message.substr(0, message.find(": cannot decode image ("));
      ASSERT_NE(file.size(), message.size()) << message;
      named.insert(file);
    }
    EXPECT_EQ(named, bad);
  }
  EXPECT_NE(errors[0][0].find("the data ends before the image"), std::string::npos) << errors[0][0];
}

TEST(Stream, ATestFolderKeepsTheTrainingFoldersClasses) {
  TempDir dir;
  for (const char* cls : {"train/ant", "train/bee", "train/cat", "test/bee", "test/cat"}) {
    std::filesystem::create_directories(dir / cls);
    ASSERT_TRUE(cv::imwrite(dir / (std::string(cls) + "/1.png"), cv::Mat(4, 4, CV_8UC1, cv::Scalar(9))));
  }
  for (const char* stream : {"off", "on"}) {
    LoadOptions o{1, 4};
    o.stream = stream;
    const Dataset test = load_dataset("folder:" + dir.str(), Split::Test, o);
    EXPECT_EQ(test.classes, (std::vector<std::string>{"ant", "bee", "cat"}));
    EXPECT_EQ(test.labels, (std::vector<int64_t>{1, 2})) << "bee and cat keep their training labels";
  }
  std::filesystem::create_directories(dir / "test/zebra");
  ASSERT_TRUE(cv::imwrite(dir / "test/zebra/1.png", cv::Mat(4, 4, CV_8UC1, cv::Scalar(9))));
  EXPECT_NE(error_of([&] { load_dataset("folder:" + dir.str(), Split::Test, {1, 4}); })
                .find(dir / "test/zebra" + ": class folder not in " + dir / "train"),
            std::string::npos);
}

TEST(Stream, SkipBadImagesCountsThemAndKeepsBatchesWhole) {
  TempDir dir;
  write_image_folder(dir / "f", 8, 2);
  write_text(dir / "f/c1/img0005.png", "not an image");
  LoadOptions off{3, 16};
  EXPECT_NE(error_of([&] { load_dataset("folder:" + (dir / "f"), Split::Test, off); }).find("img0005.png: cannot decode image"),
            std::string::npos);
  off.skip_bad_images = true;
  const Dataset held = load_dataset("folder:" + (dir / "f"), Split::Test, off);
  EXPECT_EQ(held.size(), 7u);
  LoadOptions on = off;
  on.stream = "on";
  const Dataset streamed = load_dataset("folder:" + (dir / "f"), Split::Test, on);
  ASSERT_EQ(streamed.size(), 8u);
  std::vector<uint8_t> scratch;
  // c1 holds images 1, 3, 5, 7 in that order: 5 (index 6) is bad; the loader finds a stand-in
  // (test_loader.cpp), fetch says so with UndecodableImage, twice, and counts the file once.
  for (int twice = 0; twice < 2; ++twice)
    EXPECT_THROW(streamed.fetch(6, scratch), UndecodableImage);
  EXPECT_NO_THROW(streamed.fetch(7, scratch));
  EXPECT_EQ(streamed.files->skipped(), 1u);
}

// ventral decodes PNG and JPEG itself (libpng, libjpeg-turbo) where it used to call OpenCV's
// imdecode: but for what it refuses on purpose, every kind of file in the image fuzzing corpus (progressive, gray, CMYK and RGB JPEGs;
// interlaced, 16-bit, palette-with-transparency, gray-alpha and RGB PNGs; BMP, PGM, PPM) decodes to
// the pixels OpenCV gives (converted to RGB, alpha dropped), and what OpenCV refuses is refused.
TEST(Stream, DecodersAgreeWithOpenCvOnEveryKindOfFile) {
  const std::filesystem::path corpus = std::filesystem::path(VENTRAL_SOURCE_DIR) / "tests/fuzz/corpus/image";
  int compared = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus)) {
    const std::vector<unsigned char> bytes = read_file(e.path().string());
    const char* format = image_format(bytes.data(), bytes.size());
    cv::Mat theirs = format ? cv::imdecode(bytes, cv::IMREAD_UNCHANGED) : cv::Mat();
    if (theirs.empty()) {
      EXPECT_NE(error_of([&] { decode_image(bytes, e.path().string()); }).find("cannot decode image"), std::string::npos)
          << e.path();
      continue;
    }
    if (theirs.depth() == CV_16U) theirs.convertTo(theirs, CV_8U, 1.0 / 257.0);
    if (theirs.channels() == 3) cv::cvtColor(theirs, theirs, cv::COLOR_BGR2RGB);
    if (theirs.channels() == 4) cv::cvtColor(theirs, theirs, cv::COLOR_BGRA2RGB);
    // Where ventral is stricter (more than 8192x8192 pixels; a JPEG whose data ends before its
    // image, which OpenCV fills with gray), it refuses.
    const std::string refused = error_of([&] { decode_image(bytes, e.path().string()); });
    if (refused.find("8192x8192") != std::string::npos || refused.find("data ends before the image") != std::string::npos)
      continue;
    cv::Mat ours = decode_image(bytes, e.path().string());
    // A gray image with alpha is gray to ventral (OpenCV expands it to BGRA).
    if (ours.channels() == 1 && theirs.channels() == 3) cv::cvtColor(ours, ours, cv::COLOR_GRAY2RGB);
    ASSERT_EQ(ours.size(), theirs.size()) << e.path();
    ASSERT_EQ(ours.type(), theirs.type()) << e.path();
    EXPECT_EQ(cv::norm(ours, theirs, cv::NORM_INF), 0.0) << e.path();
    ++compared;
  }
  EXPECT_GE(compared, 13);
}

// Found by the eighth probe round: PNM samples run to the header's maxval, which OpenCV does not
// scale by (a maxval-15 graymap read as nearly black, a 10-bit one as 1/64 of its brightness),
// and signed or floating-point TIFF samples have no 0-255 range to be read against.
TEST(Decode, PnmSamplesAreScaledByTheirMaxvalAndSignedOrFloatSamplesAreRefused) {
  auto pnm = [](const std::string& header, std::vector<unsigned char> samples) {
    std::vector<unsigned char> bytes(header.begin(), header.end());
    bytes.insert(bytes.end(), samples.begin(), samples.end());
    return bytes;
  };
  cv::Mat four_bit = decode_image(pnm("P5\n2 1\n15\n", {15, 5}), "a.pgm");
  ASSERT_EQ(four_bit.type(), CV_8UC1);
  EXPECT_EQ(four_bit.at<unsigned char>(0, 0), 255);
  EXPECT_EQ(four_bit.at<unsigned char>(0, 1), 85);
  cv::Mat ten_bit = decode_image(pnm("P5\n2 1\n1023\n", {0x03, 0xff, 0x01, 0xff}), "b.pgm");  // big-endian 1023, 511
  ASSERT_EQ(ten_bit.type(), CV_8UC1);
  EXPECT_EQ(ten_bit.at<unsigned char>(0, 0), 255);
  EXPECT_EQ(ten_bit.at<unsigned char>(0, 1), 127);
  cv::Mat eight_bit = decode_image(pnm("P5\n1 1\n255\n", {200}), "c.pgm");  // the common case unchanged
  EXPECT_EQ(eight_bit.at<unsigned char>(0, 0), 200);
  // A plain graymap whose last sample ends the file (no newline): OpenCV printed its complaint to
  // std::cerr and failed; the sample is read.
  cv::Mat plain = decode_image(pnm("P2\n2 1\n255\n7 250", {}), "p.pgm");
  ASSERT_EQ(plain.cols, 2);
  EXPECT_EQ(plain.at<unsigned char>(0, 0), 7);
  EXPECT_EQ(plain.at<unsigned char>(0, 1), 250);
  std::vector<unsigned char> tiff;
  ASSERT_TRUE(cv::imencode(".tiff", cv::Mat(4, 4, CV_32FC1, cv::Scalar(0.5)), tiff));
  EXPECT_NE(error_of([&] { decode_image(tiff, "f.tiff"); }).find("f.tiff: a TIFF image with floating-point samples"),
            std::string::npos);
  ASSERT_TRUE(cv::imencode(".tiff", cv::Mat(4, 4, CV_16SC1, cv::Scalar(-3)), tiff));
  EXPECT_NE(error_of([&] { decode_image(tiff, "s.tiff"); }).find("signed-integer samples"), std::string::npos);
}
