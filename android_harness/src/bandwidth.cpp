#include "bandwidth.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

namespace slmh {

namespace {

constexpr int kMaxPasses = 5;
constexpr int kMinPasses = 2;
constexpr int64_t kBudgetNs = 200000000;  // passes stop once this much time went into them
constexpr int64_t kLlcFactor = 4;

// sysfs cache sizes: "32768K", "1M" or plain bytes; 0 if unreadable.
int64_t read_size(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text.empty()) return 0;
  int64_t scale = 1;
  const char unit = text.back();
  if (unit == 'K' || unit == 'k') scale = 1LL << 10;
  if (unit == 'M' || unit == 'm') scale = 1LL << 20;
  if (unit == 'G' || unit == 'g') scale = 1LL << 30;
  if (scale != 1) text.pop_back();
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  return end && *end == '\0' && value > 0 ? value * scale : 0;
}

int64_t largest_cache_bytes() {
  int64_t largest = 0;
  const long cpus = ::sysconf(_SC_NPROCESSORS_CONF);
  for (long cpu = 0; cpu < cpus; ++cpu) {
    for (int index = 0; index < 8; ++index) {
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/cache/index" +
                              std::to_string(index);
      largest = std::max(largest, read_size(dir + "/size"));
    }
  }
  return largest;
}

int64_t available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  return 0;
}

int64_t buffer_bytes(int64_t min_mib) {
  int64_t size = std::max<int64_t>(min_mib, 1) << 20;
  size = std::max(size, kLlcFactor * largest_cache_bytes());
  const int64_t available = available_bytes();
  if (available > 0) size = std::min(size, available / 4);
  size -= size % (1 << 20);
  return std::max<int64_t>(size, 1 << 20);
}

// One slice, read with eight independent accumulators: the loads overlap, so the loop
// waits on memory bandwidth rather than on the latency of one add chain.
uint64_t sum_slice(const uint64_t* data, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += data[i];
    a1 += data[i + 1];
    a2 += data[i + 2];
    a3 += data[i + 3];
    a4 += data[i + 4];
    a5 += data[i + 5];
    a6 += data[i + 6];
    a7 += data[i + 7];
  }
  for (; i < n; ++i) a0 += data[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// The probe itself, in this process: allocate, touch every page, then timed read passes.
BandwidthResult measure(int64_t min_mib, int64_t threads) {
  BandwidthResult r;
  r.bytes = buffer_bytes(min_mib);
  r.threads = threads;
  const size_t n = static_cast<size_t>(r.bytes) / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  std::fill(buf.get(), buf.get() + n, uint64_t{1});
  const size_t slice = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  std::vector<int64_t> times;
  const int64_t start = mono_ns();
  while (static_cast<int>(times.size()) < kMaxPasses) {
    const int64_t t0 = mono_ns();
    std::vector<std::thread> workers;
    for (size_t t = 1; t < static_cast<size_t>(threads); ++t) {
      const size_t begin = std::min(n, t * slice), count = std::min(n - begin, slice);
      workers.emplace_back([&sums, &buf, t, begin, count] { sums[t] = sum_slice(buf.get() + begin, count); });
    }
    sums[0] = sum_slice(buf.get(), std::min(n, slice));
    for (auto& w : workers) w.join();
    times.push_back(mono_ns() - t0);
    uint64_t total = 0;
    for (auto s : sums) total += s;
    if (total != n) throw RunError("bandwidth probe read a wrong sum: the buffer was not read");
    if (static_cast<int>(times.size()) >= kMinPasses && mono_ns() - start > kBudgetNs) break;
  }
  std::sort(times.begin(), times.end());
  r.passes = static_cast<int64_t>(times.size());
  r.best_gbps = static_cast<double>(r.bytes) / static_cast<double>(times.front());
  r.median_gbps = static_cast<double>(r.bytes) / static_cast<double>(times[times.size() / 2]);
  return r;
}

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

BandwidthResult probe_bandwidth(int64_t min_mib, int64_t threads) {
  if (threads <= 0) threads = std::max<long>(1, ::sysconf(_SC_NPROCESSORS_ONLN));
  const int64_t start = mono_ns();
  BandwidthResult r;
  int fds[2];
  if (::pipe(fds) != 0) {
    r.error = std::string("cannot make a pipe for the probe: ") + std::strerror(errno);
    return r;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    r.error = std::string("cannot fork the probe: ") + std::strerror(errno);
    return r;
  }
  if (pid == 0) {  // the child: measure, report one line, leave without running destructors
    ::close(fds[0]);
    char line[256];
    try {
      const BandwidthResult m = measure(min_mib, threads);
      std::snprintf(line, sizeof line, "ok %lld %lld %lld %.17g %.17g\n", static_cast<long long>(m.bytes),
                    static_cast<long long>(m.passes), static_cast<long long>(m.threads), m.best_gbps,
                    m.median_gbps);
    } catch (const std::exception& err) {
      std::snprintf(line, sizeof line, "error %s\n", err.what());
    }
    write_all(fds[1], line);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char chunk[256];
  ssize_t n;
  // A signal (SIGTERM) interrupts read and waitpid: the probe is short, so let it finish;
  // the harness sees the signal at its next check.
  while ((n = ::read(fds[0], chunk, sizeof chunk)) != 0) {
    if (n > 0) text.append(chunk, static_cast<size_t>(n));
    else if (errno != EINTR) break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  long long bytes = 0, passes = 0, used = 0;
  if (std::sscanf(text.c_str(), "ok %lld %lld %lld %lf %lf", &bytes, &passes, &used, &r.best_gbps,
                  &r.median_gbps) == 5) {
    r.bytes = bytes;
    r.passes = passes;
    r.threads = used;
  } else if (text.compare(0, 6, "error ") == 0) {
    r.error = text.substr(6, text.find('\n') - 6);
  } else {
    r.error = "the probe process ended without a result (" +
              (WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status)) + "; out of memory?"
                                   : "exit status " + std::to_string(WEXITSTATUS(status))) +
              ")";
  }
  r.ns = mono_ns() - start;
  return r;
}

Json& add_bandwidth(Json& event, const BandwidthResult& r) {
  if (!r.error.empty()) return event.str("error", r.error).num("ns", r.ns);
  return event.num("bytes", r.bytes)
      .num("passes", r.passes)
      .num("threads", r.threads)
      .real("best_gbps", r.best_gbps)
      .real("median_gbps", r.median_gbps)
      .str("method", "c++ 8-accumulator uint64 sum")
      .num("ns", r.ns);
}

}  // namespace slmh
