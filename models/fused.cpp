#include "models/fused.hpp"

#include <ATen/autocast_mode.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace ventral::nn {

namespace {

std::atomic<bool> enabled{true};
std::atomic<int64_t> runs{0};

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::dims dims(at::IntArrayRef s) { return dnnl::memory::dims(s.begin(), s.end()); }

// What a primitive depends on besides the data: shapes, geometry, post-ops and the data types
// (the computation's, and the added tensor's).
enum PostOps : int { kNone = 0, kAdd = 1, kSum = 2, kRelu = 4 };
using Key = std::tuple<std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>, bool, int,
                       dnnl::memory::data_type, dnnl::memory::data_type>;

// The type a convolution computes in: bf16 under bf16 autocast (as LibTorch's would), else fp32.
at::ScalarType compute_type() {
  return at::autocast::is_cpu_enabled() && at::autocast::get_autocast_cpu_dtype() == at::kBFloat16 ? at::kBFloat16
                                                                                                   : at::kFloat;
}

dnnl::memory::data_type dnnl_type(at::ScalarType t) {
  return t == at::kBFloat16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

struct Primitive {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
};

// N × O × H × W of the convolution's output ("same"-style symmetric padding).
std::vector<int64_t> output_sizes(const torch::Tensor& x, const torch::Tensor& weight, at::IntArrayRef stride,
                                  at::IntArrayRef padding) {
  return {x.size(0), weight.size(0), (x.size(2) + 2 * padding[0] - weight.size(2)) / stride[0] + 1,
          (x.size(3) + 2 * padding[1] - weight.size(3)) / stride[1] + 1};
}

// Creating a primitive chooses and generates its kernel (oneDNN's JIT): done once per shape.
// `type`: the source's, destination's and weights' type (f32 or bf16; the bias stays f32);
// `add_type`: the added tensor's (kAdd).
const Primitive& primitive(const torch::Tensor& x, const torch::Tensor& weight, at::IntArrayRef stride,
                           at::IntArrayRef padding, bool bias, int post, dnnl::memory::data_type type,
                           dnnl::memory::data_type add_type) {
  static std::mutex mutex;
  static std::map<Key, Primitive> cache;
  Key key{x.sizes().vec(), weight.sizes().vec(), stride.vec(), padding.vec(), bias, post, type, add_type};
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dnnl::memory::desc src(dims(x.sizes()), type, tag::nhwc);
  const dnnl::memory::desc dst(dims(output_sizes(x, weight, stride, padding)), type, tag::nhwc);
  const dnnl::memory::desc weights(dims(weight.sizes()), type, tag::any), biases({weight.size(0)}, dt::f32, tag::x);
  dnnl::post_ops ops;
  if (post & kSum) ops.append_sum(1.f);
  if (post & kAdd)
    ops.append_binary(dnnl::algorithm::binary_add,
                      dnnl::memory::desc(dims(output_sizes(x, weight, stride, padding)), add_type, tag::nhwc));
  if (post & kRelu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const auto kind = dnnl::prop_kind::forward_inference;
  const auto algorithm = dnnl::algorithm::convolution_direct;
  const dnnl::memory::dims strides = dims(stride), pad = dims(padding);
  auto desc = bias ? dnnl::convolution_forward::desc(kind, algorithm, src, weights, biases, dst, strides, pad, pad)
                   : dnnl::convolution_forward::desc(kind, algorithm, src, weights, dst, strides, pad, pad);
  dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
  return cache.emplace(key, Primitive{pd, dnnl::convolution_forward(pd)}).first->second;
}

void run(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias, at::IntArrayRef stride,
         at::IntArrayRef padding, const torch::Tensor& add, int post, torch::Tensor& out) {
  using tag = dnnl::memory::format_tag;
  // The source in the computation's type (bf16: only a model's fp32 input needs converting).
  const torch::Tensor src_tensor = x.scalar_type() == out.scalar_type() ? x : x.to(out.scalar_type());
  torch::Tensor a;
  if (post & kAdd) a = add.contiguous(at::MemoryFormat::ChannelsLast);
  const dnnl::memory::data_type add_type = post & kAdd ? dnnl_type(a.scalar_type()) : dnnl::memory::data_type::f32;
  const Primitive& p = primitive(x, weight, stride, padding, bias.defined(), post, dnnl_type(out.scalar_type()), add_type);
  dnnl::engine& engine = cpu_engine();
  thread_local dnnl::stream stream(cpu_engine());
  // The weights in the kernel's own layout, from the module's on every call (never cached: see
  // nn::conv_bn for why a cache cannot know when they change). Small against the activations.
  const torch::Tensor w = weight.is_contiguous(at::MemoryFormat::ChannelsLast) || weight.is_contiguous()
                              ? weight
                              : weight.contiguous(at::MemoryFormat::ChannelsLast);
  const bool ohwi = !w.is_contiguous();
  dnnl::memory user_weights({dims(w.sizes()), dnnl::memory::data_type::f32, ohwi ? tag::ohwi : tag::oihw}, engine,
                            w.data_ptr());
  torch::Tensor packed = torch::empty({static_cast<int64_t>(p.pd.weights_desc().get_size())}, torch::kByte);
  dnnl::memory kernel_weights(p.pd.weights_desc(), engine, packed.data_ptr());
  dnnl::reorder(user_weights, kernel_weights).execute(stream, user_weights, kernel_weights);
  dnnl::memory src(p.pd.src_desc(), engine, src_tensor.data_ptr()), dst(p.pd.dst_desc(), engine, out.data_ptr());
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, kernel_weights}, {DNNL_ARG_DST, dst}};
  torch::Tensor b;
  if (bias.defined()) {
    b = bias.contiguous();
    args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.pd.bias_desc(), engine, b.data_ptr()));
  }
  if (post & kAdd) {
    const int index = post & kSum ? 1 : 0;  // the binary post-op's position among the post-ops
    const dnnl::memory::desc added(p.pd.dst_desc().dims(), add_type, tag::nhwc);
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1, dnnl::memory(added, engine, a.data_ptr()));
  }
  p.conv.execute(stream, args);
  stream.wait();
  ++runs;
}

}  // namespace

