#include "args.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "util.h"

namespace slmh {

namespace {

int64_t parse_int(const std::string& flag, const std::string& text) {
  // Like Python's int(): optional surrounding whitespace and sign, decimal digits.
  const char* begin = text.c_str();
  while (*begin == ' ' || *begin == '\t') ++begin;
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(begin, &end, 10);
  while (end && (*end == ' ' || *end == '\t')) ++end;
  if (errno != 0 || end == begin || *end != '\0') {
    throw UsageError("argument " + flag + ": invalid int value: '" + text + "'");
  }
  return value;
}

struct Flag {
  const char* name;
  std::function<void(Args&, const std::string&)> set;
};

std::vector<Flag> flags() {
  auto text = [](std::string Args::*field) {
    return [field](Args& a, const std::string& v) { a.*field = v; };
  };
  auto number = [](int64_t Args::*field, const char* name) {
    return [field, name](Args& a, const std::string& v) { a.*field = parse_int(name, v); };
  };
  return {
      {"--model", text(&Args::model)},
      {"--trace", text(&Args::trace)},
      {"--runtime", text(&Args::runtime)},
      {"--workload", text(&Args::workload)},
      {"--prompt-tokens", number(&Args::prompt_tokens, "--prompt-tokens")},
      {"--gen-tokens", number(&Args::gen_tokens, "--gen-tokens")},
      {"--max-seq-len", number(&Args::max_seq_len, "--max-seq-len")},
      {"--vocab-size", number(&Args::vocab_size, "--vocab-size")},
      {"--prefill-method", text(&Args::prefill_method)},
      {"--decode-method", text(&Args::decode_method)},
      {"--method", text(&Args::method)},
      {"--iterations", number(&Args::iterations, "--iterations")},
      {"--warmup", number(&Args::warmup, "--warmup")},
      {"--runs", number(&Args::runs, "--runs")},
      {"--threads", number(&Args::threads, "--threads")},
      {"--seed", number(&Args::seed, "--seed")},
      {"--telemetry-interval-ms", number(&Args::telemetry_interval_ms, "--telemetry-interval-ms")},
      {"--run-id", text(&Args::run_id)},
      {"--artifact-sha256", text(&Args::artifact_sha256)},
      {"--etdump", text(&Args::etdump)},
      {"--input", [](Args& a, const std::string& v) { a.inputs.push_back(v); }},
      {"--bandwidth-probe-mib", number(&Args::bandwidth_probe_mib, "--bandwidth-probe-mib")},
      {"--dump-tokens", text(&Args::dump_tokens)},
      {"--accelerator", text(&Args::accelerator)},
      {"--litert-profile", text(&Args::litert_profile)},
  };
}

void validate(const Args& a) {
  if (a.model.empty() || a.trace.empty()) {
    throw UsageError("the following arguments are required: --model, --trace");
  }
  if (a.workload != "llm" && a.workload != "generic") {
    throw UsageError("--workload must be llm or generic, got '" + a.workload + "'");
  }
  if (a.runtime != "executorch" && a.runtime != "tflite" && a.runtime != "llamacpp") {
    throw UsageError("--runtime must be executorch, tflite or llamacpp, got '" + a.runtime + "'");
  }
  if (a.workload == "llm") {
    if (a.prompt_tokens < 1 || a.gen_tokens < 0) {
      throw UsageError("--prompt-tokens must be >= 1 and --gen-tokens >= 0");
    }
    if (a.vocab_size < 1) throw UsageError("--vocab-size is required for the llm workload");
    if (a.max_seq_len && a.prompt_tokens + a.gen_tokens > a.max_seq_len) {
      throw UsageError("prompt " + std::to_string(a.prompt_tokens) + " + generation " +
                       std::to_string(a.gen_tokens) + " tokens exceed the program's max sequence length " +
                       std::to_string(a.max_seq_len));
    }
  } else if (a.iterations < 1) {
    throw UsageError("--iterations must be >= 1");
  }
  if (a.runs < 1 || a.warmup < 0) throw UsageError("--runs must be >= 1 and --warmup >= 0");
  if (a.threads < 0) throw UsageError("--threads must be >= 0");
  if (a.telemetry_interval_ms < 0) throw UsageError("--telemetry-interval-ms must be >= 0");
  if (a.bandwidth_probe_mib < 0) throw UsageError("--bandwidth-probe-mib must be >= 0 (0: no probe)");
  if (!a.etdump.empty() && a.runtime != "executorch") {
    throw UsageError("--etdump profiles ExecuTorch programs only (--runtime executorch)");
  }
  if (!a.litert_profile.empty() && a.runtime != "tflite") {
    throw UsageError("--litert-profile profiles LiteRT models only (--runtime tflite); use --etdump for ExecuTorch");
  }
  if (!a.inputs.empty() && a.workload != "generic") {
    throw UsageError("--input feeds the generic workload (--workload generic); the llm workload makes its prompt from --seed");
  }
  if (a.accelerator != "cpu" && a.accelerator != "gpu") {
    throw UsageError("--accelerator must be cpu or gpu, got '" + a.accelerator + "'");
  }
  if (a.accelerator != "cpu" && a.runtime != "tflite") {
    throw UsageError("--accelerator selects a LiteRT accelerator; ExecuTorch delegates are chosen at export");
  }
}

}  // namespace

const char* usage_text() {
  return "usage: slmdeploy_harness --model PATH --trace PATH [--runtime executorch|tflite|llamacpp]\n"
         "         [--workload llm|generic] [--prompt-tokens P] [--gen-tokens G] [--max-seq-len L]\n"
         "         [--vocab-size V] [--prefill-method NAME] [--decode-method NAME] [--method NAME]\n"
         "         [--iterations N] [--warmup W] [--runs N] [--threads T] [--seed S]\n"
         "         [--telemetry-interval-ms M] [--run-id ID] [--artifact-sha256 HEX] [--etdump PATH]\n"
         "         [--input PATH]... [--bandwidth-probe-mib MIB]\n"
         "         [--dump-tokens PATH] [--accelerator cpu|gpu] [--litert-profile PATH]\n"
         "slmdeploy native harness, protocol slmdeploy.trace/1 (docs/harness-protocol.md);\n"
         "--dump-tokens, --accelerator and --litert-profile (LiteRT op profile of the measured\n"
         "runs, JSON) are native extensions (docs/native-harness.md).\n"
         "example: slmdeploy_harness --model model.pte --trace trace.jsonl --prompt-tokens 64 \\\n"
         "           --gen-tokens 32 --max-seq-len 256 --vocab-size 4096\n";
}

Args parse_args(int argc, char** argv) {
  Args args;
  const std::vector<Flag> table = flags();
  for (int i = 1; i < argc; ++i) {
    std::string token = argv[i];
    if (token == "-h" || token == "--help") {
      args.help = true;
      return args;
    }
    std::string name = token, value;
    bool has_value = false;
    size_t eq = token.find('=');
    if (token.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      name = token.substr(0, eq);
      value = token.substr(eq + 1);
      has_value = true;
    }
    const Flag* flag = nullptr;
    for (const auto& f : table) {
      if (name == f.name) flag = &f;
    }
    if (!flag) throw UsageError("unrecognized argument: " + token);
    if (!has_value) {
      if (i + 1 >= argc) throw UsageError("argument " + name + ": expected one argument");
      value = argv[++i];
    }
    flag->set(args, value);
  }
  validate(args);
  return args;
}

}  // namespace slmh
