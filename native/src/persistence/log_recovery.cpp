#include "persistence/log_recovery.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "persistence/posix_file.hpp"
#include "persistence/record_format.hpp"

namespace derecho::persistence {
namespace {

namespace fs = std::filesystem;

struct SegmentName {
  std::uint64_t first_version;
  fs::path file;
  bool operator<(const SegmentName& o) const { return first_version < o.first_version; }
};

// Segment files in version order; removes the temporaries of creations a crash interrupted.
std::vector<SegmentName> list_segments(const fs::path& dir, bool& dir_changed) {
  std::vector<SegmentName> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".log.tmp") && parse_segment_file_name(name.substr(0, name.size() - 4))) {
      fs::remove(entry.path());
      dir_changed = true;
    } else if (auto first = parse_segment_file_name(name)) {
      out.push_back({*first, entry.path()});
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path damaged_name(const fs::path& file) {
  fs::path target = file;
  target += ".damaged";
  // An earlier repair may have left one already; keep both.
  for (int n = 1; fs::exists(target); ++n) {
    target = file;
    target += ".damaged." + std::to_string(n);
  }
  return target;
}

class Recovery {
 public:
  explicit Recovery(const LogOptions& options) : options_(options) {}

  RecoveredLog run() {
    fs::create_directories(options_.dir);
    files_ = list_segments(options_.dir, dir_changed_);
    for (std::size_t i = 0; i < files_.size() && !stopped_; ++i) check_segment(i);
    if (dir_changed_) sync_directory(options_.dir);
    return std::move(out_);
  }

 private:
  void check_segment(std::size_t i) {
    const auto& [first, file] = files_[i];
    if (fs::file_size(file) < kSegmentHeaderBytes) return damage_from(i, "file is shorter than a segment header");
    SegmentFile segment = SegmentFile::open(file, first, options_.flush);
    if (auto problem = segment.header_problem()) return damage_from(i, *problem);
    if (next_version_ != 0 && first != next_version_) {
      return damage_from(i, "segment starts at version " + std::to_string(first) + " where version " +
                                std::to_string(next_version_) + " was expected");
    }
    std::uint64_t version = first;
    for (;;) {
      const RecordScan scan = scan_record(segment.rest(), version);
      if (scan.kind == RecordScan::Kind::record) {
        segment.adopt(scan.bytes);
        ++version;
        continue;
      }
      if (scan.kind == RecordScan::Kind::bad) cut(i, segment, scan.problem);
      break;
    }
    if (segment.records() == 0) {
      // An empty segment is what a crash right after creating one leaves; nothing in it is lost.
      fs::remove(file);
      dir_changed_ = true;
      if (!stopped_ && i + 1 < files_.size()) {
        damage_from(i + 1, "follows the empty segment " + file.filename().string() + ": version " +
                               std::to_string(first) + " is missing");
      }
      return;
    }
    next_version_ = version;
    out_.segments.push_back(std::move(segment));
  }

  void cut(std::size_t i, SegmentFile& segment, const std::string& problem) {
    const std::size_t offset = segment.write_end();
    const std::size_t dirty = nonzero_extent(segment.rest());
    out_.repairs.push_back({segment.path(), offset, dirty, problem});
    segment.drop_from(offset, offset + dirty, segment.records());
    if (i + 1 < files_.size()) {
      damage_from(i + 1, "follows the cut in " + segment.path().filename().string() + " (" + problem + ")");
    }
    stopped_ = true;
  }

  void damage_from(std::size_t i, const std::string& reason) {
    for (std::size_t j = i; j < files_.size(); ++j) {
      const fs::path& file = files_[j].file;
      const fs::path target = damaged_name(file);
      const auto bytes = fs::file_size(file);
      fs::rename(file, target);
      out_.repairs.push_back(
          {file, 0, bytes, (j == i ? reason : "follows the damaged " + files_[i].file.filename().string()) +
                               "; renamed to " + target.filename().string()});
    }
    dir_changed_ = true;
    stopped_ = true;
  }

  const LogOptions& options_;
  std::vector<SegmentName> files_;
  RecoveredLog out_;
  std::uint64_t next_version_ = 0;  // 0: the first segment sets it
  bool dir_changed_ = false;
  bool stopped_ = false;
};

}  // namespace

RecoveredLog recover_log(const LogOptions& options) { return Recovery(options).run(); }

}  // namespace derecho::persistence
