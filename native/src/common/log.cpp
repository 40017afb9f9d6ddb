#include "common/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace derecho {
namespace {

std::mutex sink_mutex;
std::atomic<int> min_level{static_cast<int>(LogLevel::info)};

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void stderr_sink(LogLevel level, std::string_view component, std::string_view message) {
  std::string line = "{\"level\":\"" + std::string(to_string(level)) + "\",\"component\":\"" +
                     json_escape(component) + "\",\"message\":\"" + json_escape(message) + "\"}\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
}

LogSink& sink() {
  static LogSink s = stderr_sink;
  return s;
}

}  // namespace

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "unknown";
}

void set_log_sink(LogSink s) {
  std::lock_guard lock(sink_mutex);
  sink() = s ? std::move(s) : LogSink(stderr_sink);
}

void set_log_level(LogLevel level) { min_level.store(static_cast<int>(level)); }

void log(LogLevel level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed)) return;
  std::lock_guard lock(sink_mutex);
  sink()(level, component, message);
}

}  // namespace derecho
