// Reading Python's torch.save files: the zip archive (LibTorch's PyTorchStreamReader) and a small
// unpickler of our own for what torch.save writes for a state_dict. LibTorch 1.13's own
// unpickler turns a Python OrderedDict (what model.state_dict() returns, and what CORnet's
// released checkpoints hold) into None, so it cannot read the files users actually have.
//
// Supported: pickle protocols 2-4 as torch.save emits them; dicts, OrderedDicts, lists, tuples,
// numbers, strings, None/bools; tensors rebuilt by torch._utils._rebuild_tensor_v2 (and
// _rebuild_parameter[_with_state]) from typed storages (persistent ids). Anything else is an
// InputError naming what was found.
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "core/io.hpp"
#include "core/text.hpp"
#include "inference/checkpoint.hpp"

namespace ventral {

namespace {

struct PyValue;
using PyPtr = std::shared_ptr<PyValue>;
struct PyValue {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor, Storage } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;                                 // Str; Global: "module.name"
  std::vector<PyPtr> items;                      // Tuple, List
  std::vector<std::pair<PyPtr, PyPtr>> entries;  // Dict (insertion order)
  torch::Tensor tensor;                          // Tensor; Storage: the 1-D storage
};

PyPtr make(PyValue::Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}

const char* kind_name(const PyValue& v) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "tensor", "storage"};
  return names[v.kind];
}

