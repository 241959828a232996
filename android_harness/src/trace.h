// The trace (JSON lines, each flushed as written) and what goes into it from the
// system: memory from /proc, telemetry from sysfs (same fields as
// slmdeploy/harness/memory.py and telemetry.py), and the host description.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "util.h"

namespace slmh {

// Appends events; shared by the main thread and the telemetry thread.
class TraceWriter {
 public:
  ~TraceWriter() { close(); }
  bool open(const std::string& path);
  void write(const std::string& line);
  void close();

 private:
  std::mutex mu_;
  FILE* fh_ = nullptr;
};

// VmRSS/VmHWM from /proc/self/status and Pss from /proc/self/smaps_rollup, in KiB;
// -1 where the kernel does not provide the field (the key is then omitted).
struct MemSnapshot {
  int64_t rss_kib = -1;
  int64_t hwm_kib = -1;
  int64_t pss_kib = -1;
  int64_t anon_kib = -1;  // RssAnon: heap, KV caches, repacked weights
  int64_t file_kib = -1;  // RssFile: resident pages of mapped files (an mmapped model)
};
MemSnapshot mem_snapshot();
Json& add_mem(Json& event, const MemSnapshot& mem);

// {"thermal_mc": {...}, "cpu_khz": {...}, "battery": {...}} fields of a telemetry event,
// read below `sys_root` (normally "/sys").
Json& add_telemetry(Json& event, const std::string& sys_root = "/sys");

// Emits a telemetry event every `interval_ms` on its own thread until stopped
// (0 disables it). The first sample is taken as soon as it starts.
class TelemetrySampler {
 public:
  TelemetrySampler(TraceWriter& writer, int64_t interval_ms) : writer_(writer), interval_ms_(interval_ms) {}
  ~TelemetrySampler() { stop(); }
  void start();
  void stop();

 private:
  void loop();
  void write_sample();
  TraceWriter& writer_;
  int64_t interval_ms_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// The header's "host" object: hostname, os, kernel, arch, cpus.
std::string host_json();
// UTC wall-clock time, ISO 8601 with milliseconds ("2026-11-25T02:17:21.580+00:00").
std::string utc_now_iso();
// Size of a file in bytes, -1 if it cannot be read.
int64_t file_size(const std::string& path);

}  // namespace slmh
