#pragma once
/// The layout of a run directory, in one place. `ventral train` writes it; evaluation, compare
/// and the CLI read it through this type instead of spelling paths.
///
///   RUN/config.yaml          the resolved config (normalisation included)
///   RUN/classes.txt          class names, one per line, in output order
///   RUN/input.json           the input shape the model was built for
///   RUN/model.json           the model, its input and classes for readers outside ventral
///                            (inference/model_json.hpp; python/ventral_torch reads it)
///   RUN/log.jsonl            events (steps, epochs, resume, test)
///   RUN/metrics.csv          one row per epoch
///   RUN/test.json            test-set accuracy and loss at every readout step
///   RUN/checkpoints/{last,best}.pt
#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ventral {

/// The input a model was built for.
struct InputShape {
  int64_t channels = 0, image_size = 0;
};

/// What test.json records.
struct TestRecord {
  std::vector<int64_t> steps;
  std::vector<double> accuracy, loss;
  int64_t n = 0, epochs = 0, params = 0;
  double train_seconds = NAN;  ///< NaN when not recorded
};

class RunDir {
 public:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  std::string config() const { return file("config.yaml"); }
  std::string classes() const { return file("classes.txt"); }
  std::string input() const { return file("input.json"); }
  std::string model_json() const { return file("model.json"); }
  std::string log() const { return file("log.jsonl"); }
  std::string metrics() const { return file("metrics.csv"); }
  std::string test() const { return file("test.json"); }
  std::string checkpoints() const { return file("checkpoints"); }
  std::string last() const { return file("checkpoints/last.pt"); }
  std::string best() const { return file("checkpoints/best.pt"); }
  /// `best` / `last` name the run's own checkpoints; anything else is a path.
  std::string checkpoint(const std::string& which) const;

  /// The files ventral writes at the top of the run directory (config.yaml ... test.json); the
  /// checkpoints are in checkpoints().
  std::vector<std::string> files() const {
    return {config(), classes(), input(), model_json(), log(), metrics(), test()};
  }

  bool holds_config() const;
  /// config.yaml and checkpoints/: a run directory, whose files nothing but its training writes.
  bool is_run() const;
  bool started() const;   ///< a checkpoint exists (resumable)
  bool finished() const;  ///< test.json exists

  /// Class names from classes.txt; InputError naming the file when missing or empty.
  std::vector<std::string> read_classes() const;
  /// input.json; nullopt for runs trained before it was written.
  std::optional<InputShape> read_input() const;
  void write_input(const InputShape& shape) const;
  /// test.json; InputError naming the file when missing or malformed.
  TestRecord read_test() const;
  /// metrics.csv: (epoch, validation accuracy at the readout step) per epoch.
  std::vector<std::pair<int64_t, double>> read_validation_curve() const;
  /// InputError unless the checkpoint at `checkpoint_path`, whose TrainState::run_id is
  /// `run_id`, was written by this run: model.json's "run_id" must be that id (checkpoints from
  /// before run ids, with an empty one, pass; model.json without a string "run_id" beside a
  /// checkpoint that has one does not).
  void check_run_id(const std::string& checkpoint_path, const std::string& run_id) const;

 private:
  std::string file(const std::string& name) const;
  std::string path_;
};

}  // namespace ventral
