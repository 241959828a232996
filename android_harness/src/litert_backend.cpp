// LiteRT (.tflite) through the LiteRT C API's CompiledModel (libLiteRt.so): the CPU
// accelerator is XNNPACK; --accelerator gpu adds the GPU accelerator (Android builds
// that ship libLiteRtGpuAccelerator.so / libLiteRtOpenClAccelerator.so beside the harness).
//
// LLM workload on LiteRT: the prefill and decode signatures take the token ids (the
// input named "tokens", else the first input) and the positions (the input named
// "input_pos", else the second), int32 or int64, with static shapes: the prefill
// signature's token count must equal --prompt-tokens, the decode signature's must be 1.
// The logits are the output named "logits", else the first output.
//
// State between calls (slmdeploy.llm-kvio/1, the TFLite exporter's KV cache): an output
// with the name of an input of the same signature (k_cache_0, v_cache_0, ...) is state.
// Each state name has two buffers shared by all signatures; a call reads one and writes
// the other, and the next call swaps them -- no copies, and the decode signature reads
// what the prefill wrote. State is zeroed before each run (outside the timed region);
// every other input is zero-filled once.
//
// --litert-profile PATH: the compilation options carry the runtime option
// "enable_profiling = true", so the compiled model owns a LiteRT profiler that the TFLite
// interpreter and the XNNPACK delegate report to. It records the measured runs only: it is
// stopped and cleared before the warm-up runs, started after the last warm-up call, and
// after each measured call the number of events recorded so far is noted (one counter
// read), which attributes every event to its call, run and phase. finish() writes the
// events as JSON (schema: docs/native-harness.md, "LiteRT op profile").
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backend.h"
#include "litert_c_api.h"
#include "threadpool_compat.h"
#include "util.h"

#ifndef SLMH_LITERT_VERSION
#define SLMH_LITERT_VERSION "unknown"
#endif

namespace slmh {

namespace {

void check(LiteRtStatus status, const std::string& what) {
  if (status != SLMH_LITERT_OK) throw LoadError(what + " failed (LiteRtStatus " + std::to_string(status) + ")");
}

Elem elem_of(int type) {
  switch (type) {
    case kSlmhLiteRtFloat32: return Elem::F32;
    case kSlmhLiteRtFloat64: return Elem::F64;
    case kSlmhLiteRtFloat16: return Elem::F16;
    case kSlmhLiteRtInt64: return Elem::I64;
    case kSlmhLiteRtInt32: return Elem::I32;
    case kSlmhLiteRtInt16: return Elem::I16;
    case kSlmhLiteRtUInt8:
    case kSlmhLiteRtInt8:
    case kSlmhLiteRtBool:
      return Elem::Byte;
    default:
      return Elem::Unsupported;
  }
}

size_t element_size(int type) { return elem_size(elem_of(type)); }

struct Tensor {
  std::string name;
  SlmhLiteRtRankedTensorType type{};
  size_t numel = 0;
  LiteRtTensorBuffer buffer = nullptr;  // owned; null for state (the pool owns those)
  void* host = nullptr;                 // direct host pointer when the buffer lives in host memory
  bool state = false;
};

struct Signature {
  size_t index = 0;
  std::string key;
  std::vector<Tensor> inputs, outputs;
  // The buffers of a call, by state parity (identical when the signature has no state).
  std::vector<LiteRtTensorBuffer> input_buffers[2], output_buffers[2];
  bool has_state = false;
};

// The two buffers of one state tensor.
struct StatePair {
  Tensor slot[2];
};

// Maps a buffer for access; with a host pointer this is free, otherwise lock/unlock.
class Access {
 public:
  Access(Tensor& t, int mode) : t_(t) {
    if (t_.host) {
      data_ = t_.host;
    } else if (LiteRtLockTensorBuffer(t_.buffer, &data_, mode) != SLMH_LITERT_OK) {
      throw RunError("cannot map tensor '" + t_.name + "'");
    }
  }
  ~Access() {
    if (!t_.host) LiteRtUnlockTensorBuffer(t_.buffer);
  }
  void* data() const { return data_; }