torch::ScalarType storage_dtype(const std::string& cls, const std::string& path) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat},     {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},       {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},       {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort},     {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},       {"torch.BoolStorage", torch::kBool}};
  auto it = types.find(cls);
  if (it == types.end()) throw InputError(path + ": holds a storage of type " + cls + ", which ventral does not read");
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& zip, const uint8_t* data, size_t size)
      : path_(path), zip_(zip), p_(data), end_(data + size) {}
  /// A census instead of a read: storages are checked against `record_sizes` (by record name,
  /// `tensor_dir` + key) and tensor views against their storages, nothing is copied, and objects
  /// of other types (TorchScript's classes and containers) pass as opaque values.
  Unpickler(const std::string& path, caffe2::serialize::PyTorchStreamReader& zip, const uint8_t* data, size_t size,
            const std::map<std::string, uint64_t>& record_sizes, std::string tensor_dir)
      : path_(path), zip_(zip), p_(data), end_(data + size), census_(&record_sizes), tensor_dir_(std::move(tensor_dir)) {}

  PyPtr run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                       // PROTO
        case 0x95: skip(8); break;                      // FRAME
        case '.': return pop();                         // STOP
        case 'c': {                                     // GLOBAL
          auto g = make(PyValue::Global);
          g->s = line();
          g->s += "." + line();
          push(g);
          break;
        }
        case 0x93: {                                    // STACK_GLOBAL
          auto name = pop(), module = pop();
          auto g = make(PyValue::Global);
          g->s = module->s + "." + name->s;
          push(g);
          break;
        }
        case 'q': memo_[byte()] = top(); break;         // BINPUT
        case 'r': memo_[u32()] = top(); break;          // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': push(memo(byte())); break;            // BINGET
        case 'j': push(memo(u32())); break;             // LONG_BINGET
        case '}': push(make(PyValue::Dict)); break;
        case ']': push(make(PyValue::List)); break;
        case ')': push(make(PyValue::Tuple)); break;
        case '(': marks_.push_back(stack_.size()); break;
        case 't': push(tuple_from(pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {              // TUPLE1..3
          std::vector<PyPtr> items(op - 0x84);
          for (size_t k = items.size(); k-- > 0;) items[k] = pop();
          push(tuple_from(std::move(items)));
          break;
        }
        case 'N': push(make(PyValue::None)); break;
        case 0x88: case 0x89: {                         // NEWTRUE, NEWFALSE
          auto b = make(PyValue::Bool);
          b->i = op == 0x88;
          push(b);
          break;
        }
        case 'K': push(integer(byte())); break;         // BININT1
        case 'M': push(integer(u16())); break;          // BININT2
        case 'J': push(integer(static_cast<int32_t>(u32()))); break;  // BININT
        case 0x8a: {                                    // LONG1
          const uint8_t n = byte();
          if (n > 8) fail("an integer wider than 64 bits");
          int64_t v = 0;
          for (uint8_t k = 0; k < n; ++k) v |= static_cast<int64_t>(byte()) << (8 * k);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v -= int64_t{1} << (8 * n);  // sign
          push(integer(v));
          break;
        }
        case 'G': {                                     // BINFLOAT (big-endian)
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | byte();
          auto f = make(PyValue::Float);
          std::memcpy(&f->f, &bits, 8);
          push(f);
          break;
        }
        case 'X': push(string(u32())); break;           // BINUNICODE
        case 0x8c: push(string(byte())); break;         // SHORT_BINUNICODE
        case 'R': {                                     // REDUCE
          auto args = pop(), callable = pop();
          push(reduce(*callable, *args));
          break;
        }
        case 'Q': push(storage(*pop())); break;         // BINPERSID
        case 's': {                                     // SETITEM
          auto v = pop(), k = pop();
          dict_top().entries.emplace_back(k, v);
          break;
        }
        case 'u': {                                     // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) fail("an odd SETITEMS");
          auto& d = dict_top();
          for (size_t k = 0; k < items.size(); k += 2) d.entries.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'a': {                                     // APPEND
          auto v = pop();
          list_top().items.push_back(v);
          break;
        }
        case 'e': {                                     // APPENDS
          auto items = pop_mark();
          auto& l = list_top();
          l.items.insert(l.items.end(), items.begin(), items.end());
          break;
        }
        case 'b': pop(); break;  // BUILD: an OrderedDict's _metadata, a Parameter's state: not needed
        case 0x81:                // NEWOBJ: how LibTorch's pickler creates a TorchScript object
          if (!census_) fail("pickle opcode 0x81, which torch.save does not write for a state_dict");
          pop(), pop();
          push(make(PyValue::None));
          break;
        default: fail("pickle opcode 0x" + hex(op) + ", which torch.save does not write for a state_dict");
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    if (census_) throw InputError(path_ + ": a damaged or altered checkpoint: " + what);
    throw InputError(path_ + ": not a state_dict ventral can read: " + what);
  }
  static std::string hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return {d[b >> 4], d[b & 15]};
  }
  uint8_t byte() {
    if (p_ >= end_) fail("the pickle ends early");
    return *p_++;
  }
  void skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("the pickle ends early");
    p_ += n;
  }
  uint32_t u16() { return byte() | (uint32_t{byte()} << 8); }
  uint32_t u32() {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= uint32_t{byte()} << (8 * k);
    return v;
  }
  std::string line() {
    std::string s;
    for (uint8_t c; (c = byte()) != '\n';) s += static_cast<char>(c);
    return s;
  }
  PyPtr string(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) fail("the pickle ends early");
    auto v = make(PyValue::Str);
    v->s.assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return v;
  }
  PyPtr integer(int64_t i) {
    auto v = make(PyValue::Int);
    v->i = i;
    return v;
  }
  PyPtr tuple_from(std::vector<PyPtr> items) {
    auto t = make(PyValue::Tuple);
    t->items = std::move(items);
    return t;
  }
  void push(PyPtr v) {
    if (stack_.size() > (1u << 24)) fail("a pickle too deep");
    stack_.push_back(std::move(v));
  }
  PyPtr pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail("a malformed pickle (stack underflow)");
    PyPtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyPtr top() {
    if (stack_.empty()) fail("a malformed pickle (empty stack)");
    return stack_.back();
  }
  PyPtr memo(size_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("a malformed pickle (unknown memo entry)");
    return it->second;
  }
  std::vector<PyPtr> pop_mark() {
    if (marks_.empty()) fail("a malformed pickle (no mark)");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyPtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  PyValue& dict_top() {
    PyPtr d = top();
    if (census_ && d->kind != PyValue::Dict) return scratch_ = PyValue{};  // an opaque object's items
    if (d->kind != PyValue::Dict) fail(std::string("items set on a ") + kind_name(*d));
    return *d;
  }
  PyValue& list_top() {
    PyPtr l = top();
    if (census_ && l->kind != PyValue::List) return scratch_ = PyValue{};
    if (l->kind != PyValue::List) fail(std::string("items appended to a ") + kind_name(*l));
    return *l;
  }
  std::vector<int64_t> ints(const PyValue& t, const char* what) {
    if (t.kind != PyValue::Tuple) fail(std::string("a tensor ") + what + " that is not a tuple");
    std::vector<int64_t> v;
    for (const auto& x : t.items) {
      if (x->kind != PyValue::Int) fail(std::string("a tensor ") + what + " holding a " + kind_name(*x));
      v.push_back(x->i);
    }
    return v;
  }

  // ('storage', <dtype>Storage, key, location, numel): the bytes are the zip's record data/<key>.
  PyPtr storage(const PyValue& pid) {
    if (pid.kind != PyValue::Tuple || pid.items.size() < 5 || pid.items[0]->s != "storage" ||
        pid.items[1]->kind != PyValue::Global || pid.items[2]->kind != PyValue::Str || pid.items[4]->kind != PyValue::Int)
      fail("a persistent id that is not a tensor storage");
    const std::string& key = pid.items[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const torch::ScalarType dtype = storage_dtype(pid.items[1]->s, path_);
    const int64_t numel = pid.items[4]->i;
    const std::string record = tensor_dir_ + key;
    if (numel < 0 || numel > (int64_t{1} << 40)) fail("storage " + key + " claims " + std::to_string(numel) + " elements");
    const size_t want = static_cast<size_t>(numel) * c10::elementSize(dtype);
    auto s = make(PyValue::Storage);
    s->i = numel;
    if (census_) {  // LibTorch reads no record for an empty storage, and trusts the pickle's numel for the rest
      auto it = census_->find(record);
      if (numel > 0 && it == census_->end()) fail("storage " + key + " is missing from the archive");
      if (numel > 0 && it->second != want)
        fail("storage " + key + " holds " + std::to_string(it->second) + " bytes, not the " + std::to_string(want) +
             " its tensors need (a record cut short or padded)");
    } else {
      if (!zip_.hasRecord(record)) fail("storage " + key + " is missing from the archive");
      auto [data, bytes] = zip_.getRecord(record);
      if (bytes != want) fail("storage " + key + " holds " + std::to_string(bytes) + " bytes, not " + std::to_string(want));
      s->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
      if (want) std::memcpy(s->tensor.data_ptr(), data.get(), want);
    }
    storages_[key] = s;
    return s;
  }

  PyPtr reduce(const PyValue& callable, const PyValue& args) {
    if (callable.kind != PyValue::Global) fail(std::string("a call of a ") + kind_name(callable));
    const std::string& f = callable.s;
    if (args.kind != PyValue::Tuple) fail("the arguments of " + f + " are not a tuple");
    const auto& a = args.items;
    if (f == "collections.OrderedDict" || f == "builtins.dict") {
      if (!a.empty()) fail(f + " built from arguments");
      return make(PyValue::Dict);
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->kind != PyValue::Storage || a[1]->kind != PyValue::Int) fail("a malformed " + f);
      const auto size = ints(*a[2], "size"), stride = ints(*a[3], "stride");
      if (size.size() != stride.size()) fail("a tensor whose size and stride differ in length");
      int64_t last = a[1]->i;  // the largest element index the view reaches must lie in the storage
      for (size_t k = 0; k < size.size(); ++k) {
        if (size[k] < 0 || stride[k] < 0) fail("a tensor with a negative size or stride");
        if (size[k] == 0) last = -1;
        if (last >= 0) last += (size[k] - 1) * stride[k];
      }
      if (a[1]->i < 0 || last >= a[0]->i) fail("a tensor reaching beyond its storage");
      auto t = make(PyValue::Tensor);
      if (!census_) t->tensor = a[0]->tensor.as_strided(size, stride, a[1]->i).clone();
      return t;
    }
    if (f == "torch.jit._pickle.restore_type_tag") {  // LibTorch's pickler tags containers with their type
      if (a.empty()) fail("a malformed " + f);
      return a[0];
    }
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != PyValue::Tensor) fail("a malformed " + f);
      return a[0];
    }
    if (census_) return make(PyValue::None);  // a TorchScript object or container: opaque here
    if (f.rfind("__torch__", 0) == 0)
      throw InputError(path_ + ": a TorchScript/LibTorch archive (a ventral checkpoint?), not a state_dict; write one "
                               "with `ventral export RUN --out FILE`");
    fail("a Python object of type " + f);
  }

  std::string path_;
  caffe2::serialize::PyTorchStreamReader& zip_;
  const uint8_t* p_;
  const uint8_t* end_;
  std::vector<PyPtr> stack_;
  std::vector<size_t> marks_;
  std::map<size_t, PyPtr> memo_;
  std::map<std::string, PyPtr> storages_;
  const std::map<std::string, uint64_t>* census_ = nullptr;
  std::string tensor_dir_ = "data/";
  PyValue scratch_;  // census: where items set on an opaque object go
};

}  // namespace

