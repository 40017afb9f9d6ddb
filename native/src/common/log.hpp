#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace derecho {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

std::string_view to_string(LogLevel level);

// The engine logs through one process-wide sink. The default writes a JSON line to stderr;
// the addon and tests replace it to route or capture lines.
using LogSink = std::function<void(LogLevel, std::string_view component, std::string_view message)>;

void set_log_sink(LogSink sink);
void set_log_level(LogLevel min_level);
void log(LogLevel level, std::string_view component, std::string_view message);

}  // namespace derecho
