#include "util.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace slmh {

namespace {
int64_t g_start_ns = mono_ns();
}

void mark_start() { g_start_ns = mono_ns(); }

int64_t since_start_ns() { return mono_ns() - g_start_ns; }

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not valid.
size_t utf8_sequence(const std::string& s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (c >= 0xF5 || len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  if (len == 3 && ((c == 0xE0 && byte(i + 1) < 0xA0) || (c == 0xED && byte(i + 1) >= 0xA0))) return 0;
  if (len == 4 && ((c == 0xF0 && byte(i + 1) < 0x90) || (c == 0xF4 && byte(i + 1) >= 0x90))) return 0;
  return len;
}

}  // namespace

std::string json_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      size_t len = utf8_sequence(text, i);
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text, i, len);
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  return out;
}

void Json::key(const char* name) {
  if (!first_) buf_ += ',';
  first_ = false;
  buf_ += '"';
  buf_ += json_escape(name);
  buf_ += "\":";
}

Json& Json::num(const char* k, int64_t value) {
  key(k);
  buf_ += std::to_string(value);
  return *this;
}

Json& Json::real(const char* k, double value) {
  key(k);
  if (std::isfinite(value)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    buf_ += buf;
  } else {
    buf_ += "null";
  }
  return *this;
}

Json& Json::str(const char* k, const std::string& value) {
  key(k);
  buf_ += '"';
  buf_ += json_escape(value);
  buf_ += '"';
  return *this;
}

Json& Json::boolean(const char* k, bool value) {
  key(k);
  buf_ += value ? "true" : "false";
  return *this;
}

Json& Json::raw(const char* k, const std::string& json) {
  key(k);
  buf_ += json;
  return *this;
}

Json& Json::nums(const char* k, const std::vector<int64_t>& values) {
  key(k);
  buf_ += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) buf_ += ',';
    buf_ += std::to_string(values[i]);
  }
  buf_ += ']';
  return *this;
}

Json& Json::strs(const char* k, const std::vector<std::string>& values) {
  key(k);
  buf_ += '[';
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) buf_ += ',';
    buf_ += '"' + json_escape(values[i]) + '"';
  }
  buf_ += ']';
  return *this;
}

uint64_t SplitMix64::below(uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do {
    x = next();
  } while (x >= limit);
  return x % bound;
}

double SplitMix64::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double SplitMix64::normal() {
  double u1 = uniform();
  while (u1 <= 0.0) u1 = uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

size_t elem_size(Elem e) {
  switch (e) {
    case Elem::F64:
    case Elem::I64:
      return 8;
    case Elem::F32:
    case Elem::I32:
      return 4;
    case Elem::F16:
    case Elem::BF16:
    case Elem::I16:
      return 2;
    case Elem::Byte:
      return 1;
    default:
      return 0;
  }
}

namespace {

// IEEE binary16 from a float, round to nearest even; tiny values flush to zero.
uint16_t to_half(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exponent = static_cast<int32_t>((x >> 23) & 0xFF) - 127 + 15;
  uint32_t mantissa = x & 0x7FFFFFu;
  if (exponent <= 0) return static_cast<uint16_t>(sign);
  if (exponent >= 31) return static_cast<uint16_t>(sign | 0x7C00u);
  uint32_t half = sign | (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(half);
}

uint16_t to_bfloat16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  x += 0x7FFFu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

}  // namespace

void fill_random(void* data, size_t numel, Elem e, SplitMix64& rng) {
  for (size_t k = 0; k < numel; ++k) {
    switch (e) {
      case Elem::F32: static_cast<float*>(data)[k] = static_cast<float>(rng.normal()); break;
      case Elem::F64: static_cast<double*>(data)[k] = rng.normal(); break;
      case Elem::F16: static_cast<uint16_t*>(data)[k] = to_half(static_cast<float>(rng.normal())); break;
      case Elem::BF16: static_cast<uint16_t*>(data)[k] = to_bfloat16(static_cast<float>(rng.normal())); break;
      case Elem::I64: static_cast<int64_t*>(data)[k] = static_cast<int64_t>(rng.below(2)); break;
      case Elem::I32: static_cast<int32_t*>(data)[k] = static_cast<int32_t>(rng.below(2)); break;
      case Elem::I16: static_cast<int16_t*>(data)[k] = static_cast<int16_t>(rng.below(2)); break;
      case Elem::Byte: static_cast<uint8_t*>(data)[k] = static_cast<uint8_t>(rng.below(2)); break;
      default: break;
    }
  }
}

void fill_input(const std::vector<std::string>& files, size_t index, void* data, size_t numel, Elem e,
                SplitMix64& rng, const std::string& what) {
  if (files.empty()) {
    fill_random(data, numel, e, rng);
    return;
  }
  const std::string& path = files[index];
  const size_t want = numel * elem_size(e);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw UsageError("--input " + path + " (" + what + "): cannot open: " + std::strerror(errno));
  size_t got = std::fread(data, 1, want, f);
  const bool longer = std::fgetc(f) != EOF;
  std::fclose(f);
  if (got != want || longer) {
    throw UsageError("--input " + path + " (" + what + ") must hold exactly " + std::to_string(want) +
                     " bytes (" + std::to_string(numel) + " elements of " + std::to_string(elem_size(e)) +
                     " bytes, raw little-endian), it holds " + (longer ? "more" : std::to_string(got)));
  }
}

void check_input_count(const std::vector<std::string>& files, size_t expected, const std::string& method) {
  if (!files.empty() && files.size() != expected) {
    throw UsageError(std::to_string(files.size()) + " --input files given; method '" + method + "' takes " +
                     std::to_string(expected) + " inputs");
  }
}

}  // namespace slmh
