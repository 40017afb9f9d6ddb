// Checkpoint files: round trip, atomic replacement, and every way a damaged one is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <stdexcept>

#include "persistence/checkpoint_file.hpp"
#include "test_files.hpp"

using namespace derecho::persistence;
using namespace derecho::persistence::testing;

namespace {

class CheckpointFile : public ::testing::Test {
 protected:
  void expect_refused(const std::string& what) {
    try {
      load_checkpoint(file_);
      FAIL() << "a damaged checkpoint loaded; expected: " << what;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(file_.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }

  TempDir dir_;
  std::filesystem::path file_ = dir_.path() / "store.ckpt";
};

TEST_F(CheckpointFile, AbsentFileIsNoCheckpoint) { EXPECT_FALSE(load_checkpoint(file_)); }

TEST_F(CheckpointFile, SaveThenLoadRoundTrips) {
  save_checkpoint(file_, 1042, body_for(1, 5000));
  const auto loaded = load_checkpoint(file_);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->version, 1042u);
  EXPECT_EQ(loaded->bytes, body_for(1, 5000));
  EXPECT_FALSE(std::filesystem::exists(file_.string() + ".tmp"));
}

TEST_F(CheckpointFile, EmptyStateRoundTrips) {
  save_checkpoint(file_, 7, {});
  const auto loaded = load_checkpoint(file_);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->version, 7u);
  EXPECT_TRUE(loaded->bytes.empty());
}

TEST_F(CheckpointFile, SavingAgainReplacesAndIgnoresALeftoverTemporary) {
  save_checkpoint(file_, 1, body_for(1, 100));
  std::ofstream(file_.string() + ".tmp") << "left by a crash";
  save_checkpoint(file_, 2, body_for(2, 10));
  const auto loaded = load_checkpoint(file_);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->version, 2u);
  EXPECT_EQ(loaded->bytes, body_for(2, 10));
}

TEST_F(CheckpointFile, FlippedPayloadByteIsAChecksumMismatch) {
  save_checkpoint(file_, 3, body_for(3, 100));
  patch_file(file_, 40, {read_file(file_)[40] ^ std::byte{0x10}});
  expect_refused("checksum mismatch");
}

TEST_F(CheckpointFile, FlippedVersionIsAChecksumMismatch) {
  save_checkpoint(file_, 3, body_for(3, 100));
  patch_file(file_, 16, {std::byte{4}});
  expect_refused("checksum mismatch");
}

TEST_F(CheckpointFile, TruncatedFileIsRefused) {
  save_checkpoint(file_, 3, body_for(3, 100));
  std::filesystem::resize_file(file_, 100);
  expect_refused("header says 100 payload bytes, the file holds 68");
  std::filesystem::resize_file(file_, 10);
  expect_refused("fewer than the 32-byte header");
}

TEST_F(CheckpointFile, OtherFilesAndFormatsAreRefused) {
  save_checkpoint(file_, 3, body_for(3, 100));
  patch_file(file_, 8, {std::byte{9}});
  expect_refused("format version 9 is not supported");
  std::ofstream(file_, std::ios::trunc) << "this is not a checkpoint file at all, just text";
  expect_refused("bad magic");
}

}  // namespace
