// bare_loop: the reference for the harness's own overhead (benchmarks/native_vs_python.py).
//
// The same program, method, inputs and Module API calls as the harness's LLM workload,
// with nothing else: no trace, no telemetry thread, no memory reads, no classes. Each run
// is timed as a whole (decode_step_mean_ns: two clock reads for G steps) and step by step
// (step_ns, one clock read per step, ~0.01% of a step), so both the harness's run figures
// and its per-step distribution have a reference.
//
//   bare_loop --model model.pte --prompt-tokens 64 --gen-tokens 32 --vocab-size 4096
//             [--runs 5] [--warmup 1] [--seed 0] [--threads 0] [--method forward]
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend.h"
#include "threadpool_compat.h"
#include "util.h"

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::EValue;

int main(int argc, char** argv) {
  std::string model, method = "forward";
  int64_t prompt_tokens = 64, gen_tokens = 32, vocab = 0, runs = 5, warmup = 1, seed = 0, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--model") model = value;
    else if (flag == "--method") method = value;
    else if (flag == "--prompt-tokens") prompt_tokens = std::atoll(value);
    else if (flag == "--gen-tokens") gen_tokens = std::atoll(value);
    else if (flag == "--vocab-size") vocab = std::atoll(value);
    else if (flag == "--runs") runs = std::atoll(value);
    else if (flag == "--warmup") warmup = std::atoll(value);
    else if (flag == "--seed") seed = std::atoll(value);
    else if (flag == "--threads") threads = std::atoll(value);
    else {
      std::fprintf(stderr, "bare_loop: unknown argument %s\n", flag.c_str());
      return 2;
    }
  }
  if (model.empty() || vocab < 1 || prompt_tokens < 1 || gen_tokens < 1) {
    std::fprintf(stderr, "usage: bare_loop --model PATH --prompt-tokens P --gen-tokens G --vocab-size V\n");
    return 2;
  }
  if (threads > 0) slmh::executorch_threadpool_reset(static_cast<uint32_t>(threads));
  Module module(model, Module::LoadMode::MmapUseMlockIgnoreErrors);
  if (module.load_method(method) != executorch::runtime::Error::Ok) {
    std::fprintf(stderr, "bare_loop: cannot load %s:%s\n", model.c_str(), method.c_str());
    return 3;
  }

  // The same prompt as the harness for the same seed.
  slmh::SplitMix64 rng(static_cast<uint64_t>(seed));
  std::vector<int64_t> prompt(static_cast<size_t>(prompt_tokens)), positions(static_cast<size_t>(prompt_tokens));
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = static_cast<int64_t>(rng.below(static_cast<uint64_t>(vocab)));
    positions[i] = static_cast<int64_t>(i);
  }
  const auto p = static_cast<executorch::aten::SizesType>(prompt_tokens);
  auto prefill_tokens = executorch::extension::make_tensor_ptr({1, p}, prompt.data(), ScalarType::Long);
  auto prefill_pos = executorch::extension::make_tensor_ptr({p}, positions.data(), ScalarType::Long);
  int64_t token_value = 0, pos_value = 0;
  auto token = executorch::extension::make_tensor_ptr({1, 1}, &token_value, ScalarType::Long);
  auto pos = executorch::extension::make_tensor_ptr({1}, &pos_value, ScalarType::Long);
  const std::vector<EValue> prefill_inputs = {EValue(*prefill_tokens), EValue(*prefill_pos)};
  const std::vector<EValue> decode_inputs = {EValue(*token), EValue(*pos)};

  auto argmax = [](const executorch::runtime::Result<std::vector<EValue>>& out) -> int64_t {
    if (!out.ok()) {
      std::fprintf(stderr, "bare_loop: execute failed\n");
      std::exit(4);
    }
    const auto& logits = (*out)[0].toTensor();
    const int64_t n = logits.size(logits.dim() - 1);
    return slmh::argmax_f32(logits.const_data_ptr<float>() + (logits.numel() - n), n);
  };

  std::vector<int64_t> prefill_ns, step_mean_ns, step_ns;
  std::vector<int64_t> steps(static_cast<size_t>(gen_tokens));
  for (int64_t r = 0; r < warmup + runs; ++r) {
    int64_t start = slmh::mono_ns();
    token_value = argmax(module.execute(method, prefill_inputs));
    const int64_t prefill = slmh::mono_ns() - start;
    start = slmh::mono_ns();
    int64_t last = start;
    for (int64_t i = 0; i < gen_tokens; ++i) {
      pos_value = prompt_tokens + i;
      token_value = argmax(module.execute(method, decode_inputs));
      const int64_t now = slmh::mono_ns();
      steps[static_cast<size_t>(i)] = now - last;
      last = now;
    }
    const int64_t decode = last - start;
    if (r >= warmup) {
      prefill_ns.push_back(prefill);
      step_mean_ns.push_back(decode / gen_tokens);
      step_ns.insert(step_ns.end(), steps.begin(), steps.end());
    }
  }
  std::printf("%s\n", slmh::Json()
                          .nums("prefill_ns", prefill_ns)
                          .nums("decode_step_mean_ns", step_mean_ns)
                          .nums("step_ns", step_ns)
                          .num("last_token", token_value)
                          .num("threads", slmh::executorch_threadpool_size())
                          .done()
                          .c_str());
  return 0;
}