 private:
  Tensor& t_;
  void* data_ = nullptr;
};

void write_int(Tensor& t, size_t i, int64_t value) {
  Access access(t, kSlmhLockWrite);
  if (t.type.element_type == kSlmhLiteRtInt64) {
    static_cast<int64_t*>(access.data())[i] = value;
  } else {
    static_cast<int32_t*>(access.data())[i] = static_cast<int32_t>(value);
  }
}

class LiteRtBackend : public Backend {
 public:
  ~LiteRtBackend() override {
    for (auto& sig : signatures_) {
      for (auto* list : {&sig.inputs, &sig.outputs}) {
        for (auto& t : *list) {
          if (t.buffer) LiteRtDestroyTensorBuffer(t.buffer);
        }
      }
    }
    for (auto& pair : states_) {
      for (auto& t : pair.second.slot) {
        if (t.buffer) LiteRtDestroyTensorBuffer(t.buffer);
      }
    }
    if (compiled_) LiteRtDestroyCompiledModel(compiled_);
    if (options_) LiteRtDestroyOptions(options_);
    if (model_) LiteRtDestroyModel(model_);
    if (env_) LiteRtDestroyEnvironment(env_);
  }

  std::string runtime_name() const override { return "tflite"; }
  std::string runtime_version() const override { return SLMH_LITERT_VERSION; }

  void configure_threads(int64_t threads) override { threads_ = threads > 0 ? threads : default_thread_count(); }

  void describe_load(Json& load) const override {
    load.str("accelerator", accelerator_);
    if (accelerators_known_) load.strs("accelerators", accelerator_names_);
    if (fully_accelerated_ >= 0) load.boolean("fully_accelerated", fully_accelerated_ == 1);
  }
  int64_t threads_in_effect() const override { return threads_; }

  void load(const Args& args) override {
    profile_path_ = args.litert_profile;
    check(LiteRtCreateEnvironment(0, nullptr, &env_), "LiteRtCreateEnvironment");
    check(LiteRtCreateModelFromFile(env_, args.model.c_str(), &model_), "loading " + args.model);
    check(LiteRtCreateOptions(&options_), "LiteRtCreateOptions");
    const int accelerators = args.accelerator == "gpu" ? (kSlmhLiteRtGpu | kSlmhLiteRtCpu) : kSlmhLiteRtCpu;
    check(LiteRtSetOptionsHardwareAccelerators(options_, accelerators), "selecting the accelerators");
    // The CPU (XNNPACK) options: the TOML payload LiteRT's LrtGetOpaqueCpuOptionsData builds.
    std::string toml = "num_threads = " + std::to_string(threads_) + "\n";
    char* payload = static_cast<char*>(std::malloc(toml.size() + 1));
    std::memcpy(payload, toml.c_str(), toml.size() + 1);
    LiteRtOpaqueOptions cpu = nullptr;
    check(LiteRtCreateOpaqueOptions("xnnpack", payload, std::free, &cpu), "creating the CPU options");
    check(LiteRtAddOpaqueOptions(options_, cpu), "adding the CPU options");
    if (!profile_path_.empty()) {
      // The runtime options: the TOML payload LiteRT's LrtGetOpaqueRuntimeOptionsData builds.
      const char* text = "enable_profiling = true\n";
      char* runtime_payload = static_cast<char*>(std::malloc(std::strlen(text) + 1));
      std::memcpy(runtime_payload, text, std::strlen(text) + 1);
      LiteRtOpaqueOptions runtime = nullptr;
      check(LiteRtCreateOpaqueOptions(SLMH_LITERT_RUNTIME_OPTIONS_ID, runtime_payload, std::free, &runtime),
            "creating the runtime options");
      check(LiteRtAddOpaqueOptions(options_, runtime), "adding the runtime options");
    }
    check(LiteRtCreateCompiledModel(env_, model_, options_, &compiled_),
          args.accelerator == "gpu" ? "compiling " + args.model + " for the GPU accelerator (see LiteRT's log above)"
                                    : "compiling " + args.model);
    check_accelerators(args);
    if (!profile_path_.empty()) {
      check(LiteRtCompiledModelGetProfiler(compiled_, &profiler_), "getting the profiler (--litert-profile)");
      if (!profiler_) throw LoadError("the compiled model has no profiler (--litert-profile)");
    }

    for (const auto& name : methods_used(args)) {
      if (find(name) == nullptr) open_signature(name);
    }
  }

