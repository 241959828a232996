// llama.cpp (GGUF) through libllama's C API, driven the way llama-bench drives it, so the
// two measure the same thing (docs/native-harness.md, "llama.cpp"):
//
// - the model loads with llama_model_default_params() (mmap on, CPU weight repacking on),
//   n_gpu_layers -1 as llama-bench sets it (a CPU-only build offloads nothing);
// - the context has llama-bench's parameters: n_batch 2048, n_ubatch 512, f16 K and V cache,
//   flash attention auto, swa_full off; n_ctx is --max-seq-len (llama-bench uses P + G + depth,
//   which benchmarks/llamacpp_vs_llama_bench.py passes);
// - a ggml threadpool with llama-bench's defaults (ggml_threadpool_params_default(T), poll 50,
//   normal priority, no CPU mask) is attached, and llama_set_n_threads(T, T) set;
// - batches go through llama_batch_ext + llama_process, what llama-bench's common_batch calls,
//   and each call ends with llama_synchronize.
//
// The KV cache is emptied before each run (llama_memory_clear, outside the timed region),
// as llama-bench does before each repetition. Differences that remain by design: the prompt
// is --seed's token ids (llama-bench: std::rand()); each step also takes the argmax of the
// logits (llama-bench samples nothing and feeds random ids).
#include <llama.h>
#include <ggml-cpu.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend.h"
#include "util.h"

#ifndef SLMH_LLAMACPP_VERSION
#define SLMH_LLAMACPP_VERSION "unknown"
#endif

namespace slmh {

namespace {

void quiet_log(enum ggml_log_level level, const char* text, void* user_data) {
  (void)user_data;
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);  // failures still reach harness.stderr
}

class LlamaCppBackend : public Backend {
 public:
  ~LlamaCppBackend() override {
    if (prefill_batch_) llama_batch_ext_free(prefill_batch_);
    if (decode_batch_) llama_batch_ext_free(decode_batch_);
    if (ctx_) llama_free(ctx_);
    if (threadpool_) ggml_threadpool_free(threadpool_);
    if (model_) llama_model_free(model_);
    llama_backend_free();
  }

  std::string runtime_name() const override { return "llamacpp"; }
  std::string runtime_version() const override { return SLMH_LLAMACPP_VERSION; }

  void configure_threads(int64_t threads) override {
    threads_ = threads > 0 ? threads : static_cast<int64_t>(::sysconf(_SC_NPROCESSORS_ONLN));
    if (threads_ < 1) threads_ = 1;
  }

  int64_t threads_in_effect() const override { return threads_; }

  void load(const Args& args) override {
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = -1;  // llama-bench's default; nothing to offload to in a CPU build
    model_ = llama_model_load_from_file(args.model.c_str(), mparams);
    if (!model_) throw LoadError("llama.cpp could not load the model (not a GGUF it reads, or damaged)");

    n_ctx_ = args.max_seq_len > 0 ? args.max_seq_len : args.prompt_tokens + args.gen_tokens;
    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = static_cast<uint32_t>(n_ctx_);
    cparams.n_batch = 2048;
    cparams.n_ubatch = 512;
    cparams.type_k = GGML_TYPE_F16;
    cparams.type_v = GGML_TYPE_F16;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    cparams.swa_full = false;
    cparams.n_threads = cparams.n_threads_batch = static_cast<int32_t>(threads_);
    ctx_ = llama_init_from_model(model_, cparams);
    if (!ctx_) throw LoadError("llama.cpp could not create a context of " + std::to_string(n_ctx_) + " tokens");

    ggml_threadpool_params tpp = ggml_threadpool_params_default(static_cast<int>(threads_));
    tpp.poll = 50;  // llama-bench's --poll default
    threadpool_ = ggml_threadpool_new(&tpp);
    if (!threadpool_) throw LoadError("cannot create a ggml threadpool of " + std::to_string(threads_) + " threads");
    llama_attach_threadpool(ctx_, threadpool_, nullptr);
    llama_set_n_threads(ctx_, static_cast<int32_t>(threads_), static_cast<int32_t>(threads_));
    vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(model_));
  }

