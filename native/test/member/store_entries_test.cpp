// What the sidecar's Subscribe stream reads from a store (docs/store.md, "Reading the log"): the
// delivered versions by number, waiting for a version to be delivered, and the per-subgroup
// counters of a member.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "store/store_ops.hpp"
#include "store_harness.hpp"

namespace derecho::testing {
namespace {

using store::Entry;
using store::EntryKind;

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

void expect_same_entries(const std::vector<Entry>& a, const std::vector<Entry>& b, const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].version, b[i].version) << where << " entry " << i;
    EXPECT_EQ(a[i].hlc, b[i].hlc) << where << " entry " << i;
    EXPECT_EQ(a[i].kind, b[i].kind) << where << " entry " << i;
    EXPECT_EQ(a[i].key, b[i].key) << where << " entry " << i;
    EXPECT_EQ(text(a[i].value), text(b[i].value)) << where << " entry " << i;
  }
}

std::shared_ptr<Outcome<store::Stamp>> remove_key(Group& g, MemberId id, const std::string& key) {
  auto out = std::make_shared<Outcome<store::Stamp>>();
  g.member(id).store(0).remove(key, 0, [out](const StoreError* e, const store::Stamp& s) {
    out->done = true;
    if (e) out->error = e->code();
    out->value = s;
  });
  return out;
}

TEST(StoreEntries, ReadsPutsRemovesAndTicksInVersionOrderEverywhere) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  auto a = put(g, 0, "alpha", "one");
  g.settle();
  auto b = put(g, 1, "beta", "two!");
  g.settle();
  auto r = remove_key(g, 2, "alpha");
  g.settle();
  // A read at a time no write covers makes the idle shard tick: a version that changes no key.
  const auto now = persistence::HybridClock::wall_ns() + 1'000'000;
  std::this_thread::sleep_for(2ms);
  auto idle = version_at(g, 2, now);
  g.settle();
  ASSERT_TRUE(a->done && b->done && r->done && idle->done);
  ASSERT_EQ(g.member(0).store(0).frontier().delivered, 4u);

  const auto all = g.member(0).store(0).entries(1, 100, kAll);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].version, 1u);
  EXPECT_EQ(all[0].hlc, a->value.hlc);
  EXPECT_EQ(all[0].kind, EntryKind::put);
  EXPECT_EQ(all[0].key, "alpha");
  EXPECT_EQ(text(all[0].value), "one");
  EXPECT_EQ(all[1].hlc, b->value.hlc);
  EXPECT_EQ(all[1].kind, EntryKind::put);
  EXPECT_EQ(all[1].key, "beta");
  EXPECT_EQ(text(all[1].value), "two!");
  EXPECT_EQ(all[2].version, r->value.version);
  EXPECT_EQ(all[2].hlc, r->value.hlc);
  EXPECT_EQ(all[2].kind, EntryKind::remove);
  EXPECT_EQ(all[2].key, "alpha");
  EXPECT_TRUE(all[2].value.empty());
  EXPECT_EQ(all[3].version, 4u);
  EXPECT_EQ(all[3].kind, EntryKind::other);
  EXPECT_TRUE(all[3].key.empty());
  EXPECT_GT(all[3].hlc, all[2].hlc);
  for (MemberId id = 1; id < 3; ++id) {
    expect_same_entries(g.member(id).store(0).entries(1, 100, kAll), all, "member " + std::to_string(id));
  }

  auto& st = g.member(1).store(0);
  expect_same_entries(st.entries(2, 1, kAll), {all[1]}, "from 2, one");
  expect_same_entries(st.entries(3, 100, kAll), {all[2], all[3]}, "from 3");
  // Bytes: keys and values, never past the limit but for the first entry, which always comes.
  const std::size_t first = 5 + 3, second = 4 + 4, third = 5;
  expect_same_entries(st.entries(1, 100, 0), {all[0]}, "0 bytes");
  expect_same_entries(st.entries(1, 100, first + second - 1), {all[0]}, "short of two");
  expect_same_entries(st.entries(1, 100, first + second), {all[0], all[1]}, "exactly two");
  // Once the limit is reached nothing more comes, not even a tick of no bytes.
  expect_same_entries(st.entries(1, 100, first + second + third), {all[0], all[1], all[2]}, "three");
  // Not delivered yet: nothing.
  EXPECT_TRUE(st.entries(5, 100, kAll).empty());
  EXPECT_TRUE(st.entries(1000, 100, kAll).empty());
  EXPECT_EQ(code_of([&] { st.entries(0, 100, kAll); }), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of([&] { st.entries(1, 0, kAll); }), ErrorCode::invalid_argument);
}