bool fused_inference_enabled() { return enabled.load(); }
void set_fused_inference(bool on) { enabled.store(on); }
int64_t fused_convolutions() { return runs.load(); }

namespace {
// Whether oneDNN runs bf16 convolutions on this CPU (natively with avx512_bf16 or AMX, emulated
// on other AVX-512 cores; not at all on older ones): asked once, by creating one.
bool bf16_convolutions() {
  static const bool supported = [] {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    try {
      const dnnl::memory::desc src({1, 8, 4, 4}, dt::bf16, tag::nhwc), dst({1, 8, 4, 4}, dt::bf16, tag::nhwc);
      const dnnl::memory::desc weights({8, 8, 3, 3}, dt::bf16, tag::any);
      const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                                 src, weights, dst, {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc pd(desc, cpu_engine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return supported;
}
}  // namespace

bool fused_bf16_supported() { return bf16_convolutions(); }

bool fusable(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!enabled.load() || torch::GradMode::is_enabled() || !x.device().is_cpu() || x.dim() != 4 ||
      weight.scalar_type() != torch::kFloat || !x.is_contiguous(at::MemoryFormat::ChannelsLast) ||
      x.size(1) != weight.size(1) || x.size(0) == 0)
    return false;
  if (!at::autocast::is_cpu_enabled()) return x.scalar_type() == torch::kFloat;
  // bf16 autocast: the convolution in bf16 with its post-ops, its input converted where it is fp32.
  return compute_type() == at::kBFloat16 && (x.scalar_type() == torch::kFloat || x.scalar_type() == at::kBFloat16) &&
         bf16_convolutions();
}

torch::Tensor fused_conv(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         at::IntArrayRef stride, at::IntArrayRef padding, const torch::Tensor& add, bool relu) {
  torch::Tensor out = torch::empty(output_sizes(x, weight, stride, padding),
                                   x.options().dtype(compute_type()).memory_format(at::MemoryFormat::ChannelsLast));
  run(x, weight, bias, stride, padding, add, (add.defined() ? kAdd : kNone) | (relu ? kRelu : kNone), out);
  return out;
}

void fused_conv_into(torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& weight, at::IntArrayRef stride,
                     at::IntArrayRef padding, bool relu) {
  TORCH_CHECK(out.is_contiguous(at::MemoryFormat::ChannelsLast) && out.scalar_type() == compute_type(),
              "fused_conv_into: the sum must be a channels-last tensor of the computation's type");
  run(x, weight, torch::Tensor(), stride, padding, torch::Tensor(), kSum | (relu ? kRelu : kNone), out);
}

}  // namespace ventral::nn
