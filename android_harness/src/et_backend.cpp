// ExecuTorch through the Module API (executorch/extension/module/module.h), with the
// XNNPACK delegate, the optimized and quantized CPU kernels linked (see CMakeLists.txt).
#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <cstdio>
#include <cstdlib>
#include <unordered_set>

#include "backend.h"
#include "threadpool_compat.h"
#include "util.h"

#ifndef SLMH_EXECUTORCH_VERSION
#define SLMH_EXECUTORCH_VERSION "unknown"
#endif

namespace slmh {

namespace {

using executorch::aten::ScalarType;
using executorch::aten::SizesType;
using executorch::extension::Module;
using executorch::extension::TensorPtr;
using executorch::runtime::Error;
using executorch::runtime::EValue;
using executorch::runtime::Tag;

std::string describe(Error error) {
  char code[16];
  std::snprintf(code, sizeof code, "0x%x", static_cast<unsigned>(error));
  return std::string(executorch::runtime::to_string(error)) + " (" + code + ")";
}

Elem elem_of(ScalarType type) {
  switch (type) {
    case ScalarType::Float: return Elem::F32;
    case ScalarType::Double: return Elem::F64;
    case ScalarType::Half: return Elem::F16;
    case ScalarType::BFloat16: return Elem::BF16;
    case ScalarType::Long: return Elem::I64;
    case ScalarType::Int: return Elem::I32;
    case ScalarType::Short: return Elem::I16;
    case ScalarType::Byte:
    case ScalarType::Char:
    case ScalarType::Bool:
      return Elem::Byte;
    default:
      return Elem::Unsupported;
  }
}

// A tensor whose storage the backend owns, written in place between steps.
struct OwnedTensor {
  std::vector<uint64_t> storage;  // 8-byte aligned
  TensorPtr tensor;
  ScalarType type = ScalarType::Long;

  void allocate(std::vector<SizesType> sizes, ScalarType dtype) {
    int64_t numel = 1;
    for (auto s : sizes) numel *= s;
    size_t bytes = static_cast<size_t>(numel) * elem_size(elem_of(dtype));
    storage.assign((bytes + 7) / 8 + 1, 0);
    type = dtype;
    tensor = executorch::extension::make_tensor_ptr(std::move(sizes), storage.data(), dtype);
  }
  void* data() { return storage.data(); }
  // Integer element i (Long or Int storage).
  void set_int(size_t i, int64_t value) {
    if (type == ScalarType::Long) {
      static_cast<int64_t*>(data())[i] = value;
    } else {
      static_cast<int32_t*>(data())[i] = static_cast<int32_t>(value);
    }
  }
};

class ExecuTorchBackend : public Backend {
 public:
  std::string runtime_name() const override { return "executorch"; }
  std::string runtime_version() const override { return SLMH_EXECUTORCH_VERSION; }

  void configure_threads(int64_t threads) override {
    if (threads > 0) executorch_threadpool_reset(static_cast<uint32_t>(threads));
  }

  int64_t threads_in_effect() const override { return executorch_threadpool_size(); }

  void load(const Args& args) override {
    std::unique_ptr<executorch::runtime::EventTracer> tracer;
    if (!args.etdump.empty()) {
      auto etdump = std::make_unique<executorch::etdump::ETDumpGen>();
      etdump_ = etdump.get();
      tracer = std::move(etdump);
    }
    module_ = std::make_unique<Module>(args.model, Module::LoadMode::MmapUseMlockIgnoreErrors, std::move(tracer));
    Error err = module_->load();
    if (err != Error::Ok) throw LoadError("the program does not load: " + describe(err));
    auto names = module_->method_names();
    if (!names.ok()) throw LoadError("cannot list the program's methods: " + describe(names.error()));
    for (const auto& name : methods_used(args)) {
      if (!names->count(name)) throw LoadError("the program has no method '" + name + "'");
      if (module_->is_method_loaded(name)) continue;
      err = module_->load_method(name);
      if (err != Error::Ok) throw LoadError("cannot load method '" + name + "': " + describe(err));
    }
  }

  void prepare_llm(const Args& args, const std::vector<int64_t>& prompt) override {
    prefill_name_ = args.prefill_method;
    decode_name_ = args.decode_method;
    const auto p = static_cast<SizesType>(prompt.size());
    ScalarType prefill_type = token_type(prefill_name_);
    prefill_tokens_.allocate({1, p}, prefill_type);
    prefill_pos_.allocate({p}, position_type(prefill_name_));
    for (size_t i = 0; i < prompt.size(); ++i) {
      prefill_tokens_.set_int(i, prompt[i]);
      prefill_pos_.set_int(i, static_cast<int64_t>(i));
    }
    decode_token_.allocate({1, 1}, token_type(decode_name_));
    decode_pos_.allocate({1}, position_type(decode_name_));
    prefill_inputs_ = {EValue(*prefill_tokens_.tensor), EValue(*prefill_pos_.tensor)};
    decode_inputs_ = {EValue(*decode_token_.tensor), EValue(*decode_pos_.tensor)};
  }

  int64_t prefill() override { return argmax_logits(module_->execute(prefill_name_, prefill_inputs_), prefill_name_); }

