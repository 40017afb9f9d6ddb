#include "transport/shm_transport.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

using namespace derecho;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kRegion = 3 * 4096;

GroupConfig shm_group(const std::string& tag, std::size_t n) {
  GroupConfig c;
  c.group_name = "shm-test-" + tag + "-" + std::to_string(getpid());
  c.transport = TransportKind::shm;
  for (std::size_t i = 0; i < n; ++i) c.members.push_back({static_cast<MemberId>(i), "", 0});
  return c;
}

std::uint64_t load(std::span<std::byte> region, std::size_t offset) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(region.data() + offset))
      .load(std::memory_order_acquire);
}

}  // namespace

TEST(ShmTransport, DataPostedBeforeACounterIsVisibleWhenTheCounterIs) {
  const auto config = shm_group("order", 2);
  auto a = transport::make_shm_transport({config, 0, kRegion});
  auto b = transport::make_shm_transport({config, 1, kRegion});
  a->start(2s);
  b->start(2s);
  ASSERT_TRUE(a->link_up(1));
  ASSERT_EQ(a->take_link_events().size(), 1u);
  std::atomic<bool> ok{true};
  std::thread reader([&] {
    std::uint64_t last = 0;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (last < 2000 && std::chrono::steady_clock::now() < deadline) {
      const std::uint32_t seen = b->doorbell().snapshot();
      const std::uint64_t counter = load(b->region(), 4096);
      if (counter > last) {
        // The data word for `counter` was posted before the counter: it must already be there
        // (or a later value of the same slot, if the writer has lapped it since).
        const std::uint64_t data = load(b->region(), 8192 + (counter % 64) * 8);
        if (data < counter || data % 64 != counter % 64) ok = false;
        last = counter;
      } else {
        b->doorbell().wait(seen, 10ms);
      }
    }
    if (last != 2000) ok = false;
  });
  auto region = a->region();
  for (std::uint64_t v = 1; v <= 2000; ++v) {
    std::memcpy(region.data() + 8192 + (v % 64) * 8, &v, 8);
    a->post_write(1, 8192 + (v % 64) * 8, 8);
    std::memcpy(region.data() + 4096, &v, 8);
    a->post_write(1, 4096, 8);
    a->flush();
  }
  reader.join();
  EXPECT_TRUE(ok.load());
  EXPECT_EQ(a->completed(1), 4000u);
}

TEST(ShmTransport, PeerThatStartsLaterComesUpWithALinkEvent) {
  const auto config = shm_group("late", 2);
  auto a = transport::make_shm_transport({config, 0, kRegion});
  a->start(20ms);
  EXPECT_FALSE(a->link_up(1));
  auto b = transport::make_shm_transport({config, 1, kRegion});
  b->start(2s);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::vector<transport::LinkEvent> events;
  while (events.empty() && std::chrono::steady_clock::now() < deadline) {
    events = a->take_link_events();
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].peer, 1u);
  EXPECT_TRUE(events[0].up);
  EXPECT_TRUE(a->link_up(1));
}

TEST(ShmTransport, WritesIntoTheHeaderOrPastTheEndAreRefused) {
  const auto config = shm_group("bounds", 2);
  auto a = transport::make_shm_transport({config, 0, kRegion});
  auto b = transport::make_shm_transport({config, 1, kRegion});
  a->start(2s);
  EXPECT_THROW(a->post_write(1, 0, 8), std::out_of_range);
  EXPECT_THROW(a->post_write(1, kRegion - 4, 8), std::out_of_range);
}

TEST(ShmTransport, StaleRegionFromACrashedRunIsReplaced) {
  const auto config = shm_group("stale", 1);
  const std::string name = "/derecho-" + config.group_name + "-0";
  const int fd = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  close(fd);
  auto a = transport::make_shm_transport({config, 0, kRegion});
  EXPECT_EQ(a->region().size(), kRegion);
  EXPECT_EQ(load(a->region(), 4096), 0u);
}

TEST(ShmTransport, WritesWaitForTheEngineToTakeTheLinkUpEvent) {
  const auto config = shm_group("engine-up", 2);
  auto a = transport::make_shm_transport({config, 0, kRegion});
  auto b = transport::make_shm_transport({config, 1, kRegion});
  a->start(2s);
  ASSERT_TRUE(a->link_up(1));
  const std::uint64_t v = 7;
  std::memcpy(a->region().data() + 4096, &v, 8);
  a->post_write(1, 4096, 8);  // mapped, but the engine has not taken the up event: dropped
  EXPECT_EQ(load(b->region(), 4096), 0u);
  EXPECT_EQ(a->completed(1), 0u);
  ASSERT_EQ(a->take_link_events().size(), 1u);
  a->post_write(1, 4096, 8);
  EXPECT_EQ(load(b->region(), 4096), 7u);
  EXPECT_EQ(a->completed(1), 1u);
}
