// What open() does with damaged segments: torn tails, flipped bits, stale records, broken or
// missing segments. Every case edits the files of a closed log, reopens it, and checks what was
// cut, what was reported, and that appends continue.
#include <gtest/gtest.h>

#include "persistence/persistent_log.hpp"
#include "persistence/record_format.hpp"
#include "persistence/segment_file.hpp"
#include "test_files.hpp"

using namespace derecho::persistence;
using namespace derecho::persistence::testing;

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kSegment = 4096;
constexpr std::size_t kBody = 50;
constexpr std::size_t kRecord = record_bytes(kBody);                                // 88
constexpr std::uint64_t kPerSegment = (kSegment - kSegmentHeaderBytes) / kRecord;  // 45, 72 bytes to spare

class PersistentLogRepair : public ::testing::Test {
 protected:
  PersistentLogRepair() {
    options_.dir = dir_.path() / "log";
    options_.segment_bytes = kSegment;
  }

  void write_log(std::uint64_t last) {
    auto log = PersistentLog::open(options_);
    append(*log, 1, last);
    log->persist();
  }
  static void append(VersionLog& log, std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t v = from; v <= to; ++v) {
      ASSERT_EQ(log.append(v, v, body_for(v, kBody)).status, AppendResult::Status::ok);
    }
  }
  fs::path segment_of(std::uint64_t version) const {
    return options_.dir / segment_file_name((version - 1) / kPerSegment * kPerSegment + 1);
  }
  static std::uint64_t offset_of(std::uint64_t version) {
    return kSegmentHeaderBytes + (version - 1) % kPerSegment * kRecord;
  }
  // Reopens, expects versions 1..last intact, then checks appends go on and the next open is clean.
  std::unique_ptr<PersistentLog> reopen_expecting(std::uint64_t last) {
    auto log = PersistentLog::open(options_);
    EXPECT_EQ(log->first_version(), last == 0 ? 0u : 1u);
    EXPECT_EQ(log->last_version(), last);
    for (std::uint64_t v = 1; v <= last; ++v) {
      const auto expected = body_for(v, kBody);
      const auto r = log->read(v);
      EXPECT_TRUE(r && std::equal(r->body.begin(), r->body.end(), expected.begin(), expected.end())) << v;
    }
    return log;
  }
  void expect_appends_continue(std::unique_ptr<PersistentLog> log, std::uint64_t last) {
    append(*log, last + 1, last + 50);
    log->persist();
    log.reset();
    const auto again = PersistentLog::open(options_);
    EXPECT_TRUE(again->repairs().empty());
    EXPECT_EQ(again->last_version(), last + 50);
  }

  TempDir dir_;
  LogOptions options_;
};

std::vector<std::byte> filled(std::size_t n, unsigned char value) { return std::vector<std::byte>(n, std::byte{value}); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_F(PersistentLogRepair, GarbageAfterTheLastRecordIsCut) {
  write_log(20);
  patch_file(segment_of(21), offset_of(21), filled(16, 0xAB));
  auto log = reopen_expecting(20);
  ASSERT_EQ(log->repairs().size(), 1u);
  const Repair& r = log->repairs()[0];
  EXPECT_EQ(r.file, segment_of(21));
  EXPECT_EQ(r.offset, offset_of(21));
  EXPECT_EQ(r.bytes_dropped, 16u);
  EXPECT_TRUE(contains(r.reason, "torn header where version 21 was expected")) << r.reason;
  expect_appends_continue(std::move(log), 20);
}

TEST_F(PersistentLogRepair, RecordCutHalfWayIsCut) {
  write_log(20);
  // The write of record 20 stopped in the middle of its body.
  patch_file(segment_of(20), offset_of(20) + kRecordHeaderBytes + kBody / 2, filled(kRecord - kRecordHeaderBytes - kBody / 2, 0));
  auto log = reopen_expecting(19);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_EQ(log->repairs()[0].offset, offset_of(20));
  EXPECT_GT(log->repairs()[0].bytes_dropped, kRecordHeaderBytes);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "checksum mismatch at version 20")) << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 19);
}

TEST_F(PersistentLogRepair, HeaderWithoutItsMagicIsATornHeader) {
  write_log(20);
  patch_file(segment_of(20), offset_of(20), filled(4, 0));
  auto log = reopen_expecting(19);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "torn header where version 20 was expected"))
      << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 19);
}

TEST_F(PersistentLogRepair, FlippedByteInTheLastBodyIsCaughtByTheChecksum) {
  write_log(20);
  const auto at = offset_of(20) + kRecordHeaderBytes + 3;
  const auto original = read_file(segment_of(20))[at];
  patch_file(segment_of(20), at, {original ^ std::byte{0x01}});
  auto log = reopen_expecting(19);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_EQ(log->repairs()[0].bytes_dropped, kRecordHeaderBytes + kBody);  // the padding was zero already
  EXPECT_TRUE(contains(log->repairs()[0].reason, "checksum mismatch at version 20")) << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 19);
}