  void prepare_llm(const Args& args, const std::vector<int64_t>& prompt) override {
    prefill_ = find(args.prefill_method);
    decode_ = find(args.decode_method);
    bind_llm(*prefill_, prefill_tokens_, prefill_pos_, prefill_logits_);
    bind_llm(*decode_, decode_tokens_, decode_pos_, decode_logits_);
    if (prefill_tokens_->numel != prompt.size()) {
      throw UsageError("prefill signature '" + prefill_->key + "' takes " + std::to_string(prefill_tokens_->numel) +
                       " tokens; pass --prompt-tokens " + std::to_string(prefill_tokens_->numel));
    }
    if (decode_tokens_->numel != 1) {
      throw UsageError("decode signature '" + decode_->key + "' takes " + std::to_string(decode_tokens_->numel) +
                       " tokens per call, not 1");
    }
    for (Signature* sig : {prefill_, decode_}) zero_inputs(*sig);
    for (size_t i = 0; i < prompt.size(); ++i) {
      write_int(*prefill_tokens_, i, prompt[i]);
      if (prefill_pos_) write_int(*prefill_pos_, i, static_cast<int64_t>(i));
    }
    prepare_profile(args, 1 + args.gen_tokens);
  }

  void begin_run() override {
    for (auto& pair : states_) {
      for (auto& t : pair.second.slot) zero(t);
    }
    parity_ = 0;
  }

  int64_t prefill() override {
    run(*prefill_);
    return argmax(*prefill_logits_);
  }

  int64_t decode(int64_t token, int64_t pos) override {
    write_int(*decode_tokens_, 0, token);
    if (decode_pos_) write_int(*decode_pos_, 0, pos);
    run(*decode_);
    return argmax(*decode_logits_);
  }

  void prepare_generic(const Args& args) override {
    generic_ = find(args.method);
    SplitMix64 rng(static_cast<uint64_t>(args.seed));
    check_input_count(args.inputs, generic_->inputs.size(), generic_->key);
    for (size_t i = 0; i < generic_->inputs.size(); ++i) {
      auto& t = generic_->inputs[i];
      Access access(t, kSlmhLockWrite);
      fill_input(args.inputs, i, access.data(), t.numel, elem_of(t.type.element_type), rng,
                 "input '" + t.name + "' of signature '" + generic_->key + "'");
    }
    prepare_profile(args, args.iterations);
  }

  void invoke() override { run(*generic_); }

  void finish(const Args& args) override {
    if (profiler_) write_profile(args);
  }

 private:
  // What is in effect after compiling: the environment's registered accelerators and
  // whether the model is fully accelerated. A GPU request with no GPU accelerator
  // registered is a load error -- LiteRT would run it on the CPU, and the run would be
  // labelled GPU.
  void check_accelerators(const Args& args) {
    accelerator_ = args.accelerator;
    bool gpu_registered = false;
    LiteRtParamIndex count = 0;
    if (LiteRtGetNumAccelerators(env_, &count) == SLMH_LITERT_OK) {
      accelerators_known_ = true;
      for (LiteRtParamIndex i = 0; i < count; ++i) {
        LiteRtAccelerator accelerator = nullptr;
        const char* name = nullptr;
        int hardware = 0;
        if (LiteRtGetAccelerator(env_, i, &accelerator) != SLMH_LITERT_OK || !accelerator) continue;
        if (LiteRtGetAcceleratorName(accelerator, &name) != SLMH_LITERT_OK || !name) name = "unknown";
        accelerator_names_.emplace_back(name);
        if (LiteRtGetAcceleratorHardwareSupport(accelerator, &hardware) == SLMH_LITERT_OK &&
            (hardware & kSlmhLiteRtGpu)) {
          gpu_registered = true;
        }
      }
    }
    bool fully = false;
    if (args.accelerator == "gpu") {
      // Fully accelerated means every op on the GPU (the CPU is the fallback for the rest).
      if (LiteRtCompiledModelIsNonCpuFullyAccelerated(compiled_, &fully) == SLMH_LITERT_OK) fully_accelerated_ = fully;
    } else if (LiteRtCompiledModelIsFullyAccelerated(compiled_, &fully) == SLMH_LITERT_OK) {
      fully_accelerated_ = fully;
    }
    if (args.accelerator == "gpu" && !gpu_registered) {
      std::string names;
      for (const auto& n : accelerator_names_) names += (names.empty() ? "" : ", ") + n;
      throw LoadError(
          "--accelerator gpu: no GPU accelerator is available in this LiteRT build (registered: " +
          (names.empty() ? std::string("none") : names) +
          "); on Android ship the LiteRT GPU accelerator library (libLiteRtGpuAccelerator.so, "
          "libLiteRtClGlAccelerator.so or libLiteRtOpenClAccelerator.so from the LiteRT Maven AAR) next to "
          "libLiteRt.so, or run with --accelerator cpu");
    }
  }

