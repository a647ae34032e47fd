#include <cmath>

#include "core/config.hpp"
#include "core/precision.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "helpers.hpp"

using namespace ventral;
using ventral::test::TempDir;
using ventral::test::write_text;

namespace {

std::string error_of(const std::function<void()>& f) { return ventral::test::error_text<InputError>(f); }

}  // namespace

TEST(Config, DefaultsFileAndOverridesInOrder) {
  TempDir dir;
  write_text(dir / "a.yaml", "seed: 7\ntrain:\n  epochs: 3\ndata:\n  augment:\n    hflip: true\n");
  Config cfg = Config::load(dir / "a.yaml", {"train.epochs=5", "data.mean=[0.5]"});
  EXPECT_EQ(cfg.get_int("seed"), 7);
  EXPECT_EQ(cfg.get_int("train.epochs"), 5);
  EXPECT_TRUE(cfg.get_bool("data.augment.hflip"));
  EXPECT_EQ(cfg.get_floats("data.mean"), std::vector<double>{0.5});
  EXPECT_EQ(cfg.get_int("train.batch_size"), 128);  // default
  EXPECT_FALSE(cfg.get_int_or_auto("threads").has_value());
  EXPECT_EQ(Config::load("", {"threads=2"}).get_int_or_auto("threads"), 2);
}

TEST(Config, UnknownKeyNamesFileKeyAndClosestKey) {
  TempDir dir;
  write_text(dir / "bad.yaml", "train:\n  epoch: 3\n");
  std::string msg = error_of([&] { Config::load(dir / "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'train.epoch'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train.epochs'"), std::string::npos) << msg;
}

TEST(Config, WrongTypesAndRangesAreErrors) {
  EXPECT_NE(error_of([] { Config::load("", {"train.epochs=three"}); })
                .find("key 'train.epochs' expects an integer in decimal digits (no leading zeros), got 'three'"),
            std::string::npos);
  // yaml-cpp alone reads 010 as octal 8 and 0x10 as 16.
  for (const char* odd : {"010", "08", "0x10", "+3", "-07"})
    EXPECT_NE(error_of([&] { Config::load("", {std::string("train.epochs=") + odd}); }).find("no leading zeros"),
              std::string::npos)
        << odd;
  EXPECT_EQ(Config::load("", {"train.epochs=10"}).get_int("train.epochs"), 10);
  EXPECT_EQ(Config::load("", {"seed=0"}).get_int("seed"), 0);
  EXPECT_NE(error_of([] { Config::load("", {"train.epochs=2.5"}); }).find("expects an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"data.val_fraction=1.5"}); }).find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"device=tpu"}); }).find("one of auto cpu cuda"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"data.augment.hflip=maybe"}); }).find("true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"data.mean=0.5"}); }).find("a list of numbers"),
            std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"threads=0"}); }).find("out of range"), std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"novalue"}); }).find("key.sub=value"), std::string::npos);
}

TEST(Config, DuplicateKeysAreErrors) {
  TempDir dir;
  write_text(dir / "dup.yaml", "train:\n  lr: 0.1\n  lr: 0.2\n");
  EXPECT_NE(error_of([&] { Config::load(dir / "dup.yaml"); }).find("key 'train.lr' appears twice"), std::string::npos);
}

TEST(Config, SectionGivenAScalarIsAnError) {
  TempDir dir;
  write_text(dir / "s.yaml", "train: 3\n");
  EXPECT_NE(error_of([&] { Config::load(dir / "s.yaml"); }).find("'train' is a section"), std::string::npos);
}

TEST(Config, InvalidYamlAndMissingFileAreErrors) {
  TempDir dir;
  write_text(dir / "broken.yaml", "train: [1, 2\n");
  EXPECT_NE(error_of([&] { Config::load(dir / "broken.yaml"); }).find("invalid YAML"), std::string::npos);
  EXPECT_NE(error_of([&] { Config::load(dir / "missing.yaml"); }).find("no such file"), std::string::npos);
}

TEST(Config, DumpRoundTripsEveryValue) {
  TempDir dir;
  Config cfg = Config::load("", {"seed=42", "model.name=cortical_blt", "data.std=[0.25, 0.5]", "threads=3"});
  cfg.save(dir / "resolved.yaml");
  Config back = Config::load(dir / "resolved.yaml");
  EXPECT_EQ(back.dump(), cfg.dump());
  EXPECT_EQ(back.get_string("model.name"), "cortical_blt");
  EXPECT_EQ(back.get_floats("data.std"), (std::vector<double>{0.25, 0.5}));
  EXPECT_EQ(back.get_int_or_auto("threads"), 3);
}

TEST(Config, DifferencesCompareNumbersByValueAndSkipIgnoredKeys) {
  Config a = Config::load("", {"train.weight_decay=5e-4", "data.std=[0.25]", "threads=2"});
  Config b = Config::load("", {"train.weight_decay=0.0005", "data.std=[0.250]", "threads=2"});
  EXPECT_TRUE(a.differences(b).empty());
  Config c = Config::load("", {"train.weight_decay=5e-4", "data.std=[0.25]", "threads=1", "train.epochs=12",
                               "model.unroll=synchronous"});
  EXPECT_EQ(a.differences(c), (std::vector<std::string>{"threads: 2 -> 1", "model.unroll: default -> synchronous",
                                                        "train.epochs: 10 -> 12"}));
  EXPECT_EQ(a.differences(c, {"threads"}).size(), 2u);
}

