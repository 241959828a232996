// The command line of harness protocol v1 (docs/harness-protocol.md), plus three
// documented native-only extensions (--dump-tokens, --accelerator, --litert-profile).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slmh {

struct Args {
  std::string model;
  std::string trace;
  std::string runtime = "executorch";
  std::string workload = "llm";
  int64_t prompt_tokens = 128;
  int64_t gen_tokens = 64;
  int64_t max_seq_len = 0;
  int64_t vocab_size = 0;
  std::string prefill_method = "forward";
  std::string decode_method = "forward";
  std::string method = "forward";
  int64_t iterations = 10;
  int64_t warmup = 1;
  int64_t runs = 5;
  int64_t threads = 0;
  int64_t seed = 0;
  int64_t telemetry_interval_ms = 500;
  std::string run_id;
  std::string artifact_sha256;
  std::string etdump;
  std::vector<std::string> inputs;  // generic workload: one raw file per method input (else random)
  int64_t bandwidth_probe_mib = 0;  // > 0: measure memory bandwidth first (a "bandwidth" event)
  // Native extensions (not part of protocol v1; the analysis never needs them):
  std::string dump_tokens;          // write the prompt and every run's sampled tokens (JSON) here
  std::string accelerator = "cpu";  // LiteRT only: cpu or gpu
  std::string litert_profile;       // LiteRT only: write the op profile of the measured runs (JSON) here
  bool help = false;
};

// Parses and validates argv; throws UsageError (exit 2) with the reason.
Args parse_args(int argc, char** argv);

// One usage paragraph for --help and usage errors.
const char* usage_text();

}  // namespace slmh
