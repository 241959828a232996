#include "trace.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace slmh {

bool TraceWriter::open(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  fh_ = std::fopen(path.c_str(), "w");
  return fh_ != nullptr;
}

void TraceWriter::write(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fh_) return;
  std::fwrite(line.data(), 1, line.size(), fh_);
  std::fputc('\n', fh_);
  std::fflush(fh_);
}

void TraceWriter::close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fh_) std::fclose(fh_);
  fh_ = nullptr;
}

namespace {

// Whole small file (procfs/sysfs), empty on error.
std::string read_small(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string strip(const std::string& s) {
  const char* ws = " \t\r\n\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

// The file's content as an integer, like Python's int(text.strip()); false if absent.
bool read_int(const std::string& path, int64_t* value) {
  std::string text = strip(read_small(path));
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') return false;
  *value = v;
  return true;
}

// "Key:   123 kB" lines of a procfs file.
void read_kib(const std::string& path, const char* key, int64_t* out, const char* key2 = nullptr,
              int64_t* out2 = nullptr) {
  std::string text = read_small(path);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    size_t colon = text.find(':', pos);
    if (colon != std::string::npos && colon < eol) {
      std::string name = text.substr(pos, colon - pos);
      int64_t* target = name == key ? out : (key2 && name == key2) ? out2 : nullptr;
      if (target) *target = std::strtoll(text.c_str() + colon + 1, nullptr, 10);
    }
    pos = eol + 1;
  }
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return names;
  while (dirent* entry = ::readdir(dir)) names.emplace_back(entry->d_name);
  ::closedir(dir);
  return names;
}

// A JSON object of string -> integer, keys in first-insertion order with the last value
// (Python dict semantics, so a duplicate thermal zone type behaves the same).
class IntMap {
 public:
  void set(const std::string& key, int64_t value) {
    for (auto& kv : items_) {
      if (kv.first == key) {
        kv.second = value;
        return;
      }
    }
    items_.emplace_back(key, value);
  }
  std::string json() const {
    Json obj;
    for (const auto& kv : items_) obj.num(kv.first.c_str(), kv.second);
    return obj.done();
  }

 private:
  std::vector<std::pair<std::string, int64_t>> items_;
};

bool is_cpu_dir(const std::string& name) {
  if (name.size() < 4 || name.compare(0, 3, "cpu") != 0) return false;
  return std::all_of(name.begin() + 3, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

MemSnapshot mem_snapshot() {
  MemSnapshot mem;
  read_kib("/proc/self/status", "VmRSS", &mem.rss_kib, "VmHWM", &mem.hwm_kib);
  read_kib("/proc/self/smaps_rollup", "Pss", &mem.pss_kib);
  read_kib("/proc/self/status", "RssAnon", &mem.anon_kib, "RssFile", &mem.file_kib);
  return mem;
}

Json& add_mem(Json& event, const MemSnapshot& mem) {
  if (mem.rss_kib >= 0) event.num("rss_kib", mem.rss_kib);
  if (mem.hwm_kib >= 0) event.num("hwm_kib", mem.hwm_kib);
  if (mem.pss_kib >= 0) event.num("pss_kib", mem.pss_kib);
  if (mem.anon_kib >= 0) event.num("rss_anon_kib", mem.anon_kib);
  if (mem.file_kib >= 0) event.num("rss_file_kib", mem.file_kib);
  return event;
}

Json& add_telemetry(Json& event, const std::string& sys_root) {
  IntMap thermal;
  const std::string thermal_dir = sys_root + "/class/thermal";
  std::vector<std::string> zones;
  for (const auto& name : list_dir(thermal_dir)) {
    if (name.compare(0, 12, "thermal_zone") == 0) zones.push_back(name);
  }
  std::sort(zones.begin(), zones.end());
  for (const auto& zone : zones) {
    int64_t temp;
    if (!read_int(thermal_dir + "/" + zone + "/temp", &temp)) continue;
    std::string type = strip(read_small(thermal_dir + "/" + zone + "/type"));
    thermal.set(type.empty() ? zone : type, temp);
  }

  IntMap freqs, caps;
  const std::string cpu_dir = sys_root + "/devices/system/cpu";
  std::vector<std::pair<long, std::string>> cpus;
  for (const auto& name : list_dir(cpu_dir)) {
    if (is_cpu_dir(name)) cpus.emplace_back(std::strtol(name.c_str() + 3, nullptr, 10), name);
  }
  std::sort(cpus.begin(), cpus.end());
  for (const auto& cpu : cpus) {
    int64_t khz;
    if (read_int(cpu_dir + "/" + cpu.second + "/cpufreq/scaling_cur_freq", &khz)) freqs.set(cpu.second, khz);
    if (read_int(cpu_dir + "/" + cpu.second + "/cpufreq/scaling_max_freq", &khz)) caps.set(cpu.second, khz);
  }

  IntMap battery;
  const std::string supply = sys_root + "/class/power_supply/battery/";
  const std::pair<const char*, const char*> fields[] = {
      {"level_pct", "capacity"}, {"temp_dc", "temp"}, {"current_ua", "current_now"}, {"voltage_uv", "voltage_now"}};
  for (const auto& field : fields) {
    int64_t value;
    if (read_int(supply + field.second, &value)) battery.set(field.first, value);
  }
  return event.raw("thermal_mc", thermal.json())
      .raw("cpu_khz", freqs.json())
      .raw("cpu_max_khz", caps.json())
      .raw("battery", battery.json());
}

void TelemetrySampler::start() {
  if (interval_ms_ <= 0) return;
  // The first sample is taken here, before load: every trace with telemetry on has one,
  // however short the run (a thread might otherwise be stopped before it ever ran).
  write_sample();
  thread_ = std::thread([this] { loop(); });
}

void TelemetrySampler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TelemetrySampler::write_sample() {
  // SLMH_SYSFS_ROOT replaces /sys (a test hook: a fake tree with known values).
  const char* root_env = std::getenv("SLMH_SYSFS_ROOT");
  const std::string root = root_env && *root_env ? root_env : "/sys";
  Json event;
  event.str("type", "telemetry").num("t_ns", since_start_ns());
  writer_.write(add_telemetry(event, root).done());
}

void TelemetrySampler::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; })) {
    lock.unlock();
    write_sample();
    lock.lock();
  }
}

std::string host_json() {
  char hostname[256] = {0};
  ::gethostname(hostname, sizeof hostname - 1);
  utsname uts{};
  ::uname(&uts);
  return Json()
      .str("hostname", hostname)
      .str("os", uts.sysname)
      .str("kernel", uts.release)
      .str("arch", uts.machine)
      .num("cpus", ::sysconf(_SC_NPROCESSORS_ONLN))
      .done();
}

std::string utc_now_iso() {
  timeval tv{};
  ::gettimeofday(&tv, nullptr);
  tm parts{};
  ::gmtime_r(&tv.tv_sec, &parts);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  return buf;
}

int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_size);
}

}  // namespace slmh