TEST(StoreEntries, AVolatileWindowKeepsOnlyItsVersions) {
  Group g(3);
  g.use_store(volatile_store(8), {});
  form(g, 3);
  for (int i = 0; i < 20; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i), "v" + std::to_string(i));
  g.settle();
  auto& st = g.member(2).store(0);
  const auto f = st.frontier();
  ASSERT_EQ(f.delivered, 20u);
  ASSERT_GT(f.first_retained, 0u);
  // The base holds the state at first_retained, not the version that made it.
  EXPECT_EQ(code_of([&] { st.entries(f.first_retained, 100, kAll); }), ErrorCode::not_retained);
  EXPECT_EQ(code_of([&] { st.entries(1, 100, kAll); }), ErrorCode::not_retained);
  const auto kept = st.entries(f.first_retained + 1, 100, kAll);
  ASSERT_EQ(kept.size(), 20 - f.first_retained);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    const std::uint64_t v = f.first_retained + 1 + i;
    EXPECT_EQ(kept[i].version, v);
    EXPECT_EQ(kept[i].kind, EntryKind::put);
    // Every put wrote a key of its own, so the read at v finds exactly this write.
    const auto read = st.get(kept[i].key, v);
    ASSERT_TRUE(read.found) << kept[i].key;
    EXPECT_EQ(read.written.version, v);
    EXPECT_EQ(read.written.hlc, kept[i].hlc);
    EXPECT_EQ(text(read.value), text(kept[i].value));
  }
}

TEST(StoreEntries, APersistentLogServesThemAfterTruncationAndARestart) {
  TempDir dir;
  std::vector<Entry> before;
  {
    Group g(3);
    g.use_store(persistent_store(), dir.path);
    form(g, 3);
    for (int i = 0; i < 30; ++i) put(g, static_cast<MemberId>(i % 3), "k" + std::to_string(i % 7), "v" + std::to_string(i));
    g.settle();
    remove_key(g, 1, "k3");
    g.settle();
    auto& st = g.member(0).store(0);
    before = st.entries(1, 1000, kAll);
    ASSERT_EQ(before.size(), 31u);
    EXPECT_EQ(before.back().kind, EntryKind::remove);
    for (MemberId id = 1; id < 3; ++id) {
      expect_same_entries(g.member(id).store(0).entries(1, 1000, kAll), before, "member " + std::to_string(id));
    }
    for (MemberId id = 0; id < 3; ++id) g.member(id).store(0).truncate_below(20);
    EXPECT_EQ(st.frontier().first_retained, 20u);
    EXPECT_EQ(code_of([&] { st.entries(20, 100, kAll); }), ErrorCode::not_retained);
    EXPECT_EQ(code_of([&] { st.entries(3, 100, kAll); }), ErrorCode::not_retained);
    expect_same_entries(st.entries(21, 1000, kAll), {before.begin() + 20, before.end()}, "after truncation");
  }
  Group g(3);
  g.use_store(persistent_store(), dir.path);
  form(g, 3);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) {
    auto& st = g.member(id).store(0);
    ASSERT_EQ(st.frontier().delivered, 31u) << "member " << id;
    expect_same_entries(st.entries(21, 1000, kAll), {before.begin() + 20, before.end()}, "restarted member " + std::to_string(id));
    EXPECT_EQ(code_of([&] { st.entries(20, 100, kAll); }), ErrorCode::not_retained);
  }
  // The log goes on from there, and the new version reads back like the old ones.
  auto p = put(g, 2, "after", "restart");
  g.settle();
  ASSERT_TRUE(p->done);
  const auto next = g.member(0).store(0).entries(32, 10, kAll);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].version, p->value.version);
  EXPECT_EQ(next[0].hlc, p->value.hlc);
  EXPECT_EQ(next[0].key, "after");
  EXPECT_EQ(text(next[0].value), "restart");
}

TEST(StoreEntries, WaitDeliveredCompletesAtOnceOrLaterAndFailsWhenTheMemberStops) {
  Group g(3);
  g.use_store(volatile_store(), {});
  form(g, 3);
  put(g, 0, "k", "1");
  g.settle();
  auto& st = g.member(2).store(0);
  auto now = std::make_shared<Outcome<std::uint64_t>>();
  st.wait_delivered(1, [now](const StoreError* e, std::uint64_t v) {
    now->done = true;
    if (e) now->error = e->code();
    now->value = v;
  });
  ASSERT_TRUE(now->done);  // on this thread, before the call returned
  EXPECT_FALSE(now->error);
  EXPECT_EQ(now->value, 1u);

  auto later = std::make_shared<Outcome<std::uint64_t>>();
  std::uint64_t seen_inside = 0;
  st.wait_delivered(3, [later, &st, &seen_inside](const StoreError* e, std::uint64_t v) {
    later->done = true;
    if (e) later->error = e->code();
    later->value = v;
    // Completions run outside the store's lock: calling back into the store must not deadlock.
    seen_inside = st.frontier().delivered;
  });
  put(g, 1, "k", "2");
  g.settle();
  EXPECT_FALSE(later->done);
  put(g, 0, "k", "3");
  g.settle();
  ASSERT_TRUE(later->done);
  EXPECT_FALSE(later->error);
  EXPECT_EQ(later->value, 3u);
  EXPECT_EQ(seen_inside, 3u);

  auto never = std::make_shared<Outcome<std::uint64_t>>();
  g.member(0).store(0).wait_delivered(100, [never](const StoreError* e, std::uint64_t v) {
    never->done = true;
    if (e) never->error = e->code();
    never->value = v;
  });
  EXPECT_FALSE(never->done);
  g.member(0).stop();
  ASSERT_TRUE(never->done);
  EXPECT_EQ(never->error, ErrorCode::stopped);
  EXPECT_EQ(code_of([&] { g.member(0).store(0).wait_delivered(1, [](auto, auto) {}); }), ErrorCode::stopped);
}