void verify_tensor_records(const std::string& path, const std::map<std::string, uint64_t>& entry_sizes) {
  if (entry_sizes.empty()) return;  // zip64: over 4 GiB, unchecked like its checksums
  // The reader names records below the archive's top folder ("archive/data/0" is "data/0").
  std::map<std::string, uint64_t> records;
  for (const auto& [name, size] : entry_sizes)
    if (const size_t slash = name.find('/'); slash != std::string::npos) records[name.substr(slash + 1)] = size;
  try {
    caffe2::serialize::PyTorchStreamReader zip(path);
    for (const auto& [pickle, tensor_dir] : {std::pair{"data.pkl", "data/"}, std::pair{"constants.pkl", "constants/"}}) {
      if (!zip.hasRecord(pickle)) continue;
      auto [pkl, size] = zip.getRecord(pickle);
      Unpickler(path, zip, static_cast<const uint8_t*>(pkl.get()), size, records, tensor_dir).run();
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw InputError(path + ": cannot read the archive: " + why.substr(0, why.find('\n')));
  }
}

std::map<std::string, torch::Tensor> read_state_dict(const std::string& path) {
  {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(st)) throw InputError(path + ": no such file");
    if (!std::filesystem::is_regular_file(st)) throw InputError(path + ": is not a regular file; give a state_dict file");
  }
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> zip;
  try {
    zip = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception&) {
    throw InputError(path + ": not a zip archive: truncated, not a torch.save file, or torch.save's legacy format "
                            "(_use_new_zipfile_serialization=False); save it again with torch.save's default");
  }
  if (zip->hasRecord("constants.pkl"))  // TorchScript: torch.jit.save, and ventral's own checkpoints
    throw InputError(path + ": a TorchScript/LibTorch archive (a ventral checkpoint?), not a state_dict: evaluate its "
                            "run directory, or write a state_dict with `ventral export RUN --out FILE`");
  if (!zip->hasRecord("data.pkl")) throw InputError(path + ": a zip archive without data.pkl: not a torch.save file");
  verify_zip_checksums(path);  // LibTorch's reader would load a flipped bit as a different weight
  at::DataPtr pkl;
  size_t size = 0;
  try {
    std::tie(pkl, size) = zip->getRecord("data.pkl");
  } catch (const std::exception& e) {
    std::string why = e.what();
    throw InputError(path + ": cannot read data.pkl from the archive: " + why.substr(0, why.find('\n')));
  }
  PyPtr value;
  try {
    value = Unpickler(path, *zip, static_cast<const uint8_t*>(pkl.get()), size).run();
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {  // a record that fails its checks inside the zip reader
    std::string why = e.what();
    throw InputError(path + ": cannot read the archive: " + why.substr(0, why.find('\n')));
  }
  // Training scripts (CORnet's among them) save {"epoch": ..., "state_dict": {...}}.
  if (value->kind == PyValue::Dict)
    for (const auto& [k, v] : value->entries)
      if (k->kind == PyValue::Str && k->s == "state_dict" && v->kind == PyValue::Dict) {
        value = v;
        break;
      }
  if (value->kind != PyValue::Dict)
    throw InputError(path + ": holds a " + kind_name(*value) + ", not a state_dict (a dict of tensors)");
  std::map<std::string, torch::Tensor> state;
  for (const auto& [k, v] : value->entries) {
    if (k->kind != PyValue::Str || v->kind != PyValue::Tensor)
      throw InputError(path + ": not a state_dict: an entry is a " + kind_name(*k) + " -> " + kind_name(*v) +
                       ", not a name -> tensor");
    // A dict torch.save wrote names each entry once; a second value for a name (which Python's
    // unpickler, and so torch.load, would keep silently) means the file was made some other way.
    if (!state.emplace(k->s, v->tensor).second)
      throw InputError(path + ": not a state_dict: the entry " + printable(k->s) + " appears twice");
  }
  if (state.empty()) throw InputError(path + ": the state_dict is empty");
  return state;
}

}  // namespace ventral
