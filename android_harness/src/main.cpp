// slmdeploy_harness: the native harness of protocol v1 (docs/harness-protocol.md).
//
// The flow and the trace mirror slmdeploy/harness/python_harness.py event for event:
// header, telemetry (from a sampler thread), load, iteration..., footer -- or an error
// event and the protocol's exit code. Inside a timed step the harness does nothing but
// the backend call (write the step's inputs into pre-allocated tensors, execute,
// argmax); trace lines, memory reads and bookkeeping happen between steps.
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "backend.h"
#include "bandwidth.h"
#include "trace.h"
#include "util.h"

#ifndef SLMH_HARNESS_VERSION
#define SLMH_HARNESS_VERSION "0.0.0"
#endif

namespace slmh {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signum) { g_signal = signum; }

struct Interrupted {
  int signum;
};

inline void check_interrupt() {
  if (g_signal) throw Interrupted{static_cast<int>(g_signal)};
}

std::string compiler_language() {
#if defined(__clang__)
  return std::string("c++17 clang ") + __clang_version__;
#elif defined(__GNUC__)
  return std::string("c++17 gcc ") + __VERSION__;
#else
  return "c++17";
#endif
}

std::string header_line(const Args& a, const Backend& backend) {
  int64_t size = file_size(a.model);
  std::string workload = Json()
                             .str("kind", a.workload)
                             .num("prompt_tokens", a.prompt_tokens)
                             .num("gen_tokens", a.gen_tokens)
                             .num("iterations", a.iterations)
                             .num("warmup", a.warmup)
                             .num("runs", a.runs)
                             .num("threads", a.threads)
                             .num("seed", a.seed)
                             .str("prefill_method", a.prefill_method)
                             .str("decode_method", a.decode_method)
                             .str("method", a.method)
                             .strs("inputs", a.inputs)
                             .done();
  return Json()
      .str("type", "header")
      .num("t_ns", since_start_ns())
      .str("protocol", "slmdeploy.trace/1")
      .raw("harness", Json().str("name", "native").str("version", SLMH_HARNESS_VERSION).str("language", compiler_language()).done())
      .raw("runtime", Json().str("name", backend.runtime_name()).str("version", backend.runtime_version()).done())
      .raw("model", Json()
                        .str("path", a.model)
                        .raw("size", size < 0 ? "null" : std::to_string(size))  // null: no such file
                        .str("sha256", a.artifact_sha256)
                        .done())
      .raw("workload", workload)
      .raw("host", host_json())
      .str("run_id", a.run_id)
      .num("pid", static_cast<int64_t>(::getpid()))
      .str("started_at", utc_now_iso())
      .done();
}

// The prompt: P token ids uniform in [0, V), from --seed.
std::vector<int64_t> make_prompt(const Args& a) {
  SplitMix64 rng(static_cast<uint64_t>(a.seed));
  std::vector<int64_t> prompt(static_cast<size_t>(a.prompt_tokens));
  for (auto& token : prompt) token = static_cast<int64_t>(rng.below(static_cast<uint64_t>(a.vocab_size)));
  return prompt;
}

int64_t sum(const std::vector<int64_t>& values) {
  int64_t total = 0;
  for (auto v : values) total += v;
  return total;
}

void emit_iteration(TraceWriter& trace, int64_t run, bool warm, const char* phase, int64_t tokens, int64_t start_pos,
                    int64_t ns, const std::vector<int64_t>* steps) {
  Json event;
  event.str("type", "iteration").num("t_ns", since_start_ns()).num("run", run).boolean("warmup", warm);
  event.str("phase", phase).num("tokens", tokens);
  if (start_pos >= 0) event.num("start_pos", start_pos);
  event.num("ns", ns);
  if (steps) event.nums("step_ns", *steps);
  trace.write(add_mem(event, mem_snapshot()).done());
}

struct TokenLog {
  std::vector<int64_t> prompt;
  std::vector<std::string> runs;  // one JSON object per run
};

int64_t run_llm(const Args& a, Backend& backend, TraceWriter& trace, TokenLog& log) {
  const int64_t P = a.prompt_tokens, G = a.gen_tokens;
  std::vector<int64_t> steps(static_cast<size_t>(G));
  std::vector<int64_t> sampled(static_cast<size_t>(G + 1));
  int64_t count = 0;
  for (int64_t index = 0; index < a.warmup + a.runs; ++index) {
    const bool warm = index < a.warmup;
    const int64_t run = warm ? index : index - a.warmup;
    check_interrupt();
    backend.begin_run();
    int64_t start = mono_ns();
    int64_t token = backend.prefill();
    const int64_t prefill_ns = mono_ns() - start;
    sampled[0] = token;
    emit_iteration(trace, run, warm, "prefill", P, 0, prefill_ns, nullptr);  // complete: kept even if interrupted
    check_interrupt();
    for (int64_t i = 0; i < G; ++i) {
      start = mono_ns();
      token = backend.decode(token, P + i);
      steps[static_cast<size_t>(i)] = mono_ns() - start;
      sampled[static_cast<size_t>(i + 1)] = token;
      check_interrupt();
    }
    if (G) emit_iteration(trace, run, warm, "decode", G, P, sum(steps), &steps);
    if (!a.dump_tokens.empty()) {
      log.runs.push_back(Json().num("run", run).boolean("warmup", warm).nums("tokens", sampled).done());
    }
    count += warm ? 0 : 1;
  }
  return count;
}