TEST(Text, SplitCsvRowHandlesQuotesAndEmptyFields) {
  EXPECT_EQ(split_csv_row("clean,0,4,0.93"), (std::vector<std::string>{"clean", "0", "4", "0.93"}));
  EXPECT_EQ(split_csv_row("a,,\"T-shirt, \"\"top\"\"\",z\r"),
            (std::vector<std::string>{"a", "", "T-shirt, \"top\"", "z"}));
  EXPECT_EQ(split_csv_row(""), std::vector<std::string>{""});
}

// One rule for integers in configs and on the command line (each had its own copy).
TEST(Text, DecimalIntegersAreDigitsWithoutALeadingZero) {
  for (const char* yes : {"0", "7", "-3", "10", "9223372036854775808"}) EXPECT_TRUE(ventral::is_decimal_integer(yes)) << yes;
  for (const char* no : {"", "-", "010", "-01", "0x10", "+4", " 3", "1.0", "1e3", "00"})
    EXPECT_FALSE(ventral::is_decimal_integer(no)) << no;
}

TEST(Text, CsvNumbersAreEmptyCellsWhenNotFinite) {
  EXPECT_EQ(csv_number("%.6f", 0.25), "0.250000");
  EXPECT_EQ(csv_number("%.6f", NAN), "");
  EXPECT_EQ(csv_number("%.6f", -NAN), "");
  EXPECT_EQ(csv_number("%.2f", INFINITY), "");
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({}, ", "), "");
}

TEST(Config, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(closest("train.lr", {"train.lrs", "data.seed"}), "train.lrs");
}

TEST(Config, ModelOptionsJoinTheSchemaFromTheModelsLayerNextToModelName) {
  // This test program references nothing in models/: the keys still arrive (models/keys.cpp is
  // linked as objects), after model.name and before the train section.
  std::vector<std::string> keys;
  for (const auto& spec : config_schema()) keys.push_back(spec.key);
  auto at = [&](const std::string& key) { return std::find(keys.begin(), keys.end(), key) - keys.begin(); };
  ASSERT_LT(at("model.width"), static_cast<long>(keys.size()));
  EXPECT_EQ(at("model.width"), at("model.name") + 1);
  EXPECT_LT(at("model.stem"), at("train.epochs"));
  EXPECT_EQ(Config::load("", {"model.shortcut=A"}).get_string("model.shortcut"), "A");
  EXPECT_NE(error_of([] { Config::load("", {"model.shortcut=C"}); }).find("one of A B"), std::string::npos);
  // Declaring a key twice is a programming error, not an input error.
  EXPECT_THROW(ConfigKeys({{"model.width", ValueType::Int, "0", "again"}}), std::logic_error);
}

TEST(Precision, AutoIsBf16OnlyWithTheHardwareFlagAndAFasterProbe) {
  int probes = 0;
  auto probe = [&](double speedup) {
    return [&probes, speedup] {
      ++probes;
      return speedup;
    };
  };
  const std::set<std::string> none = {"fpu", "avx2", "avx512f"}, avx = {"avx2", "avx512f", "avx512_bf16"},
                              amx = {"amx_bf16", "amx_tile"};
  PrecisionChoice c = resolve_precision("auto", none, probe(3.0));
  EXPECT_EQ(c.precision, Precision::FP32);
  EXPECT_EQ(probes, 0) << "no probe without the hardware";
  EXPECT_NE(c.reason.find("no avx512_bf16/amx_bf16"), std::string::npos) << c.reason;
  c = resolve_precision("auto", avx, probe(1.6));
  EXPECT_EQ(c.precision, Precision::BF16);
  EXPECT_NE(c.reason.find("avx512_bf16, probe 1.60x"), std::string::npos) << c.reason;
  EXPECT_EQ(resolve_precision("auto", amx, probe(1.05)).precision, Precision::FP32);
  EXPECT_EQ(resolve_precision("auto", amx, probe(kAutoBf16MinSpeedup)).precision, Precision::BF16);
  // An explicit setting is obeyed (and never probed); bf16 without the hardware says it is emulated.
  probes = 0;
  EXPECT_EQ(resolve_precision("fp32", avx, probe(9)).precision, Precision::FP32);
  c = resolve_precision("bf16", none, probe(9));
  EXPECT_EQ(c.precision, Precision::BF16);
  EXPECT_NE(c.reason.find("emulated"), std::string::npos) << c.reason;
  EXPECT_EQ(probes, 0);
  EXPECT_NE(error_of([&] { resolve_precision("fp16", avx, probe(1)); }).find("fp32 or bf16"), std::string::npos);
}

TEST(Precision, CpuFlagsAreReadFromTheFlagsLine) {
  TempDir dir;
  write_text(dir / "cpuinfo", "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                              "processor\t: 1\nflags\t\t: fpu\n");
  EXPECT_EQ(cpu_flags(dir / "cpuinfo"), (std::set<std::string>{"fpu", "avx2", "avx512_bf16"}));
  EXPECT_EQ(bf16_hardware(cpu_flags(dir / "cpuinfo")), "avx512_bf16");
  EXPECT_TRUE(cpu_flags(dir / "missing").empty());
  EXPECT_EQ(bf16_hardware({}), "");
}
