#pragma once
// What the store tests share (docs/store.md): store configs small enough for the in-process
// harness, temp directories for logs, and puts and reads whose outcomes the test inspects after
// driving the group.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "group_harness.hpp"

namespace derecho::testing {

namespace fs = std::filesystem;
using store::ErrorCode;
using store::StoreError;

struct TempDir {
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("derecho-store-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
};

inline StoreConfig volatile_store(std::uint64_t window = 100'000) {
  StoreConfig c;
  c.storage = StorageKind::volatile_memory;
  c.max_key_bytes = 32;
  c.max_value_bytes = 128;
  c.window = window;
  return c;
}

inline StoreConfig persistent_store() {
  StoreConfig c = volatile_store();
  c.storage = StorageKind::persistent;
  c.segment_bytes = 8192;
  return c;
}

inline std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }
inline std::string text(const std::vector<std::byte>& v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

template <typename T>
struct Outcome {
  bool done = false;
  std::optional<ErrorCode> error;
  T value{};
};

inline std::shared_ptr<Outcome<store::Stamp>> put(Group& g, MemberId id, const std::string& key, const std::string& value,
                                           std::uint64_t after = 0) {
  auto out = std::make_shared<Outcome<store::Stamp>>();
  g.member(id).store(0).put(key, bytes(value), after, [out](const StoreError* e, const store::Stamp& s) {
    out->done = true;
    if (e) out->error = e->code();
    out->value = s;
  });
  return out;
}

inline std::shared_ptr<Outcome<std::uint64_t>> version_at(Group& g, MemberId id, std::uint64_t t) {
  auto out = std::make_shared<Outcome<std::uint64_t>>();
  g.member(id).store(0).version_at_time(t, [out](const StoreError* e, std::uint64_t v) {
    out->done = true;
    if (e) out->error = e->code();
    out->value = v;
  });
  return out;
}

inline ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const StoreError& e) {
    return e.code();
  }
  ADD_FAILURE() << "no StoreError";
  return ErrorCode::stopped;
}

// Every member holds the same value of every key at every version from `from` to its latest.
inline void expect_same_state(Group& g, const std::vector<MemberId>& ids, std::uint64_t from = 0) {
  auto& first = g.member(ids[0]).store(0);
  const auto latest = first.frontier().delivered;
  for (MemberId id : ids) ASSERT_EQ(g.member(id).store(0).frontier().delivered, latest) << "member " << id;
  for (std::uint64_t v = from; v <= latest; ++v) {
    const auto keys = first.list_keys(v);
    for (MemberId id : ids) {
      auto& st = g.member(id).store(0);
      ASSERT_EQ(st.list_keys(v), keys) << "member " << id << " version " << v;
      for (const auto& k : keys) {
        const auto a = first.get(k, v);
        const auto b = st.get(k, v);
        ASSERT_TRUE(b.found);
        EXPECT_EQ(text(a.value), text(b.value)) << "member " << id << " key " << k << " version " << v;
        EXPECT_EQ(a.written.version, b.written.version);
        EXPECT_EQ(a.written.hlc, b.written.hlc);
      }
    }
  }
}

}  // namespace derecho::testing
