#include "inference/model_json.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "core/io.hpp"
#include "datasets/experiment.hpp"
#include "inference/checkpoint.hpp"

namespace ventral {

nlohmann::json model_json(const ModelDescription& d) {
  const Config& c = d.cfg;
  const Preprocessing pre = preprocessing(c);  // data.preset resolved
  nlohmann::json options = {{"width", c.get_int("model.width")},
                            {"steps", c.get_int("model.steps")},
                            {"unroll", c.get_string("model.unroll")},
                            {"input_every_step", c.get_bool("model.input_every_step")},
                            {"cumulative_readout", c.get_bool("model.cumulative_readout")},
                            {"shortcut", c.get_string("model.shortcut")},
                            {"stem", c.get_string("model.stem")}};
  nlohmann::json input = {{"channels", d.channels},
                          {"image_size", d.image_size},
                          {"layout", "NCHW"},
                          {"channel_order", d.channels == 3 ? "RGB" : "gray"},
                          {"scale", "pixel / 255, then (x - mean) / std per channel"},
                          {"resize", pre.load.resize},
                          {"center_crop", pre.load.center_crop}};
  return {{"format", "ventral model description 1; the weights are a PyTorch state_dict"},
          {"model", c.get_string("model.name")},
          {"options", options},
          {"steps", d.steps},
          {"input", input},
          {"normalisation", {{"mean", d.mean}, {"std", d.std}}},
          {"classes", d.classes}};
}

std::string export_model(const std::string& out, VisionModelImpl& model, nlohmann::json meta) {
  namespace fs = std::filesystem;
  if (fs::path(out).extension() == ".json")
    throw InputError("--out " + out + ": the state_dict needs another name than .json (model.json-style metadata is "
                     "written beside it, named after it)");
  save_state_dict(out, model);
  const std::string json_path = fs::path(out).replace_extension(".json").string();
  write_file_atomic(json_path, meta.dump(2) + "\n");
  return json_path;
}

}  // namespace ventral