  Signature* find(const std::string& key) {
    for (auto& sig : signatures_) {
      if (sig.key == key) return &sig;
    }
    return nullptr;
  }

  // Resolves `key` to a signature of the model and allocates its buffers. The default
  // name "forward" also selects a model's only signature (litert-torch names a single
  // signature "serving_default").
  void open_signature(const std::string& key) {
    LiteRtParamIndex count = 0;
    check(LiteRtGetNumModelSignatures(model_, &count), "listing signatures");
    std::vector<std::string> keys;
    LiteRtSignature found = nullptr;
    size_t found_index = 0;
    for (LiteRtParamIndex i = 0; i < count; ++i) {
      LiteRtSignature sig;
      const char* name = nullptr;
      check(LiteRtGetModelSignature(model_, i, &sig), "reading signature " + std::to_string(i));
      check(LiteRtGetSignatureKey(sig, &name), "reading a signature key");
      keys.emplace_back(name ? name : "");
      if (keys.back() == key) {
        found = sig;
        found_index = i;
      }
    }
    if (!found && key == "forward" && count == 1) {
      check(LiteRtGetModelSignature(model_, 0, &found), "reading signature 0");
      found_index = 0;
    }
    if (!found) {
      std::string all;
      for (const auto& k : keys) all += (all.empty() ? "" : ", ") + k;
      throw LoadError("the model has no signature '" + key + "' (it has: " + all + ")");
    }
    Signature sig;
    sig.index = found_index;
    sig.key = key;
    LiteRtParamIndex n_in = 0, n_out = 0;
    check(LiteRtGetNumSignatureInputs(found, &n_in), "counting inputs");
    check(LiteRtGetNumSignatureOutputs(found, &n_out), "counting outputs");
    std::vector<std::string> in_names, out_names;
    for (LiteRtParamIndex i = 0; i < n_in; ++i) in_names.push_back(io_name(found, i, true));
    for (LiteRtParamIndex i = 0; i < n_out; ++i) out_names.push_back(io_name(found, i, false));
    auto is_state = [&](const std::string& name, const std::vector<std::string>& others) {
      return !name.empty() && std::find(others.begin(), others.end(), name) != others.end();
    };
    for (LiteRtParamIndex i = 0; i < n_in; ++i) {
      sig.inputs.push_back(make_tensor(found, i, true, sig.index, is_state(in_names[i], out_names)));
    }
    for (LiteRtParamIndex i = 0; i < n_out; ++i) {
      sig.outputs.push_back(make_tensor(found, i, false, sig.index, is_state(out_names[i], in_names)));
    }
    for (int parity = 0; parity < 2; ++parity) {
      for (auto& t : sig.inputs) {
        sig.input_buffers[parity].push_back(t.state ? states_.at(t.name).slot[parity].buffer : t.buffer);
      }
      for (auto& t : sig.outputs) {
        sig.output_buffers[parity].push_back(t.state ? states_.at(t.name).slot[1 - parity].buffer : t.buffer);
      }
    }
    for (auto& t : sig.inputs) sig.has_state = sig.has_state || t.state;
    signatures_.push_back(std::move(sig));
  }

  static std::string io_name(LiteRtSignature sig, LiteRtParamIndex i, bool input) {
    const char* name = nullptr;
    const std::string what = std::string(input ? "input " : "output ") + std::to_string(i);
    check(input ? LiteRtGetSignatureInputName(sig, i, &name) : LiteRtGetSignatureOutputName(sig, i, &name),
          "naming " + what);
    return name ? name : "";
  }