  void describe_load(Json& load) const override {
    load.raw("llamacpp", Json()
                             .num("n_ctx", n_ctx_)
                             .num("n_batch", 2048)
                             .num("n_ubatch", 512)
                             .str("type_k", "f16")
                             .str("type_v", "f16")
                             .str("flash_attn", "auto")
                             .boolean("mmap", true)
                             .num("model_bytes", static_cast<int64_t>(llama_model_size(model_)))
                             .num("params", static_cast<int64_t>(llama_model_n_params(model_)))
                             .str("system_info", llama_print_system_info())
                             .done());
  }

  void prepare_llm(const Args& args, const std::vector<int64_t>& prompt) override {
    if (args.vocab_size > vocab_) {
      throw UsageError("--vocab-size " + std::to_string(args.vocab_size) + " exceeds the model's vocabulary (" +
                       std::to_string(vocab_) + " tokens)");
    }
    if (static_cast<int64_t>(prompt.size()) + args.gen_tokens > n_ctx_) {
      throw UsageError("prompt + generation exceed the context of " + std::to_string(n_ctx_) + " tokens");
    }
    prefill_batch_ = llama_batch_ext_init(ctx_);
    decode_batch_ = llama_batch_ext_init(ctx_);
    if (!prefill_batch_ || !decode_batch_) throw LoadError("cannot allocate llama.cpp batches");
    for (size_t i = 0; i < prompt.size(); ++i) {
      const int32_t index = llama_batch_ext_add_token(prefill_batch_, 0, static_cast<llama_token>(prompt[i]));
      if (index < 0) throw LoadError("the prompt does not fit a llama.cpp batch (error " + std::to_string(index) + ")");
      const llama_pos pos = static_cast<llama_pos>(i);
      llama_batch_ext_set_pos(prefill_batch_, index, &pos);
      if (i + 1 == prompt.size()) llama_batch_ext_set_output_logits(prefill_batch_, index, true);
    }
  }

  void begin_run() override { llama_memory_clear(llama_get_memory(ctx_), false); }

  int64_t prefill() override { return process(prefill_batch_, "the prefill"); }

  int64_t decode(int64_t token, int64_t pos) override {
    llama_batch_ext_clear(decode_batch_);
    const int32_t index = llama_batch_ext_add_token(decode_batch_, 0, static_cast<llama_token>(token));
    const llama_pos position = static_cast<llama_pos>(pos);
    llama_batch_ext_set_pos(decode_batch_, index, &position);
    llama_batch_ext_set_output_logits(decode_batch_, index, true);
    return process(decode_batch_, "decode step at position " + std::to_string(pos));
  }

  void prepare_generic(const Args& args) override {
    (void)args;
    throw UsageError("a GGUF model runs the llm workload only (llama.cpp has no generic method to invoke)");
  }
  void invoke() override { throw RunError("a GGUF model runs the llm workload only"); }

 private:
  int64_t process(llama_batch_ext* batch, const std::string& what) {
    const int32_t code = llama_process(ctx_, LLAMA_PROCESS_TYPE_DECODE, batch);
    if (code != 0) throw RunError("llama_process failed for " + what + " (returned " + std::to_string(code) + ")");
    llama_synchronize(ctx_);
    const float* logits = llama_get_logits_ith(ctx_, -1);
    if (!logits) throw RunError("llama.cpp returned no logits for " + what);
    return argmax_f32(logits, vocab_);
  }

  llama_model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  ggml_threadpool* threadpool_ = nullptr;
  llama_batch_ext* prefill_batch_ = nullptr;
  llama_batch_ext* decode_batch_ = nullptr;
  int64_t threads_ = 1;
  int64_t n_ctx_ = 0;
  int64_t vocab_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_llamacpp_backend() { return std::make_unique<LlamaCppBackend>(); }

}  // namespace slmh