TEST(SubgroupStats, CountDeliveriesAndTheSendQueueOfEachSubgroupAcrossViews) {
  Group g(3, 1, 2);
  form(g, 3);
  for (std::uint32_t sg = 0; sg < 2; ++sg) {
    const auto s = g.member(0).subgroup_stats(sg);
    EXPECT_EQ(s.delivered, 0u);
    EXPECT_EQ(s.delivered_bytes, 0u);
    EXPECT_EQ(s.queued_messages, 0u);
    EXPECT_EQ(s.queued_bytes, 0u);
  }
  // payload(seq) is 24 + seq % 40 bytes.
  g.send(0, 0, 5);
  g.send(1, 1, 3);
  EXPECT_EQ(g.member(0).subgroup_stats(0).queued_messages, 5u);
  EXPECT_EQ(g.member(0).subgroup_stats(0).queued_bytes, 24u + 25 + 26 + 27 + 28);
  EXPECT_EQ(g.member(0).subgroup_stats(1).queued_messages, 0u);
  EXPECT_EQ(g.member(1).subgroup_stats(1).queued_messages, 3u);
  EXPECT_EQ(g.member(1).subgroup_stats(1).queued_bytes, 24u + 25 + 26);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) {
    const auto s0 = g.member(id).subgroup_stats(0);
    const auto s1 = g.member(id).subgroup_stats(1);
    EXPECT_EQ(s0.delivered, 5u) << "member " << id;
    EXPECT_EQ(s0.delivered_bytes, 130u) << "member " << id;
    EXPECT_EQ(s1.delivered, 3u) << "member " << id;
    EXPECT_EQ(s1.delivered_bytes, 75u) << "member " << id;
    EXPECT_EQ(s0.queued_messages + s1.queued_messages + s0.queued_bytes + s1.queued_bytes, 0u) << "member " << id;
    EXPECT_EQ(g.member(id).stats().delivered, 8u);
  }
  // A view change does not reset them.
  g.crash(2);
  g.advance(1500ms);
  ASSERT_EQ(g.view_members(0).size(), 2u);
  g.send(1, 0, 2);
  g.settle();
  EXPECT_EQ(g.member(0).subgroup_stats(0).delivered, 7u);
  EXPECT_EQ(g.member(0).subgroup_stats(0).delivered_bytes, 130u + 24 + 25);
  EXPECT_EQ(g.member(0).subgroup_stats(1).delivered, 3u);
  EXPECT_THROW(g.member(0).subgroup_stats(2), std::invalid_argument);
}

TEST(SubgroupStats, AStoreCountsItsOperationsAndItsOwnOutbox) {
  Group g(3);
  // The multicast's queue takes one message of maxMessageBytes at least: one operation here, the
  // rest wait in the store's outbox.
  g.max_queued(64);
  g.use_store(volatile_store(), {});
  form(g, 3);
  const std::string value(100, 'v');
  const std::uint64_t op_bytes = store::kOpHeaderBytes + 2 + value.size();
  for (int i = 0; i < 3; ++i) put(g, 0, "k" + std::to_string(i), value);
  const auto queued = g.member(0).subgroup_stats(0);
  EXPECT_EQ(queued.queued_messages, 3u);
  EXPECT_EQ(queued.queued_bytes, 3 * op_bytes);
  EXPECT_EQ(g.member(0).store(0).outbox().operations, 2u);
  g.settle();
  for (MemberId id = 0; id < 3; ++id) {
    const auto s = g.member(id).subgroup_stats(0);
    EXPECT_EQ(s.delivered, 3u) << "member " << id;
    EXPECT_EQ(s.delivered_bytes, 3 * op_bytes) << "member " << id;
    EXPECT_EQ(s.queued_messages, 0u) << "member " << id;
    EXPECT_EQ(s.queued_bytes, 0u) << "member " << id;
  }
}

}  // namespace
}  // namespace derecho::testing