  // A signature input/output. State tensors get no buffer of their own: the first
  // signature that has one allocates its pair in states_.
  Tensor make_tensor(LiteRtSignature sig, LiteRtParamIndex i, bool input, size_t sig_index, bool state) {
    Tensor t;
    LiteRtTensor tensor = nullptr;
    const std::string what = std::string(input ? "input " : "output ") + std::to_string(i);
    if (input) {
      check(LiteRtGetSignatureInputTensorByIndex(sig, i, &tensor), "reading " + what);
    } else {
      check(LiteRtGetSignatureOutputTensorByIndex(sig, i, &tensor), "reading " + what);
    }
    t.name = io_name(sig, i, input);
    t.state = state;
    check(LiteRtGetRankedTensorType(tensor, &t.type), "the type of " + what + " (an unranked tensor?)");
    LiteRtTensorBufferRequirements req = nullptr;
    if (input) {
      check(LiteRtGetCompiledModelInputBufferRequirements(compiled_, sig_index, i, &req), "requirements of " + what);
    } else {
      check(LiteRtGetCompiledModelOutputBufferRequirements(compiled_, sig_index, i, &req), "requirements of " + what);
    }
    size_t bytes = 0;
    check(LiteRtGetTensorBufferRequirementsBufferSize(req, &bytes), "buffer size of " + what);
    const size_t elem = element_size(t.type.element_type);
    if (elem == 0) throw LoadError(what + " ('" + t.name + "') has an unsupported element type");
    size_t numel = 1;
    for (unsigned d = 0; d < t.type.rank && d < SLMH_LITERT_MAX_RANK; ++d) {
      numel *= static_cast<size_t>(t.type.dimensions[d] > 0 ? t.type.dimensions[d] : 1);
    }
    // The layout is trusted only when it agrees with the buffer the runtime asks for.
    t.numel = numel * elem <= bytes ? numel : bytes / elem;
    auto allocate = [&](Tensor& owner) {
      check(LiteRtCreateManagedTensorBufferFromRequirements(env_, &owner.type, req, &owner.buffer),
            "allocating " + what);
      void* host = nullptr;
      if (LiteRtGetTensorBufferHostMemory(owner.buffer, &host) == SLMH_LITERT_OK) owner.host = host;
    };
    if (!state) {
      allocate(t);
    } else if (!states_.count(t.name)) {
      StatePair& pair = states_[t.name];
      for (auto& slot : pair.slot) {
        slot = t;
        allocate(slot);
      }
    } else if (states_.at(t.name).slot[0].numel != t.numel) {
      throw LoadError("state tensor '" + t.name + "' has different sizes in different signatures");
    }
    return t;
  }

  static Tensor* by_name(std::vector<Tensor>& list, const char* name, int fallback) {
    for (auto& t : list) {
      if (t.name == name) return &t;
    }
    return fallback >= 0 && static_cast<size_t>(fallback) < list.size() ? &list[static_cast<size_t>(fallback)]
                                                                         : nullptr;
  }

  void bind_llm(Signature& sig, Tensor*& tokens, Tensor*& pos, Tensor*& logits) {
    tokens = by_name(sig.inputs, "tokens", 0);
    pos = by_name(sig.inputs, "input_pos", 1);
    logits = by_name(sig.outputs, "logits", 0);
    for (Tensor* t : {tokens, pos}) {
      if (t && t->type.element_type != kSlmhLiteRtInt32 && t->type.element_type != kSlmhLiteRtInt64) {
        throw LoadError("input '" + t->name + "' of signature '" + sig.key + "' is not int32/int64");
      }
    }
    if (!tokens || !logits) throw LoadError("signature '" + sig.key + "' does not take tokens and return logits");
    if (logits->type.element_type != kSlmhLiteRtFloat32) {
      throw LoadError("the logits of signature '" + sig.key + "' are not float32");
    }
    if (tokens == pos) pos = nullptr;
  }

  static void zero(Tensor& t) {
    Access access(t, kSlmhLockWrite);
    std::memset(access.data(), 0, t.numel * element_size(t.type.element_type));
  }

  static void zero_inputs(Signature& sig) {
    for (auto& t : sig.inputs) {
      if (!t.state) zero(t);
    }
  }

