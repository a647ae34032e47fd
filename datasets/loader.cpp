#include "datasets/loader.hpp"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>

#include "core/rng.hpp"
#include "datasets/image.hpp"

namespace ventral {

PerturbationDraw draw_perturbation(const LoaderOptions& o, int64_t epoch, int64_t index) {
  const LoaderPerturbation& p = o.perturbation;
  if (!p.on()) return {};
  Rng rng({o.seed, stream::kTrainPerturb, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)});
  // Always three draws, in this order, whatever the outcome.
  const bool perturbed = rng.uniform() < p.fraction;
  const auto family = static_cast<int>(rng.below(p.specs.size()));
  const auto& severities = p.specs[static_cast<size_t>(family)].severities;
  const int severity = severities[rng.below(severities.size())];
  if (!perturbed) return {};
  return {family, severity};
}

uint64_t perturbation_seed(const LoaderOptions& o, int64_t epoch) {
  if (o.perturbation.fixed_seed) return o.perturbation.seed;
  return hash_seed({o.seed, stream::kTrainPerturb, static_cast<uint64_t>(epoch)});
}

LoaderPerturbation evaluation_perturbation(const std::string& family, int severity, uint64_t seed) {
  LoaderPerturbation p;
  if (severity > 0) p.specs = {{family, {severity}}};
  p.fraction = 1.0;
  p.fixed_seed = true;
  p.seed = seed;
  return p;
}

CropBox resized_crop_box(int width, int height, double scale_min, double scale_max, Rng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(scale_min, scale_max);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int w = static_cast<int>(std::lround(std::sqrt(target * aspect)));
    const int h = static_cast<int>(std::lround(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const int x = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {x, y, w, h};
    }
  }
  // torchvision's fallback: the central crop, its aspect ratio clamped to [3/4, 4/3].
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < 3.0 / 4.0) h = static_cast<int>(std::lround(w / (3.0 / 4.0)));
  else if (in_ratio > 4.0 / 3.0) w = static_cast<int>(std::lround(h * (4.0 / 3.0)));
  return {(width - w) / 2, (height - h) / 2, w, h};
}

void render_sample(const Dataset& data, int64_t index, const LoaderOptions& o, int64_t epoch, float* out) {
  const int64_t H = data.height, W = data.width, C = data.channels;
  thread_local std::vector<uint8_t> base, perturbed;
  const uint8_t* src = nullptr;
  if (o.augment && o.augmentation.resized_crop) {
    // Drawn from its own stream: switching it on changes no other augmentation's draws.
    Rng rng({o.seed, stream::kResizedCrop, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)});
    const cv::Mat img = source_image(data, static_cast<size_t>(index));
    const CropBox box = resized_crop_box(img.cols, img.rows, o.augmentation.scale_min, o.augmentation.scale_max, rng);
    const cv::Mat crop = resize_like_pil(img(cv::Rect(box.x, box.y, box.width, box.height)), static_cast<int>(W),
                                         static_cast<int>(H));
    base.resize(data.image_bytes());
    cv::Mat dst(static_cast<int>(H), static_cast<int>(W), CV_8UC(static_cast<int>(C)), base.data());
    crop.copyTo(dst);
    src = base.data();
  } else {
    src = data.fetch(static_cast<size_t>(index), base);
  }
  if (const PerturbationDraw d = draw_perturbation(o, epoch, index); d.family >= 0) {
    perturbed.resize(data.image_bytes());
    perturb_image(data, index, o.perturbation.specs[static_cast<size_t>(d.family)].family, d.severity,
                  perturbation_seed(o, epoch), perturbed.data(), src);
    src = perturbed.data();
  }
  Rng rng({o.seed, stream::kAugment, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index)});
  // Draw in a fixed order whether or not an augmentation is on, so switching one off does not
  // change the others' draws.
  int64_t pad = o.augment ? o.augmentation.crop_padding : 0;
  int64_t dy = static_cast<int64_t>(rng.below(2 * pad + 1)) - pad;
  int64_t dx = static_cast<int64_t>(rng.below(2 * pad + 1)) - pad;
  bool flip = rng.uniform() < 0.5 && o.augment && o.augmentation.hflip;

  std::vector<float> scale(C, 1.f / 255.f), shift(C, 0.f);
  if (!o.mean.empty())
    for (int64_t c = 0; c < C; ++c) {
      scale[c] = static_cast<float>(1.0 / (255.0 * o.std[c]));
      shift[c] = static_cast<float>(-o.mean[c] / o.std[c]);
    }
  for (int64_t c = 0; c < C; ++c) {
    float* plane = out + c * H * W;
    // A padded pixel is black (0) before normalisation, as torchvision's RandomCrop(padding).
    for (int64_t y = 0; y < H; ++y) {
      int64_t sy = y + dy;
      for (int64_t x = 0; x < W; ++x) {
        int64_t sx = (flip ? W - 1 - x : x) + dx;
        float v = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[(sy * W + sx) * C + c] : 0.f;
        plane[y * W + x] = v * scale[c] + shift[c];
      }
    }
  }

  if (o.augment && o.augmentation.erasing > 0 && rng.uniform() < o.augmentation.erasing) {
    // Random erasing (Zhong et al. 2017): area 2–40 %, log-uniform aspect 0.3–3.3, value 0.
    for (int attempt = 0; attempt < 10; ++attempt) {
      double area = rng.uniform(0.02, 0.4) * H * W;
      double aspect = std::exp(rng.uniform(std::log(0.3), std::log(1 / 0.3)));
      int64_t h = std::llround(std::sqrt(area * aspect)), w = std::llround(std::sqrt(area / aspect));
      if (h < 1 || w < 1 || h >= H || w >= W) continue;
      int64_t y0 = rng.below(H - h + 1), x0 = rng.below(W - w + 1);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = y0; y < y0 + h; ++y)
          std::fill_n(out + c * H * W + y * W + x0, w, 0.f);
      break;
    }
  }
}

