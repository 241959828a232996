// A runtime behind the workloads: ExecuTorch (Module API), LiteRT (C API) or llama.cpp (libllama).
//
// The workload loop (runner.cpp) times exactly one call of prefill()/decode()/invoke()
// per step; a backend does nothing in those calls but write the step's inputs into
// pre-allocated tensors, execute, and (LLM) take the argmax of the logits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "args.h"

namespace slmh {

class Json;

class Backend {
 public:
  virtual ~Backend() = default;

  // Runtime name and version for the trace header.
  virtual std::string runtime_name() const = 0;
  virtual std::string runtime_version() const = 0;

  // Applies the thread count; called before load(), outside the timed load.
  virtual void configure_threads(int64_t threads) = 0;
  // Loads the program and the methods/signatures the workload uses (the timed load).
  // Throws LoadError.
  virtual void load(const Args& args) = 0;
  // The thread pool size in effect after load().
  virtual int64_t threads_in_effect() const = 0;
  // Adds the runtime's own fields to the load event (LiteRT: the accelerators).
  virtual void describe_load(Json& load) const { (void)load; }

  // LLM workload: pre-allocates inputs for a prefill of `prompt` and single-token decodes.
  // Throws UsageError for a workload the program cannot run, LoadError otherwise.
  virtual void prepare_llm(const Args& args, const std::vector<int64_t>& prompt) = 0;
  // Before each run's prefill, outside the timed region: state a backend carries between
  // calls starts from zero again (LiteRT I/O caches; ExecuTorch keeps its cache inside the
  // program, where positions overwrite it).
  virtual void begin_run() {}
  // Executes the prefill (positions 0..P-1) and returns the argmax token. Throws RunError.
  virtual int64_t prefill() = 0;
  // Executes one decode step of `token` at `pos` and returns the argmax token. Throws RunError.
  virtual int64_t decode(int64_t token, int64_t pos) = 0;

  // Generic workload: pre-allocates seeded random inputs from the method's metadata.
  virtual void prepare_generic(const Args& args) = 0;
  // Executes the method once. Throws RunError.
  virtual void invoke() = 0;

  // After a complete run (ExecuTorch: writes the ETDump when asked for). Throws RunError.
  virtual void finish(const Args& args) { (void)args; }
};

std::unique_ptr<Backend> make_executorch_backend();
// Null when this build has no LiteRT (the caller reports a usage error).
std::unique_ptr<Backend> make_litert_backend();
// Null when this build has no llama.cpp (likewise).
std::unique_ptr<Backend> make_llamacpp_backend();

// The methods (ExecuTorch) or signatures (LiteRT) a workload calls, in load order.
inline std::vector<std::string> methods_used(const Args& args) {
  if (args.workload == "llm") return {args.prefill_method, args.decode_method};
  return {args.method};
}

// Index of the largest of `n` floats (the first one on ties, like torch.argmax).
inline int64_t argmax_f32(const float* values, int64_t n) {
  int64_t best = 0;
  float best_value = values[0];
  for (int64_t i = 1; i < n; ++i) {
    if (values[i] > best_value) {
      best_value = values[i];
      best = i;
    }
  }
  return best;
}

}  // namespace slmh