int64_t run_generic(const Args& a, Backend& backend, TraceWriter& trace) {
  std::vector<int64_t> times(static_cast<size_t>(a.iterations));
  int64_t count = 0;
  for (int64_t index = 0; index < a.warmup + a.runs; ++index) {
    const bool warm = index < a.warmup;
    const int64_t run = warm ? index : index - a.warmup;
    for (int64_t i = 0; i < a.iterations; ++i) {
      check_interrupt();
      const int64_t start = mono_ns();
      backend.invoke();
      times[static_cast<size_t>(i)] = mono_ns() - start;
    }
    emit_iteration(trace, run, warm, "forward", 0, -1, sum(times), &times);
    count += warm ? 0 : 1;
  }
  return count;
}

void write_token_log(const std::string& path, const TokenLog& log) {
  std::string runs = "[";
  for (size_t i = 0; i < log.runs.size(); ++i) runs += (i ? "," : "") + log.runs[i];
  runs += "]";
  std::string text = Json().nums("prompt", log.prompt).raw("runs", runs).done() + "\n";
  FILE* fh = std::fopen(path.c_str(), "w");
  if (!fh) throw RunError("cannot write --dump-tokens file " + path);
  std::fwrite(text.data(), 1, text.size(), fh);
  std::fclose(fh);
}

int fail(TraceWriter& trace, const char* phase, const std::string& message, int code) {
  trace.write(Json()
                  .str("type", "error")
                  .num("t_ns", since_start_ns())
                  .str("phase", phase)
                  .str("message", message.substr(0, 2000))
                  .done());
  std::fprintf(stderr, "slmdeploy_harness: %s\n", message.c_str());
  return code;
}

int run(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const UsageError& err) {
    std::fprintf(stderr, "%sslmdeploy_harness: error: %s\n", usage_text(), err.what());
    return kExitUsage;
  }
  if (args.help) {
    std::fputs(usage_text(), stdout);
    return kExitOk;
  }
  std::unique_ptr<Backend> backend = args.runtime == "executorch" ? make_executorch_backend()
                                     : args.runtime == "tflite"   ? make_litert_backend()
                                                                  : make_llamacpp_backend();
  if (!backend) {
    std::fprintf(stderr, "slmdeploy_harness: error: this build has no %s runtime (%s)\n", args.runtime.c_str(),
                 args.runtime == "tflite" ? "configure with LiteRT to run .tflite"
                                          : "configure with llama.cpp, as `slmdeploy harness build` does, to run .gguf");
    return kExitUsage;
  }
  TraceWriter trace;
  if (!trace.open(args.trace)) {
    std::fprintf(stderr, "slmdeploy_harness: error: cannot write the trace to %s\n", args.trace.c_str());
    return kExitUsage;
  }
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // Before any thread exists (the probe forks); written to the trace after the header.
  BandwidthResult probe;
  if (args.bandwidth_probe_mib > 0) probe = probe_bandwidth(args.bandwidth_probe_mib, args.threads);

  const char* phase = "load";
  TelemetrySampler sampler(trace, args.telemetry_interval_ms);
  try {
    trace.write(header_line(args, *backend));
    if (args.bandwidth_probe_mib > 0) {
      Json event;
      event.str("type", "bandwidth").num("t_ns", since_start_ns());
      trace.write(add_bandwidth(event, probe).done());
    }
    backend->configure_threads(args.threads);
    sampler.start();
    const MemSnapshot before = mem_snapshot();
    const int64_t start = mono_ns();
    try {
      if (file_size(args.model) < 0) throw LoadError("no such file");
      backend->load(args);
    } catch (const LoadError& err) {
      sampler.stop();
      return fail(trace, "load", std::string("cannot load ") + args.model + ": " + err.what(), kExitLoadFailed);
    }
    const int64_t load_ns = mono_ns() - start;
    Json load;
    load.str("type", "load").num("t_ns", since_start_ns()).num("ns", load_ns);
    if (before.rss_kib >= 0) load.num("rss_before_kib", before.rss_kib);
    load.num("threads", backend->threads_in_effect());
    backend->describe_load(load);
    trace.write(add_mem(load, mem_snapshot()).done());
    check_interrupt();

    TokenLog log;
    try {
      if (args.workload == "llm") {
        log.prompt = make_prompt(args);
        backend->prepare_llm(args, log.prompt);
      } else {
        backend->prepare_generic(args);
      }
    } catch (const UsageError& err) {
      sampler.stop();
      return fail(trace, "load", err.what(), kExitUsage);
    } catch (const LoadError& err) {
      sampler.stop();
      return fail(trace, "load", err.what(), kExitLoadFailed);
    }
    phase = "run";
    const int64_t count =
        args.workload == "llm" ? run_llm(args, *backend, trace, log) : run_generic(args, *backend, trace);
    sampler.stop();
    backend->finish(args);
    if (!args.dump_tokens.empty()) write_token_log(args.dump_tokens, log);
    Json footer;
    footer.str("type", "footer").num("t_ns", since_start_ns()).str("status", "complete").num("runs", count);
    footer.num("wall_ns", since_start_ns());
    trace.write(add_mem(footer, mem_snapshot()).done());
    return kExitOk;
  } catch (const Interrupted& intr) {
    sampler.stop();
    trace.write(Json()
                    .str("type", "error")
                    .num("t_ns", since_start_ns())
                    .str("phase", phase)
                    .str("message", "interrupted (signal " + std::to_string(intr.signum) + ")")
                    .done());
    return kExitInterrupted;
  } catch (const std::exception& err) {
    sampler.stop();
    return fail(trace, phase, err.what(), kExitRunFailed);
  }
}

}  // namespace
}  // namespace slmh

int main(int argc, char** argv) {
  slmh::mark_start();
  return slmh::run(argc, argv);
}