BatchLoader::BatchLoader(const Dataset& data, std::vector<int64_t> indices, LoaderOptions options)
    : data_(data), indices_(std::move(indices)), options_(std::move(options)) {
  if (indices_.empty())
    for (size_t i = 0; i < data_.size(); ++i) indices_.push_back(static_cast<int64_t>(i));
  options_.threads = std::max<int64_t>(1, options_.threads);
  options_.prefetch = std::max<int64_t>(1, options_.prefetch);
  options_.batch_size = std::max<int64_t>(1, options_.batch_size);
  options_.shard_count = std::max<int64_t>(1, options_.shard_count);
  options_.shard_rank = std::clamp<int64_t>(options_.shard_rank, 0, options_.shard_count - 1);
}

BatchLoader::~BatchLoader() { stop(); }

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = size(), b = options_.batch_size;
  const int64_t global = options_.drop_last ? n / b : (n + b - 1) / b;
  const int64_t r = options_.shard_rank, k = options_.shard_count;
  if (k <= 1 || options_.split_batches) return global;
  return global > r ? (global - r + k - 1) / k : 0;
}

int64_t BatchLoader::images_per_epoch() const {
  const int64_t n = size(), b = options_.batch_size, r = options_.shard_rank, k = options_.shard_count;
  const int64_t global = options_.drop_last ? n / b : (n + b - 1) / b;
  int64_t images = 0;
  for (int64_t g = 0; g < global; ++g) {
    const int64_t in_batch = std::min(b, n - g * b);
    if (k <= 1) images += in_batch;
    else if (options_.split_batches) images += in_batch * (r + 1) / k - in_batch * r / k;
    else if (g % k == r) images += in_batch;
  }
  return images;
}

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void BatchLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop();
  epoch_ = epoch;
  order_ = indices_;
  if (options_.shuffle) {
    Rng rng({options_.seed, stream::kShuffle, static_cast<uint64_t>(epoch)});
    shuffle(order_, rng);
  }
  num_batches_ = batches_per_epoch();
  consumed_ = std::clamp<int64_t>(first_batch, 0, num_batches_);
  ready_.clear();
  error_ = nullptr;
  stopping_ = false;
  // Each worker takes every threads-th batch from its own first one (fixed here: consumed_
  // may already have moved by the time a late thread starts).
  for (int64_t w = 0; w < options_.threads; ++w) workers_.emplace_back(&BatchLoader::work, this, consumed_ + w);
}

Batch BatchLoader::build(int64_t b) const {
  const int64_t r = options_.shard_rank, k = std::max<int64_t>(1, options_.shard_count);
  const int64_t global = options_.split_batches ? b : r + b * k;  // this loader's batch b in the epoch
  int64_t begin = global * options_.batch_size;
  int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order_.size()));
  if (k > 1 && options_.split_batches) {  // this rank's part of the global batch
    const int64_t n = end - begin;
    end = begin + n * (r + 1) / k;
    begin = begin + n * r / k;
  }
  int64_t n = end - begin, C = data_.channels, H = data_.height, W = data_.width;
  Batch batch;
  batch.images = torch::empty({n, C, H, W}, torch::kFloat32);
  batch.labels = torch::empty({n}, torch::kInt64);
  float* img = batch.images.data_ptr<float>();
  int64_t* lab = batch.labels.data_ptr<int64_t>();
  for (int64_t k = 0; k < n; ++k) {
    int64_t idx = order_[begin + k];
    try {
      render_sample(data_, idx, options_, epoch_, img + k * C * H * W);
    } catch (const UndecodableImage&) {
      render_stand_in(begin + k, img + k * C * H * W);
      batch.stand_ins.push_back(k);
    }
    lab[k] = options_.hide_labels ? kNoLabel : data_.labels[idx];
    batch.indices.push_back(idx);
  }
  return batch;
}

void BatchLoader::render_stand_in(int64_t position, float* out) const {
  // data.skip_bad_images: the next image of the same class in this epoch's order (this loader's
  // own images: a training image never borrows a validation image) that decodes.
  const int64_t n = static_cast<int64_t>(order_.size()), label = data_.labels[order_[position]];
  for (int64_t step = 1; step < n; ++step) {
    const int64_t idx = order_[(position + step) % n];
    if (data_.labels[idx] != label) continue;
    try {
      render_sample(data_, idx, options_, epoch_, out);
      return;
    } catch (const UndecodableImage&) {
    }
  }
  throw InputError(data_.name + ": no image of class '" + data_.classes[static_cast<size_t>(label)] +
                   "' decodes (data.skip_bad_images)");
}

void BatchLoader::work(int64_t first) {
  cv::setNumThreads(0);  // OpenCV inside a loader thread must not spawn its own pool
  for (int64_t b = first; b < num_batches_; b += options_.threads) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || b < consumed_ + options_.prefetch + options_.threads; });
      if (stopping_) return;
    }
    try {
      Batch batch = build(b);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(b, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
    }
    cv_.notify_all();
  }
}

std::optional<Batch> BatchLoader::next() {
  if (order_.empty() && !indices_.empty()) start_epoch(epoch_);
  if (consumed_ >= num_batches_) return std::nullopt;
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return error_ || ready_.count(consumed_); });
  if (error_) std::rethrow_exception(error_);
  Batch batch = std::move(ready_.at(consumed_));
  ready_.erase(consumed_);
  ++consumed_;
  lock.unlock();
  cv_.notify_all();
  return batch;
}

}  // namespace ventral