  int64_t decode(int64_t token, int64_t pos) override {
    decode_token_.set_int(0, token);
    decode_pos_.set_int(0, pos);
    return argmax_logits(module_->execute(decode_name_, decode_inputs_), decode_name_);
  }

  void prepare_generic(const Args& args) override {
    generic_name_ = args.method;
    auto meta = module_->method_meta(generic_name_);
    if (!meta.ok()) throw LoadError("no metadata for method '" + generic_name_ + "': " + describe(meta.error()));
    SplitMix64 rng(static_cast<uint64_t>(args.seed));
    check_input_count(args.inputs, meta->num_inputs(), generic_name_);
    generic_tensors_.clear();
    generic_tensors_.resize(meta->num_inputs());
    generic_inputs_.clear();
    for (size_t i = 0; i < meta->num_inputs(); ++i) {
      auto tag = meta->input_tag(i);
      if (!tag.ok() || *tag != Tag::Tensor) {
        throw LoadError("input " + std::to_string(i) + " of method '" + generic_name_ +
                        "' is not a tensor; the generic workload feeds tensors only");
      }
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) throw LoadError("no metadata for input " + std::to_string(i) + ": " + describe(info.error()));
      ScalarType type = info->scalar_type();
      if (elem_of(type) == Elem::Unsupported) {
        throw LoadError("input " + std::to_string(i) + " has an unsupported dtype (" +
                        std::to_string(static_cast<int>(type)) + ")");
      }
      std::vector<SizesType> sizes(info->sizes().begin(), info->sizes().end());
      OwnedTensor& t = generic_tensors_[i];
      t.allocate(sizes, type);
      fill_input(args.inputs, i, t.data(), static_cast<size_t>(t.tensor->numel()), elem_of(type), rng,
                 "input " + std::to_string(i) + " of method '" + generic_name_ + "'");
      generic_inputs_.emplace_back(*t.tensor);
    }
  }

  void invoke() override {
    auto result = module_->execute(generic_name_, generic_inputs_);
    if (!result.ok()) throw RunError("method '" + generic_name_ + "' failed: " + describe(result.error()));
  }

  void finish(const Args& args) override {
    if (!etdump_) return;
    executorch::etdump::ETDumpResult result = etdump_->get_etdump_data();
    if (result.buf == nullptr || result.size == 0) throw RunError("the ETDump is empty");
    FILE* fh = std::fopen(args.etdump.c_str(), "wb");
    if (!fh) {
      std::free(result.buf);
      throw RunError("cannot write the ETDump to " + args.etdump);
    }
    size_t written = std::fwrite(result.buf, 1, result.size, fh);
    std::fclose(fh);
    std::free(result.buf);
    if (written != result.size) throw RunError("short write of the ETDump to " + args.etdump);
  }

 private:
  ScalarType input_type(const std::string& method, size_t index, ScalarType fallback) {
    auto meta = module_->method_meta(method);
    if (!meta.ok() || meta->num_inputs() <= index) {
      throw LoadError("method '" + method + "' does not take (tokens, input_pos): see the slmdeploy.llm/1 convention");
    }
    auto info = meta->input_tensor_meta(index);
    if (!info.ok()) return fallback;
    ScalarType type = info->scalar_type();
    if (type != ScalarType::Long && type != ScalarType::Int) {
      throw LoadError("input " + std::to_string(index) + " of method '" + method + "' is not an integer tensor");
    }
    return type;
  }
  ScalarType token_type(const std::string& method) { return input_type(method, 0, ScalarType::Long); }
  ScalarType position_type(const std::string& method) { return input_type(method, 1, ScalarType::Long); }

  static int64_t argmax_logits(const executorch::runtime::Result<std::vector<EValue>>& result,
                               const std::string& method) {
    if (!result.ok()) throw RunError("method '" + method + "' failed: " + describe(result.error()));
    if (result->empty() || !(*result)[0].isTensor()) throw RunError("method '" + method + "' returned no logits");
    const auto& logits = (*result)[0].toTensor();
    if (logits.scalar_type() != ScalarType::Float || logits.dim() < 1) {
      throw RunError("the logits of method '" + method + "' are not a float32 tensor");
    }
    const int64_t vocab = logits.size(logits.dim() - 1);
    const float* data = logits.const_data_ptr<float>();
    // The last position's logits (the convention returns [1, vocab]; [1, seq, vocab] works too).
    return argmax_f32(data + (logits.numel() - vocab), vocab);
  }

  std::unique_ptr<Module> module_;
  executorch::etdump::ETDumpGen* etdump_ = nullptr;  // owned by module_
  std::string prefill_name_, decode_name_, generic_name_;
  OwnedTensor prefill_tokens_, prefill_pos_, decode_token_, decode_pos_;
  std::vector<EValue> prefill_inputs_, decode_inputs_;
  std::vector<OwnedTensor> generic_tensors_;
  std::vector<EValue> generic_inputs_;
};

}  // namespace

std::unique_ptr<Backend> make_executorch_backend() { return std::make_unique<ExecuTorchBackend>(); }

}  // namespace slmh
