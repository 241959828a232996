// The memory-bandwidth probe (docs/roofline.md): a streaming read over a buffer far larger
// than the caches, best of a few passes. Decode of a small LLM reads every weight once per
// token, so this is its ceiling on the device the run is on. Mirrors
// slmdeploy/harness/bandwidth.py field for field.
#pragma once

#include <cstdint>
#include <string>

#include "util.h"

namespace slmh {

struct BandwidthResult {
  int64_t bytes = 0;    // buffer size read per pass
  int64_t passes = 0;   // timed passes done
  int64_t threads = 0;  // threads reading, each its own slice
  double best_gbps = 0;
  double median_gbps = 0;
  int64_t ns = 0;     // wall time of the whole probe (fork, allocation, passes)
  std::string error;  // non-empty: the probe could not run (the run goes on without it)
};

// Runs the probe in a forked child, so the buffer never counts in the harness's own peak
// RSS. Call it before the harness starts threads. The buffer is `min_mib` MiB, raised to
// 4x the largest cache sysfs reports, capped at a quarter of MemAvailable. threads <= 0:
// every online CPU.
BandwidthResult probe_bandwidth(int64_t min_mib, int64_t threads);

// The fields of a "bandwidth" trace event after type and t_ns.
Json& add_bandwidth(Json& event, const BandwidthResult& result);

}  // namespace slmh
