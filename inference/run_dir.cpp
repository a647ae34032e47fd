#include "inference/run_dir.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/json.hpp"
#include "core/text.hpp"
#include "inference/checkpoint.hpp"

namespace ventral {

namespace fs = std::filesystem;
using nlohmann::json;

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

std::string RunDir::checkpoint(const std::string& which) const {
  if (which.empty() || which == "last") return last();
  if (which == "best") return best();
  return which;
}

bool RunDir::holds_config() const { return fs::is_regular_file(config()); }
bool RunDir::is_run() const {
  std::error_code ec;
  return holds_config() && fs::is_directory(checkpoints(), ec);
}
bool RunDir::started() const { return fs::exists(last()); }
bool RunDir::finished() const { return fs::exists(test()); }

std::vector<std::string> RunDir::read_classes() const {
  std::vector<std::string> classes;
  std::error_code ec;
  if (fs::exists(this->classes(), ec) && !fs::is_regular_file(this->classes(), ec))
    throw InputError(this->classes() + ": is not a file (a folder?); restore the run's classes.txt, one class name a line");
  if (fs::exists(this->classes(), ec) && fs::file_size(this->classes(), ec) == 0)
    throw InputError(this->classes() + ": is empty; restore the run's classes.txt, one class name a line");
  std::ifstream in(this->classes());
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) classes.push_back(line);
  if (classes.empty()) throw InputError(path_ + ": missing classes.txt (train the run with this version)");
  if (classes[0].rfind("\xEF\xBB\xBF", 0) == 0) classes[0].erase(0, 3);  // a byte-order mark an editor added
  return classes;
}

std::optional<InputShape> RunDir::read_input() const {
  if (!fs::exists(input())) return std::nullopt;
  json j = read_json_file(input());
  try {
    auto whole = [](const json& v) { return v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > 1u << 30); };
    if (!whole(j.at("channels")) || !whole(j.at("image_size")))
      throw InputError(input() + ": channels and image_size must be whole numbers (channels 1-64, image_size 8-4096), got " + printable(j.dump(), 200));
    InputShape s{j.at("channels").get<int64_t>(), j.at("image_size").get<int64_t>()};
    if (s.channels < 1 || s.channels > 64 || s.image_size < 8 || s.image_size > 4096)
      throw InputError(input() + ": channels must be 1-64 and image_size 8-4096, got " + std::to_string(s.channels) +
                       " and " + std::to_string(s.image_size));
    return s;
  } catch (const json::exception& e) {
    throw InputError(input() + ": expected {\"channels\": C, \"image_size\": S} (" + std::string(e.what()) + ")");
  }
}

void RunDir::write_input(const InputShape& shape) const {
  write_file_atomic(input(), json{{"channels", shape.channels}, {"image_size", shape.image_size}}.dump(2) + "\n");
}

TestRecord RunDir::read_test() const {
  json j = read_json_file(test());
  try {
    TestRecord t;
    t.steps = j.at("steps").get<std::vector<int64_t>>();
    t.accuracy = j.at("accuracy").get<std::vector<double>>();
    t.loss = j.at("loss").get<std::vector<double>>();
    t.n = j.at("n").get<int64_t>();
    t.epochs = j.value("epochs", int64_t{0});
    t.params = j.value("params", int64_t{0});
    t.train_seconds = j.value("train_seconds", NAN);
    return t;
  } catch (const json::exception& e) {
    throw InputError(test() + ": not a test.json written by ventral train (" + std::string(e.what()) + ")");
  }
}

std::vector<std::pair<int64_t, double>> RunDir::read_validation_curve() const {
  std::vector<std::pair<int64_t, double>> curve;
  std::error_code ec;
  std::string text;
  if (fs::is_regular_file(metrics(), ec)) {
    const std::vector<unsigned char> bytes = read_file(metrics());
    text.assign(bytes.begin(), bytes.end());
  }
  // The training history last.pt keeps is the run's own: a metrics.csv replaced or edited since
  // (another run's copied in) is said and not plotted.
  if (!text.empty() && fs::is_regular_file(last(), ec))
    if (const std::string kept = checkpoint_metrics(last()); !kept.empty() && kept != text) {
      std::fprintf(stderr, "note: %s differs from the training history kept in %s (replaced or edited after "
                   "training); using the checkpoint's\n", printable(metrics()).c_str(), printable(last()).c_str());
      text = kept;
    }
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // epoch,lr,train_loss,train_acc,val_loss,val_acc_step...,seconds
  while (std::getline(in, line)) {
    std::vector<std::string> c = split_csv_row(line);
    if (c.size() < 3) continue;
    try {
      curve.emplace_back(std::stoll(c[0]), std::stod(c[c.size() - 2]));
    } catch (const std::logic_error&) {
      throw InputError(metrics() + ": malformed row '" + line + "'");
    }
  }
  return curve;
}

void RunDir::check_run_id(const std::string& checkpoint_path, const std::string& run_id) const {
  if (run_id.empty()) return;  // a checkpoint from before run ids
  std::error_code ec;
  if (!fs::exists(model_json(), ec)) return;  // the caller requires model.json where it must be there
  const json saved = read_json_file(model_json());
  if (!saved.is_object() || !saved.contains("run_id") || !saved["run_id"].is_string() ||
      saved["run_id"].get<std::string>().empty())
    throw InputError(model_json() + ": holds no run id (\"run_id\": a string), though " + checkpoint_path +
                     " records one (" + printable(run_id.substr(0, 64)) +
                     "): restore the file; it tells this run's checkpoints from another's");
  if (const std::string saved_id = saved["run_id"].get<std::string>(); saved_id != run_id)
    throw InputError(checkpoint_path + ": written by another run (run id " + printable(run_id.substr(0, 64)) +
                     ", this run's is " + printable(saved_id.substr(0, 64)) + (saved_id.size() > 64 ? "..." : "") +
                     " in " + model_json() + "): evaluate or resume it from the run directory it came from");
}

}  // namespace ventral
