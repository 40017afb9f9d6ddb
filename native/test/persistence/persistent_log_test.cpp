// PersistentLog over real files: segments, both flush paths, truncation and quota, each checked
// again after reopening the directory.
#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>

#include "persistence/persistent_log.hpp"
#include "persistence/record_format.hpp"
#include "persistence/segment_file.hpp"
#include "test_files.hpp"

using namespace derecho::persistence;
using namespace derecho::persistence::testing;

namespace {

constexpr std::size_t kSegment = 4096;

LogOptions options_for(const TempDir& dir, FlushMode flush = FlushMode::automatic) {
  LogOptions o;
  o.dir = dir.path() / "log";
  o.segment_bytes = kSegment;
  o.flush = flush;
  return o;
}

// Bodies of varied sizes, so records straddle segment boundaries at varied offsets.
std::size_t body_size(std::uint64_t version) { return (version * 37) % 300; }

void append_range(VersionLog& log, std::uint64_t from, std::uint64_t to) {
  for (std::uint64_t v = from; v <= to; ++v) {
    ASSERT_EQ(log.append(v, v * 10, body_for(v, body_size(v))).status, AppendResult::Status::ok) << "version " << v;
  }
}

void expect_records(const VersionLog& log, std::uint64_t from, std::uint64_t to) {
  EXPECT_EQ(log.first_version(), from);
  EXPECT_EQ(log.last_version(), to);
  for (std::uint64_t v = from; v <= to; ++v) {
    const auto r = log.read(v);
    ASSERT_TRUE(r) << "version " << v;
    EXPECT_EQ(r->hlc, v * 10);
    const auto expected = body_for(v, body_size(v));
    ASSERT_TRUE(std::equal(r->body.begin(), r->body.end(), expected.begin(), expected.end())) << "version " << v;
  }
}

std::size_t segment_files(const LogOptions& o) {
  std::size_t n = 0;
  for (const auto& name : files_in(o.dir)) n += parse_segment_file_name(name.string()) ? 1 : 0;
  return n;
}

TEST(PersistentLog, RoundTripAcrossSegmentsAndReopen) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 200);
    EXPECT_EQ(log->persisted_version(), 0u);
    EXPECT_EQ(log->persist(), 200u);
    EXPECT_FALSE(log->is_pmem());  // /tmp is not DAX on any machine these tests run on
  }
  EXPECT_GT(segment_files(o), 5u);
  EXPECT_EQ(files_in(o.dir).front(), segment_file_name(1));
  const auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  EXPECT_EQ(log->persisted_version(), 200u);
  expect_records(*log, 1, 200);
  EXPECT_EQ(log->last_at_or_before(1005), 100u);
  append_range(*log, 201, 220);
  log->persist();
  expect_records(*PersistentLog::open(o), 1, 220);
}

class PersistentLogFlush : public ::testing::TestWithParam<FlushMode> {};

TEST_P(PersistentLogFlush, EachFlushPathReopensCorrectly) {
  TempDir dir;
  {
    auto log = PersistentLog::open(options_for(dir, GetParam()));
    append_range(*log, 1, 60);
    log->persist();
    append_range(*log, 61, 80);  // a second persist flushes only what came after the first
    EXPECT_EQ(log->persist(), 80u);
  }
  const auto log = PersistentLog::open(options_for(dir));
  EXPECT_TRUE(log->repairs().empty());
  expect_records(*log, 1, 80);
}

INSTANTIATE_TEST_SUITE_P(Modes, PersistentLogFlush, ::testing::Values(FlushMode::persist, FlushMode::msync),
                         [](const auto& info) { return info.param == FlushMode::persist ? "Persist" : "Msync"; });

TEST(PersistentLog, TruncateBelowDeletesWholeSegmentsAndSurvivesReopen) {
  TempDir dir;
  const auto o = options_for(dir);
  auto log = PersistentLog::open(o);
  append_range(*log, 1, 200);
  log->persist();
  const auto before = segment_files(o);
  log->truncate_below(100);
  const auto first = log->first_version();
  EXPECT_GT(first, 1u);
  EXPECT_LE(first, 100u);
  EXPECT_LT(segment_files(o), before);
  EXPECT_EQ(files_in(o.dir).front(), segment_file_name(first));
  expect_records(*log, first, 200);
  log.reset();
  log = PersistentLog::open(o);
  expect_records(*log, first, 200);
  EXPECT_EQ(log->last_at_or_before(5), std::nullopt);
}

TEST(PersistentLog, TruncateAfterSurvivesReopenAndAppendsContinue) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 200);
    log->persist();
    log->truncate_after(50);
    EXPECT_EQ(log->persisted_version(), 50u);
    expect_records(*log, 1, 50);
  }
  {
    auto log = PersistentLog::open(o);
    EXPECT_TRUE(log->repairs().empty());
    expect_records(*log, 1, 50);
    append_range(*log, 51, 120);  // the same versions again, on the zeroed space
    log->persist();
  }
  const auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  expect_records(*log, 1, 120);
}

TEST(PersistentLog, TruncateAfterUnpersistedRecordsKeepsTheRest) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 100);
    log->truncate_after(90);
  }
  const auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  expect_records(*log, 1, 90);
}

TEST(PersistentLog, ResetSurvivesReopen) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 100);
    log->persist();
    log->reset();
    EXPECT_EQ(segment_files(o), 0u);
  }
  auto log = PersistentLog::open(o);
  EXPECT_EQ(log->last_version(), 0u);
  append_range(*log, 7, 9);
  log->persist();
  log.reset();
  expect_records(*PersistentLog::open(o), 7, 9);
}

