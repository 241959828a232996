// Small shared pieces: the monotonic clock, JSON building, the seeded generator and
// the error types that map to the protocol's exit codes.
#pragma once

#include <cstdint>
#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace slmh {

// Exit codes of harness protocol v1.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitLoadFailed = 3;
constexpr int kExitRunFailed = 4;
constexpr int kExitInterrupted = 130;

// A bad or missing argument, or a workload the program cannot run (exit 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The program or one of its methods could not be loaded (exit 3).
struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// An execution failed (exit 4).
struct RunError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Nanoseconds since the harness started (the trace's t_ns).
void mark_start();
int64_t since_start_ns();

// JSON string body (without quotes): escapes control characters, quotes and
// backslashes; invalid UTF-8 bytes become U+FFFD so every line stays valid JSON.
std::string json_escape(const std::string& text);

// Builds one JSON object, keys in insertion order.
class Json {
 public:
  Json& num(const char* key, int64_t value);
  Json& real(const char* key, double value);
  Json& str(const char* key, const std::string& value);
  Json& boolean(const char* key, bool value);
  Json& raw(const char* key, const std::string& json);  // an already serialized value
  Json& nums(const char* key, const std::vector<int64_t>& values);
  Json& strs(const char* key, const std::vector<std::string>& values);
  std::string done() const { return buf_ + "}"; }

 private:
  void key(const char* name);
  std::string buf_ = "{";
  bool first_ = true;
};

// Deterministic across platforms and standard libraries (std::uniform_int_distribution
// is not), so a seed gives the same prompt on a phone and on this host.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) (bound > 0), by rejection: no modulo bias.
  uint64_t below(uint64_t bound);
  double uniform();  // [0, 1)
  double normal();   // standard normal (Box-Muller)

 private:
  uint64_t state_;
};

// Element types the generic workload fills, common to both runtimes' dtype enums.
enum class Elem { F32, F64, F16, BF16, I64, I32, I16, Byte, Unsupported };

size_t elem_size(Elem e);

// Seeded random inputs like the Python harness's: standard normal floats, integers
// (and booleans) drawn from {0, 1}.
void fill_random(void* data, size_t numel, Elem e, SplitMix64& rng);

// Input `index` of the generic workload: the bytes of args.inputs[index] (raw, little-endian,
// exactly numel * elem_size bytes) when files were given, else seeded random values.
// `what` names the input in errors ("input 0 of method 'forward'"). Throws UsageError.
void fill_input(const std::vector<std::string>& files, size_t index, void* data, size_t numel, Elem e,
                SplitMix64& rng, const std::string& what);

// With input files given, their count must equal the method's input count. Throws UsageError.
void check_input_count(const std::vector<std::string>& files, size_t expected, const std::string& method);

}  // namespace slmh
