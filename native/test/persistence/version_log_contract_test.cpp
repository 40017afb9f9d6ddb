// The VersionLog contract, run against both implementations so a store can use either.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "persistence/persistent_log.hpp"
#include "persistence/record_format.hpp"
#include "persistence/volatile_log.hpp"
#include "test_files.hpp"

using namespace derecho::persistence;
using derecho::persistence::testing::body_for;
using derecho::persistence::testing::TempDir;

namespace {

struct LogKind {
  std::string name;
  std::function<std::unique_ptr<VersionLog>(const TempDir&)> make;
};

void PrintTo(const LogKind& kind, std::ostream* out) { *out << kind.name; }

class VersionLogContract : public ::testing::TestWithParam<LogKind> {
 protected:
  void SetUp() override { log_ = GetParam().make(dir_); }
  void append(std::uint64_t version, std::uint64_t hlc, std::size_t bytes = 24) {
    ASSERT_EQ(log_->append(version, hlc, body_for(version, bytes)).status, AppendResult::Status::ok);
  }

  TempDir dir_;
  std::unique_ptr<VersionLog> log_;
};

TEST_P(VersionLogContract, EmptyLogHasNothing) {
  EXPECT_EQ(log_->first_version(), 0u);
  EXPECT_EQ(log_->last_version(), 0u);
  EXPECT_EQ(log_->persisted_version(), 0u);
  EXPECT_FALSE(log_->read(1));
  EXPECT_FALSE(log_->last_at_or_before(~0ull));
}

TEST_P(VersionLogContract, FirstAppendMayUseAnyVersionAndReadReturnsTheRecord) {
  append(42, 7, 0);
  append(43, 7, 100);
  EXPECT_EQ(log_->first_version(), 42u);
  EXPECT_EQ(log_->last_version(), 43u);
  const auto r = log_->read(43);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, 43u);
  EXPECT_EQ(r->hlc, 7u);
  const auto expected = body_for(43, 100);
  EXPECT_TRUE(std::equal(r->body.begin(), r->body.end(), expected.begin(), expected.end()));
  EXPECT_EQ(r->crc, record_crc(43, 7, expected));
  ASSERT_TRUE(log_->read(42));
  EXPECT_TRUE(log_->read(42)->body.empty());
  EXPECT_FALSE(log_->read(41));
  EXPECT_FALSE(log_->read(44));
}

TEST_P(VersionLogContract, ContiguityViolationsThrowAndWriteNothing) {
  EXPECT_THROW(log_->append(0, 1, {}), std::invalid_argument);
  append(5, 100);
  EXPECT_THROW(log_->append(7, 100, {}), std::invalid_argument);
  EXPECT_THROW(log_->append(5, 100, {}), std::invalid_argument);
  EXPECT_THROW(log_->append(4, 100, {}), std::invalid_argument);
  EXPECT_THROW(log_->append(6, 99, {}), std::invalid_argument);  // hlc went back
  EXPECT_EQ(log_->last_version(), 5u);
  append(6, 100);
}

TEST_P(VersionLogContract, PersistCoversEverythingAppended) {
  append(1, 1);
  append(2, 2);
  EXPECT_EQ(log_->persist(), 2u);
  EXPECT_EQ(log_->persisted_version(), 2u);
}

TEST_P(VersionLogContract, LastAtOrBeforeFindsTheNewestVersionNotAfterTheTime) {
  append(1, 10);
  append(2, 20);
  append(3, 20);
  append(4, 30);
  EXPECT_FALSE(log_->last_at_or_before(9));
  EXPECT_EQ(log_->last_at_or_before(10), 1u);
  EXPECT_EQ(log_->last_at_or_before(19), 1u);
  EXPECT_EQ(log_->last_at_or_before(20), 3u);
  EXPECT_EQ(log_->last_at_or_before(29), 3u);
  EXPECT_EQ(log_->last_at_or_before(1'000'000), 4u);
}

TEST_P(VersionLogContract, TruncateAfterDropsTheTailAndAppendsContinue) {
  for (std::uint64_t v = 1; v <= 10; ++v) append(v, v);
  log_->persist();
  log_->truncate_after(6);
  EXPECT_EQ(log_->last_version(), 6u);
  EXPECT_LE(log_->persisted_version(), 6u);
  EXPECT_FALSE(log_->read(7));
  EXPECT_THROW(log_->append(8, 8, {}), std::invalid_argument);
  append(7, 70);  // a different record 7, as after a diverged tail
  EXPECT_EQ(log_->read(7)->hlc, 70u);
  log_->truncate_after(0);
  EXPECT_EQ(log_->last_version(), 0u);
  EXPECT_EQ(log_->persisted_version(), 0u);
}

TEST_P(VersionLogContract, TruncateBelowEverythingEmptiesTheLog) {
  for (std::uint64_t v = 1; v <= 5; ++v) append(v, v);
  log_->persist();
  log_->truncate_below(6);
  EXPECT_EQ(log_->first_version(), 0u);
  EXPECT_EQ(log_->last_version(), 0u);
  EXPECT_EQ(log_->persisted_version(), 0u);
  append(6, 6);  // any version starts an empty log; the store continues from its checkpoint
  EXPECT_EQ(log_->first_version(), 6u);
}

TEST_P(VersionLogContract, ResetDropsEverything) {
  for (std::uint64_t v = 1; v <= 5; ++v) append(v, v);
  log_->reset();
  EXPECT_EQ(log_->last_version(), 0u);
  EXPECT_FALSE(log_->read(3));
  append(100, 1);
  EXPECT_EQ(log_->first_version(), 100u);
}

INSTANTIATE_TEST_SUITE_P(
    Logs, VersionLogContract,
    ::testing::Values(LogKind{"Volatile", [](const TempDir&) { return std::make_unique<VolatileLog>(1000); }},
                      LogKind{"Persistent",
                              [](const TempDir& dir) -> std::unique_ptr<VersionLog> {
                                LogOptions o;
                                o.dir = dir.path();
                                o.segment_bytes = 4096;
                                return PersistentLog::open(o);
                              }}),
    [](const auto& info) { return info.param.name; });

TEST(VolatileLog, KeepsOnlyTheWindowOfNewestRecords) {
  VolatileLog log(3);
  for (std::uint64_t v = 1; v <= 5; ++v) ASSERT_EQ(log.append(v, v, body_for(v, 8)).status, AppendResult::Status::ok);
  EXPECT_EQ(log.first_version(), 3u);
  EXPECT_EQ(log.last_version(), 5u);
  EXPECT_FALSE(log.read(2));
  EXPECT_TRUE(log.read(3));
  EXPECT_FALSE(log.last_at_or_before(2));  // version 2 is gone
  EXPECT_EQ(log.persist(), 5u);
}

TEST(VolatileLog, WindowMustHoldARecord) { EXPECT_THROW(VolatileLog(0), std::invalid_argument); }

}  // namespace
