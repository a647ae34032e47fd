#include "eval/features.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/text.hpp"
#include "core/io.hpp"
#include "inference/infer.hpp"

namespace ventral {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_npy(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (auto d : shape) dims += std::to_string(d) + ",";
  if (shape.size() > 1) dims.pop_back();
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  uint16_t len = static_cast<uint16_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>(len >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
  write_file_atomic(path, out);
}

}  // namespace

void check_feature_areas(const VisionModelImpl& model, const std::vector<std::string>& wanted) {
  auto areas = model.areas();
  for (size_t i = 0; i < wanted.size(); ++i)
    if (std::find(wanted.begin(), wanted.begin() + static_cast<std::ptrdiff_t>(i), wanted[i]) != wanted.begin() + static_cast<std::ptrdiff_t>(i))
      throw InputError("--features: area '" + wanted[i] + "' is listed twice; list each once");
  for (const auto& a : wanted)
    if (std::find(areas.begin(), areas.end(), a) == areas.end())
      throw InputError("--features: the model has no area '" + a + "' (areas: " + join(areas, ", ") + ")");
}

void export_features(LoadedRun& run, const Dataset& data, int64_t steps, const FeatureOptions& o) {
  check_feature_areas(*run.model, o.areas);
  make_directories(o.out);
  const auto size = static_cast<int64_t>(data.size());
  if (o.n > size)
    throw InputError("--features-n " + std::to_string(o.n) + ": only " + std::to_string(size) +
                     " images are evaluated (the dataset's, or --limit's); give at most that");
  const int64_t n = o.n ? o.n : std::min<int64_t>(1000, size);
  std::vector<int64_t> first(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) first[i] = i;
  Dataset subset = data.subset(first);
  std::map<std::pair<std::string, int64_t>, std::vector<float>> store;
  std::map<std::pair<std::string, int64_t>, std::vector<int64_t>> shapes;
  std::set<std::string> wanted(o.areas.begin(), o.areas.end());
  run.model->set_probe([&](const std::string& area, int64_t step, const torch::Tensor& act) {
    if (!wanted.count(area)) return;
    torch::Tensor v = (o.full ? act : act.to(torch::kFloat32).mean({2, 3})).to(torch::kCPU, torch::kFloat32).contiguous();
    auto& buf = store[{area, step + 1}];
    buf.insert(buf.end(), v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    auto sh = v.sizes().vec();
    sh[0] = 0;
    shapes[{area, step + 1}] = sh;
  });
  BatchLoader loader(subset, {}, run.loader_options());
  loader.start_epoch(0);
  torch::Device device = run.model->parameters().front().device();
  // Images that do not decode (data.skip_bad_images) had stand-ins in their batches: their rows
  // are left out, as every evaluation count leaves them out.
  std::vector<int64_t> left_out;
  int64_t row0 = 0;  // the batch's first row
  while (auto batch = loader.next()) {
    infer(*run.model, run.model->inputs(batch->images.to(device)), steps);
    for (int64_t k : batch->stand_ins) left_out.push_back(row0 + k);
    row0 += batch->images.size(0);
  }
  run.model->set_probe(nullptr);
  std::vector<float> labels;
  std::vector<int64_t> kept;
  for (int64_t i = 0, next = 0; i < n; ++i) {
    if (next < static_cast<int64_t>(left_out.size()) && left_out[static_cast<size_t>(next)] == i) {
      ++next;
      continue;
    }
    kept.push_back(i);
    labels.push_back(static_cast<float>(subset.labels[static_cast<size_t>(i)]));
  }
  for (auto& [key, buf] : store) {
    if (left_out.empty()) break;
    const size_t row = buf.size() / static_cast<size_t>(n);
    std::vector<float> rows;
    rows.reserve(kept.size() * row);
    for (int64_t i : kept) rows.insert(rows.end(), buf.begin() + i * row, buf.begin() + (i + 1) * row);
    buf = std::move(rows);
  }
  const auto rows = static_cast<int64_t>(kept.size());
  json index;
  index["n"] = rows;
  index["labels"] = "labels.npy";
  index["classes"] = run.classes;
  index["pooled"] = !o.full;
  if (!left_out.empty()) index["left_out"] = left_out;  // positions among the first n that did not decode
  write_npy((fs::path(o.out) / "labels.npy").string(), labels, {rows});
  for (auto& [key, buf] : store) {
    auto shape = shapes[key];
    shape[0] = rows;
    std::string file = key.first + "_step" + std::to_string(key.second) + ".npy";
    write_npy((fs::path(o.out) / file).string(), buf, shape);
    index["files"].push_back({{"area", key.first}, {"step", key.second}, {"file", file}, {"shape", shape}});
  }
  write_file_atomic((fs::path(o.out) / "index.json").string(), index.dump(2) + "\n");
  // An earlier export's arrays that this one did not write (other areas, steps, or full maps of
  // other images) would sit beside index.json as if they belonged to it: removed. The folder
  // holds only feature exports (eval checks that before it writes).
  std::set<std::string> written = {"labels.npy", "index.json"};
  for (const auto& f : index["files"]) written.insert(f["file"].get<std::string>());
  std::error_code ec;
  for (fs::directory_iterator it(o.out, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".npy" && !written.count(it->path().filename().string()) && it->is_regular_file(ec))
      fs::remove(it->path(), ec);
}

}  // namespace ventral