TEST_F(PersistentLogRepair, StaleRecordWithTheWrongVersionIsCut) {
  write_log(20);
  std::vector<std::byte> stale(kRecord);
  write_record(stale.data(), 99, 99, body_for(99, kBody));
  patch_file(segment_of(21), offset_of(21), stale);
  auto log = reopen_expecting(20);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "version 99 found where version 21 was expected"))
      << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 20);
}

TEST_F(PersistentLogRepair, NonZeroBytesPastTheEndMarkerAreCut) {
  // A zero header followed by data is what a crash leaves when later pages reached the disk
  // before earlier ones; those bytes must not come back as records after later appends.
  write_log(20);
  patch_file(segment_of(21), offset_of(21) + 200, filled(8, 0xCD));
  auto log = reopen_expecting(20);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_EQ(log->repairs()[0].offset, offset_of(21));
  EXPECT_EQ(log->repairs()[0].bytes_dropped, 208u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "non-zero bytes after the end marker where version 21 was expected"))
      << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 20);
}

TEST_F(PersistentLogRepair, CorruptionInAMiddleSegmentRenamesTheLaterOnesDamaged) {
  write_log(4 * kPerSegment);
  const auto at = offset_of(60) + kRecordHeaderBytes;
  patch_file(segment_of(60), at, {read_file(segment_of(60))[at] ^ std::byte{0x80}});
  auto log = reopen_expecting(59);
  const auto& repairs = log->repairs();
  ASSERT_EQ(repairs.size(), 3u);
  EXPECT_EQ(repairs[0].file, segment_of(60));
  EXPECT_TRUE(contains(repairs[0].reason, "checksum mismatch at version 60")) << repairs[0].reason;
  for (const std::uint64_t first : {2 * kPerSegment + 1, 3 * kPerSegment + 1}) {
    const auto name = options_.dir / segment_file_name(first);
    EXPECT_FALSE(fs::exists(name));
    EXPECT_TRUE(fs::exists(name.string() + ".damaged"));
  }
  EXPECT_EQ(repairs[1].file, options_.dir / segment_file_name(2 * kPerSegment + 1));
  EXPECT_EQ(repairs[1].bytes_dropped, kSegment);
  EXPECT_TRUE(contains(repairs[1].reason, "renamed to")) << repairs[1].reason;
  expect_appends_continue(std::move(log), 59);
  EXPECT_TRUE(fs::exists(options_.dir / (segment_file_name(3 * kPerSegment + 1) + ".damaged")));
}

TEST_F(PersistentLogRepair, BrokenSegmentHeaderRenamesItAndTheRest) {
  write_log(4 * kPerSegment);
  patch_file(segment_of(2 * kPerSegment + 1), 0, filled(1, 'X'));
  auto log = reopen_expecting(2 * kPerSegment);
  ASSERT_EQ(log->repairs().size(), 2u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "bad segment header magic")) << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 2 * kPerSegment);
}

TEST_F(PersistentLogRepair, MissingMiddleSegmentIsAVersionGap) {
  write_log(4 * kPerSegment);
  fs::remove(segment_of(kPerSegment + 1));
  auto log = reopen_expecting(kPerSegment);
  ASSERT_EQ(log->repairs().size(), 2u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "segment starts at version 91 where version 46 was expected"))
      << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), kPerSegment);
}

TEST_F(PersistentLogRepair, EmptiedMiddleSegmentIsRemovedAndTheRestRenamed) {
  write_log(4 * kPerSegment);
  patch_file(segment_of(kPerSegment + 1), kSegmentHeaderBytes, filled(kSegment - kSegmentHeaderBytes, 0));
  auto log = reopen_expecting(kPerSegment);
  ASSERT_EQ(log->repairs().size(), 2u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "follows the empty segment")) << log->repairs()[0].reason;
  EXPECT_FALSE(fs::exists(segment_of(kPerSegment + 1)));
  expect_appends_continue(std::move(log), kPerSegment);
}

TEST_F(PersistentLogRepair, SegmentShorterThanItsHeaderIsRenamed) {
  write_log(4 * kPerSegment);
  fs::resize_file(segment_of(3 * kPerSegment + 1), 10);
  auto log = reopen_expecting(3 * kPerSegment);
  ASSERT_EQ(log->repairs().size(), 1u);
  EXPECT_TRUE(contains(log->repairs()[0].reason, "shorter than a segment header")) << log->repairs()[0].reason;
  expect_appends_continue(std::move(log), 3 * kPerSegment);
}

}  // namespace