  void run(Signature& sig) {
    auto& in = sig.input_buffers[parity_];
    auto& out = sig.output_buffers[parity_];
    LiteRtStatus status = LiteRtRunCompiledModel(compiled_, sig.index, in.size(), in.data(), out.size(), out.data());
    if (status != SLMH_LITERT_OK) {
      throw RunError("signature '" + sig.key + "' failed (LiteRtStatus " + std::to_string(status) + ")");
    }
    if (sig.has_state) parity_ ^= 1;  // what was written is what the next call reads
    if (profiler_) note_call(sig);
  }

  // --litert-profile: the measured calls are those after warmup * calls_per_run.
  void prepare_profile(const Args& args, int64_t calls_per_run) {
    if (!profiler_) return;
    calls_per_run_ = calls_per_run;
    warm_calls_ = args.warmup * calls_per_run;
    profiled_.reserve(static_cast<size_t>(args.runs * calls_per_run));
    check(LiteRtStopProfiler(profiler_), "stopping the profiler");
    check(LiteRtResetProfiler(profiler_), "resetting the profiler");
    if (warm_calls_ == 0) check(LiteRtStartProfiler(profiler_), "starting the profiler");
  }

  // After each call (inside the timed region: a counter read, or the profiler's start).
  void note_call(const Signature& sig) {
    const int64_t index = calls_++;
    if (index + 1 == warm_calls_) {  // the last warm-up call: profile from the next one
      if (LiteRtResetProfiler(profiler_) != SLMH_LITERT_OK || LiteRtStartProfiler(profiler_) != SLMH_LITERT_OK) {
        throw RunError("cannot start the LiteRT profiler");
      }
    } else if (index >= warm_calls_) {
      int events = 0;
      LiteRtGetNumProfilerEvents(profiler_, &events);
      profiled_.push_back({&sig, events});
    }
  }

  // The event kinds written (tflite::Profiler::EventType); null: not written (telemetry
  // events, whose "elapsed" field holds a status code, not a time).
  static const char* event_kind(int type) {
    switch (type) {
      case kSlmhProfDefault: return "default";
      case kSlmhProfOperatorInvoke: return "operator";
      case kSlmhProfDelegateOperatorInvoke: return "delegate_operator";
      case kSlmhProfDelegateProfiledOperatorInvoke: return "delegate_profiled_operator";
      case kSlmhProfGeneralRuntimeInstrumentation: return "runtime_instrumentation";
      default: return nullptr;
    }
  }

  static const char* event_source(int source) {
    switch (source) {
      case kSlmhSourceLiteRt: return "litert";
      case kSlmhSourceTfLiteInterpreter: return "tflite_interpreter";
      case kSlmhSourceTfLiteDelegate: return "tflite_delegate";
      default: return "unknown";
    }
  }

