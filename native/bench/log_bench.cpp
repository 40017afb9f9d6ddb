// What the persistent log costs over the least a program can do with the same kind of mapping.
// The baseline (raw_append.hpp) copies each record body into pmem_map_file'd files and flushes
// every batch (pmem_persist on DAX, pmem_msync elsewhere); the log phase runs PersistentLog::append() and
// persist() with the same body size and batch. Prints one JSON object on stdout.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "persistence/persistent_log.hpp"
#include "persistence/pmem_mapping.hpp"
#include "raw_append.hpp"

namespace {

namespace fs = std::filesystem;
namespace dp = derecho::persistence;
using derecho::bench::fs_type;
using derecho::bench::ScratchDir;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t kFileBytes = 64u << 20;  // the baseline file, and each log segment

struct Options {
  fs::path dir = "/tmp";
  std::size_t size = 100;
  std::vector<std::size_t> batches{1, 64};
  double seconds = 1.0;
};


struct Rate {
  double records_per_sec;
  bool is_pmem;
};

Rate run_baseline(const Options& o, std::size_t batch) {
  const ScratchDir scratch(o.dir, "derecho-log-bench");
  const auto r = derecho::bench::raw_append(scratch.path(), "baseline", kFileBytes, o.size, batch, o.seconds,
                                            dp::FlushMode::automatic);
  return {r.records_per_sec, r.is_pmem};
}

Rate run_log(const Options& o, std::size_t batch) {
  const ScratchDir scratch(o.dir, "derecho-log-bench");
  dp::LogOptions options;
  options.dir = scratch.path() / "log";
  options.segment_bytes = kFileBytes;
  const auto log = dp::PersistentLog::open(options);
  const std::vector<std::byte> body(o.size, std::byte{0x5a});
  std::uint64_t version = 0;
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration<double>(o.seconds);
  while (clock_type::now() < end) {
    for (std::size_t i = 0; i < batch; ++i) {
      ++version;
      const auto result = log->append(version, version, body);
      if (result.status != dp::AppendResult::Status::ok) throw std::runtime_error(result.error);
    }
    log->persist();
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  return {static_cast<double>(version) / elapsed, log->is_pmem()};
}

std::vector<std::size_t> parse_list(const std::string& text) {
  std::vector<std::size_t> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const auto comma = text.find(',', at);
    out.push_back(std::stoul(text.substr(at, comma - at)));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--dir") o.dir = next();
    else if (a == "--size") o.size = std::stoul(next());
    else if (a == "--batches") o.batches = parse_list(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else throw std::invalid_argument("unknown option " + a + " (options: --dir --size --batches N,M --seconds)");
  }
  if (o.size == 0) throw std::invalid_argument("--size must be at least 1");
  for (const auto b : o.batches) {
    if (b == 0) throw std::invalid_argument("--batches must be at least 1 each");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    std::string runs;
    bool is_pmem = false;
    for (const auto batch : o.batches) {
      const Rate baseline = run_baseline(o, batch);
      const Rate log = run_log(o, batch);
      is_pmem = baseline.is_pmem;
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "{\"batch\":%zu,\"baselineRecordsPerSec\":%.0f,\"logRecordsPerSec\":%.0f,\"ratioToBaseline\":%.3f}",
                    batch, baseline.records_per_sec, log.records_per_sec,
                    log.records_per_sec / baseline.records_per_sec);
      runs += (runs.empty() ? "" : ",") + std::string(buf);
      std::fprintf(stderr, "%zu B, batch %zu: baseline %.0f records/s, log %.0f records/s (%.2fx)\n", o.size, batch,
                   baseline.records_per_sec, log.records_per_sec, log.records_per_sec / baseline.records_per_sec);
    }
    std::printf("{\"dir\":\"%s\",\"fsType\":\"%s\",\"isPmem\":%s,\"recordBytes\":%zu,\"seconds\":%.1f,\"runs\":[%s]}\n",
                o.dir.c_str(), fs_type(o.dir).c_str(), is_pmem ? "true" : "false", o.size, o.seconds, runs.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "derecho_log_bench: %s\n", e.what());
    return 1;
  }
}