TEST(PersistentLog, EmptyBodiesSurviveReopen) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    for (std::uint64_t v = 1; v <= 3; ++v) ASSERT_EQ(log->append(v, v, {}).status, AppendResult::Status::ok);
    log->persist();
  }
  const auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  ASSERT_EQ(log->last_version(), 3u);
  EXPECT_TRUE(log->read(2)->body.empty());
  EXPECT_EQ(log->read(2)->crc, record_crc(2, 2, {}));
}

TEST(PersistentLog, RecordLargerThanASegmentIsRefused) {
  TempDir dir;
  auto log = PersistentLog::open(options_for(dir));
  append_range(*log, 1, 3);
  const std::size_t fits = kSegment - kSegmentHeaderBytes - kRecordHeaderBytes;
  const auto too_big = log->append(4, 40, std::vector<std::byte>(fits + 1));
  EXPECT_EQ(too_big.status, AppendResult::Status::too_large);
  EXPECT_NE(too_big.error.find("version 4"), std::string::npos) << too_big.error;
  EXPECT_EQ(log->last_version(), 3u);
  EXPECT_EQ(log->append(4, 40, std::vector<std::byte>(fits)).status, AppendResult::Status::ok);
}

TEST(PersistentLog, QuotaFullRefusesWithoutWritingAndFreesAfterTruncateBelow) {
  TempDir dir;
  auto o = options_for(dir);
  o.max_bytes = 3 * kSegment;
  std::uint64_t last = 0;
  {
    auto log = PersistentLog::open(o);
    AppendResult result;
    for (std::uint64_t v = 1; result.status == AppendResult::Status::ok; ++v) {
      result = log->append(v, v * 10, body_for(v, body_size(v)));
      if (result.status == AppendResult::Status::ok) last = v;
    }
    EXPECT_EQ(result.status, AppendResult::Status::full);
    EXPECT_NE(result.error.find("quota"), std::string::npos) << result.error;
    EXPECT_NE(result.error.find(o.dir.string()), std::string::npos) << result.error;
    EXPECT_EQ(log->last_version(), last);
    EXPECT_EQ(segment_files(o), 3u);
    // Still full on a retry, with nothing written in between.
    EXPECT_EQ(log->append(last + 1, (last + 1) * 10, body_for(last + 1, body_size(last + 1))).status,
              AppendResult::Status::full);
    log->persist();
  }
  auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  expect_records(*log, 1, last);
  log->truncate_below(2);  // the first segment holds more than version 1: nothing whole to free
  EXPECT_EQ(segment_files(o), 3u);
  const auto second = parse_segment_file_name(files_in(o.dir)[1].string());
  ASSERT_TRUE(second);
  log->truncate_below(*second);
  ASSERT_EQ(segment_files(o), 2u);
  EXPECT_EQ(log->first_version(), *second);
  append_range(*log, last + 1, last + 1);
  log->persist();
  expect_records(*PersistentLog::open(o), log->first_version(), last + 1);
}

TEST(PersistentLog, FreshEmptySegmentIsDroppedOnOpen) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 30);
    log->persist();
  }
  // What a crash right after creating the next segment leaves behind.
  SegmentFile::create(o.dir, 31, kSegment, FlushMode::msync);
  auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  expect_records(*log, 1, 30);
  append_range(*log, 31, 31);
}

TEST(PersistentLog, LoneEmptySegmentLeavesAnEmptyLog) {
  TempDir dir;
  const auto o = options_for(dir);
  std::filesystem::create_directories(o.dir);
  SegmentFile::create(o.dir, 500, kSegment, FlushMode::msync);
  auto log = PersistentLog::open(o);
  EXPECT_TRUE(log->repairs().empty());
  EXPECT_EQ(log->last_version(), 0u);
  append_range(*log, 3, 4);  // not bound to the empty segment's version
}

TEST(PersistentLog, LeftoverTemporarySegmentIsRemoved) {
  TempDir dir;
  const auto o = options_for(dir);
  std::filesystem::create_directories(o.dir);
  const auto tmp = o.dir / (segment_file_name(1) + ".tmp");
  std::ofstream(tmp) << "half-created";
  const auto log = PersistentLog::open(o);
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_EQ(log->last_version(), 0u);
}

TEST(PersistentLog, UnsupportedFormatVersionIsRefusedNotCut) {
  TempDir dir;
  const auto o = options_for(dir);
  {
    auto log = PersistentLog::open(o);
    append_range(*log, 1, 5);
    log->persist();
  }
  const auto file = o.dir / segment_file_name(1);
  patch_file(file, 8, {std::byte{2}, std::byte{0}, std::byte{0}, std::byte{0}});
  try {
    PersistentLog::open(o);
    FAIL() << "open() accepted format version 2";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("format version 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::exists(file));
}

TEST(PersistentLog, BadOptionsAreRefused) {
  TempDir dir;
  auto o = options_for(dir);
  o.segment_bytes = 5000;
  EXPECT_THROW(PersistentLog::open(o), std::invalid_argument);
  o.segment_bytes = kSegment;
  o.max_bytes = kSegment - 1;
  EXPECT_THROW(PersistentLog::open(o), std::invalid_argument);
}

TEST(PersistentLog, SameRecordHasTheSameCrcAsInAVolatileLog) {
  TempDir dir;
  auto log = PersistentLog::open(options_for(dir));
  append_range(*log, 1, 3);
  EXPECT_EQ(log->read(2)->crc, record_crc(2, 20, body_for(2, body_size(2))));
}

}  // namespace