  // Writes --litert-profile after a complete run (schema: docs/native-harness.md).
  void write_profile(const Args& args) {
    check_stop(LiteRtStopProfiler(profiler_), "stopping the profiler");
    int count = 0;
    check_stop(LiteRtGetNumProfilerEvents(profiler_, &count), "counting the profiler's events");
    const int noted = profiled_.empty() ? 0 : profiled_.back().events_end;
    if (count != noted || static_cast<int64_t>(profiled_.size()) != args.runs * calls_per_run_) {
      throw RunError("the LiteRT profiler holds " + std::to_string(count) + " events, the " +
                     std::to_string(profiled_.size()) + " measured calls recorded " + std::to_string(noted) +
                     " (events dropped?)");
    }
    std::vector<SlmhProfiledEventData> events(static_cast<size_t>(count > 0 ? count : 1));
    if (count > 0) {
      check_stop(LiteRtGetProfilerEvents(profiler_, count, events.data()), "reading the profiler's events");
    }

    std::string lines;       // the event records
    std::string calls = "[";  // the call records
    int64_t written = 0;
    for (size_t k = 0, i = 0; k < profiled_.size(); ++k) {
      const int64_t first = written;
      for (; i < static_cast<size_t>(profiled_[k].events_end); ++i) {
        const SlmhProfiledEventData& e = events[i];
        const char* kind = event_kind(e.event_type);
        if (!kind) continue;
        const bool op = e.event_type != kSlmhProfDefault && e.event_type != kSlmhProfGeneralRuntimeInstrumentation;
        Json line;
        line.str("name", e.tag ? e.tag : "").str("kind", kind).str("source", event_source(e.event_source));
        line.raw("node", op ? std::to_string(e.event_metadata1) : "null");
        line.raw("subgraph", op ? std::to_string(e.event_metadata2) : "null");
        line.num("call", static_cast<int64_t>(k));
        // Delegate-profiled events carry a duration only (the delegate reports them after the fact).
        line.raw("start_us", e.start_timestamp_us ? std::to_string(e.start_timestamp_us) : "null");
        line.num("elapsed_us", static_cast<int64_t>(e.elapsed_time_us));
        lines += (written ? ",\n" : "\n") + line.done();
        ++written;
      }
      const int64_t run = static_cast<int64_t>(k) / calls_per_run_;
      const int64_t step = static_cast<int64_t>(k) % calls_per_run_;
      const char* phase = args.workload == "llm" ? (step == 0 ? "prefill" : "decode") : "forward";
      calls += std::string(k ? ",\n" : "\n") + Json()
                                                  .num("call", static_cast<int64_t>(k))
                                                  .num("run", run)
                                                  .str("phase", phase)
                                                  .str("signature", profiled_[k].sig->key)
                                                  .num("first_event", first)
                                                  .num("events", written - first)
                                                  .done();
    }
    std::string head = Json()
                           .str("format", "slmdeploy.litert-profile/1")
                           .str("runtime_version", SLMH_LITERT_VERSION)
                           .str("model", args.model)
                           .str("workload", args.workload)
                           .str("accelerator", args.accelerator)
                           .num("threads", threads_)
                           .num("warmup", args.warmup)
                           .num("runs", args.runs)
                           .num("calls_per_run", calls_per_run_)
                           .done();
    head.pop_back();  // reopen the object for the two arrays
    const std::string text = head + ",\"calls\":" + calls + "\n],\"events\":[" + lines + "\n]}\n";
    FILE* fh = std::fopen(profile_path_.c_str(), "w");
    if (!fh) throw RunError("cannot write --litert-profile file " + profile_path_);
    const bool ok = std::fwrite(text.data(), 1, text.size(), fh) == text.size();
    if (std::fclose(fh) != 0 || !ok) throw RunError("cannot write --litert-profile file " + profile_path_);
  }

  static void check_stop(LiteRtStatus status, const std::string& what) {
    if (status != SLMH_LITERT_OK) throw RunError(what + " failed (LiteRtStatus " + std::to_string(status) + ")");
  }

  int64_t argmax(Tensor& logits) {
    Access access(logits, kSlmhLockRead);
    const int64_t vocab = logits.type.rank ? logits.type.dimensions[logits.type.rank - 1] : 0;
    const int64_t n = vocab > 0 && static_cast<size_t>(vocab) <= logits.numel ? vocab : static_cast<int64_t>(logits.numel);
    return argmax_f32(static_cast<const float*>(access.data()) + (logits.numel - static_cast<size_t>(n)), n);
  }

  LiteRtEnvironment env_ = nullptr;
  LiteRtModel model_ = nullptr;
  LiteRtOptions options_ = nullptr;
  LiteRtCompiledModel compiled_ = nullptr;
  int64_t threads_ = 1;
  // What check_accelerators() found (the load event's accelerator fields).
  std::string accelerator_ = "cpu";
  std::vector<std::string> accelerator_names_;
  bool accelerators_known_ = false;
  int fully_accelerated_ = -1;  // -1: the runtime could not tell
  std::vector<Signature> signatures_;  // complete after load(); the pointers below point into it
  std::map<std::string, StatePair> states_;
  int parity_ = 0;  // which buffer of each state pair the next call reads
  // --litert-profile
  struct ProfiledCall {
    const Signature* sig;
    int events_end;  // events recorded once this call returned
  };
  std::string profile_path_;
  LiteRtProfiler profiler_ = nullptr;  // owned by compiled_
  int64_t calls_ = 0, warm_calls_ = 0, calls_per_run_ = 1;
  std::vector<ProfiledCall> profiled_;
  Signature *prefill_ = nullptr, *decode_ = nullptr, *generic_ = nullptr;
  Tensor *prefill_tokens_ = nullptr, *prefill_pos_ = nullptr, *prefill_logits_ = nullptr;
  Tensor *decode_tokens_ = nullptr, *decode_pos_ = nullptr, *decode_logits_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_litert_backend() { return std::make_unique<LiteRtBackend>(); }

}  // namespace slmh
