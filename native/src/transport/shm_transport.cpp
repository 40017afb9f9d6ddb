#include "transport/shm_transport.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "common/log.hpp"

namespace derecho::transport {
namespace {

constexpr std::uint64_t kShmMagic = 0x44524348'53484d31ull;  // "DRCHSHM1"
constexpr std::uint32_t kShmVersion = 2;

// Lives at offset 0 of every member's region.
struct ShmHeader {
  std::atomic<std::uint64_t> magic;
  std::uint32_t version;
  std::uint32_t member;
  std::uint64_t region_bytes;
  Doorbell doorbell;
  // Bulk writes of an epoch below this are not taken (Transport::fence_bulk_below); a writer
  // reads it in the peer's header before it copies.
  std::atomic<std::uint64_t> bulk_fence;
};
static_assert(sizeof(ShmHeader) <= kRegionHeaderBytes);

// Group names are letters, digits, '-' and '_' (validate()), so they can go in a file name as is.
std::string shm_name(const std::string& group, MemberId id) { return "/derecho-" + group + "-" + std::to_string(id); }

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, std::size_t bytes) : base_(base), bytes_(bytes) {}
  Mapping(Mapping&& o) noexcept : base_(std::exchange(o.base_, nullptr)), bytes_(o.bytes_) {}
  Mapping& operator=(Mapping&& o) noexcept {
    reset();
    base_ = std::exchange(o.base_, nullptr);
    bytes_ = o.bytes_;
    return *this;
  }
  ~Mapping() { reset(); }
  std::byte* data() const { return static_cast<std::byte*>(base_); }
  ShmHeader* header() const { return static_cast<ShmHeader*>(base_); }

 private:
  void reset() {
    if (base_) munmap(base_, bytes_);
    base_ = nullptr;
  }
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
};

Mapping map_file(int fd, std::size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw sys_error("mmap of shm region failed");
  return Mapping(p, bytes);
}

class ShmTransport final : public Transport {
 public:
  explicit ShmTransport(const TransportOptions& options)
      : options_(options), name_(shm_name(options.group.group_name, options.self)) {
    if (options.region_bytes < kRegionHeaderBytes || options.region_bytes % 4096 != 0) {
      throw std::invalid_argument("shm region size must be a multiple of 4096 and at least one page");
    }
    shm_unlink(name_.c_str());  // a stale file from a crashed run of the same group
    const int fd = shm_open(name_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) throw sys_error("shm_open(" + name_ + ") failed");
    if (ftruncate(fd, static_cast<off_t>(options.region_bytes)) != 0) {
      close(fd);
      shm_unlink(name_.c_str());
      throw sys_error("sizing shm region " + name_ + " failed (is /dev/shm full?)");
    }
    own_ = map_file(fd, options.region_bytes);
    close(fd);
    ShmHeader* h = own_.header();
    h->version = kShmVersion;
    h->member = options.self;
    h->region_bytes = options.region_bytes;
    h->magic.store(kShmMagic, std::memory_order_release);
    for (const auto& m : options.group.members) {
      if (m.id != options.self) peers_.emplace_back(m.id);
    }
  }

  ~ShmTransport() override {
    stop();
    shm_unlink(name_.c_str());
  }

  MemberId self() const override { return options_.self; }
  std::span<std::byte> region() override { return {own_.data(), options_.region_bytes}; }
  Doorbell& doorbell() override { return own_.header()->doorbell; }

  void start(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!try_map_missing_peers() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!all_mapped()) {
      connector_ = std::jthread([this](std::stop_token st) {
        while (!st.stop_requested() && !try_map_missing_peers()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      });
    }
  }

  void stop() override {
    if (connector_.joinable()) {
      connector_.request_stop();
      connector_.join();
    }
  }

  void post_write(MemberId peer, std::size_t offset, std::size_t len) override {
    Peer& p = find(peer);
    if (std::byte* to = landing(p, offset, len)) {
      copy_into_region(to, own_.data() + offset, len);
      landed(p);
    }
  }

  // One plain copy: nobody reads these bytes before a later (ordered) write announces them.
  // The peer's fence is checked before the copy; a writer stopped in the middle of it (a frozen
  // process) can still finish it after the peer raised its fence (docs/protocol-rdmc.md, Limits).
  void post_bulk_write(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch) override {
    Peer& p = find(peer);
    std::byte* to = landing(p, offset, len);
    if (!to) return;
    if (epoch < reinterpret_cast<ShmHeader*>(p.base.load(std::memory_order_acquire))->bulk_fence.load(std::memory_order_acquire)) return;
    std::memcpy(to, own_.data() + offset, len);
    std::atomic_thread_fence(std::memory_order_release);
    landed(p);
  }

  void fence_bulk_below(std::uint64_t epoch) override {
    auto& fence = own_.header()->bulk_fence;
    std::uint64_t seen = fence.load(std::memory_order_relaxed);
    while (seen < epoch && !fence.compare_exchange_weak(seen, epoch, std::memory_order_acq_rel)) {
    }
  }

  void flush() override {
    for (Peer& p : peers_) {
      if (!p.dirty) continue;
      p.dirty = false;
      if (std::byte* base = p.base.load(std::memory_order_acquire)) {
        reinterpret_cast<ShmHeader*>(base)->doorbell.ring();
      }
    }
  }

  std::uint64_t completed(MemberId peer) const override {
    return find(peer).landed.load(std::memory_order_relaxed);
  }

  std::vector<LinkEvent> take_link_events() override {
    std::vector<LinkEvent> taken;
    {
      std::lock_guard lock(events_mutex_);
      taken = std::exchange(events_, {});
    }
    for (const LinkEvent& e : taken) {
      if (e.up) find(e.peer).engine_up = true;
    }
    return taken;
  }

  bool link_up(MemberId peer) const override {
    return find(peer).base.load(std::memory_order_acquire) != nullptr;
  }

 private:
  struct Peer {
    explicit Peer(MemberId i) : id(i) {}
    MemberId id;
    Mapping mapping;
    std::atomic<std::byte*> base{nullptr};
    std::atomic<std::uint64_t> landed{0};
    bool dirty = false;
    bool engine_up = false;  // engine thread only: it has taken this peer's up event
  };

  // Where a write of [offset, offset + len) to `p` goes; null while the
  // peer is not mapped or the engine has not taken its link-up event (it re-pushes after that).
  std::byte* landing(const Peer& p, std::size_t offset, std::size_t len) const {
    if (offset < kRegionHeaderBytes || offset > options_.region_bytes || len > options_.region_bytes - offset) {
      throw std::out_of_range("shm write [" + std::to_string(offset) + ", +" + std::to_string(len) +
                              ") outside the writable region [" + std::to_string(kRegionHeaderBytes) + ", " +
                              std::to_string(options_.region_bytes) + ")");
    }
    if (!p.engine_up) return nullptr;
    return p.base.load(std::memory_order_acquire) + offset;
  }

  static void landed(Peer& p) {
    p.landed.fetch_add(1, std::memory_order_relaxed);
    p.dirty = true;
  }

  Peer& find(MemberId id) {
    for (Peer& p : peers_) {
      if (p.id == id) return p;
    }
    throw std::out_of_range("unknown peer " + std::to_string(id));
  }
  const Peer& find(MemberId id) const { return const_cast<ShmTransport*>(this)->find(id); }

  bool all_mapped() const {
    for (const Peer& p : peers_) {
      if (!p.base.load(std::memory_order_acquire)) return false;
    }
    return true;
  }

  // Maps every peer whose region file exists and is initialised; true when all are mapped.
  bool try_map_missing_peers() {
    std::lock_guard lock(map_mutex_);
    bool all = true;
    for (Peer& p : peers_) {
      if (p.base.load(std::memory_order_acquire)) continue;
      if (!try_map(p)) all = false;
    }
    return all;
  }

  bool try_map(Peer& p) {
    const std::string name = shm_name(options_.group.group_name, p.id);
    const int fd = shm_open(name.c_str(), O_RDWR, 0600);
    if (fd < 0) return false;
    struct stat st {};
    const bool sized = fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) == options_.region_bytes;
    if (!sized) {
      close(fd);
      return false;
    }
    Mapping m = map_file(fd, options_.region_bytes);
    close(fd);
    if (m.header()->magic.load(std::memory_order_acquire) != kShmMagic) return false;
    if (m.header()->version != kShmVersion || m.header()->member != p.id) {
      log(LogLevel::error, "shm", "region " + name + " has version " + std::to_string(m.header()->version) +
                                      " / member " + std::to_string(m.header()->member) + "; expected " +
                                      std::to_string(kShmVersion) + " / " + std::to_string(p.id));
      return false;
    }
    p.mapping = std::move(m);
    p.base.store(p.mapping.data(), std::memory_order_release);
    {
      std::lock_guard lock(events_mutex_);
      events_.push_back({p.id, true, "mapped " + name, 1});
    }
    doorbell().ring();
    return true;
  }

  TransportOptions options_;
  std::string name_;
  Mapping own_;
  std::deque<Peer> peers_;  // deque: Peer holds atomics and never moves
  std::mutex map_mutex_;
  std::mutex events_mutex_;
  std::vector<LinkEvent> events_;
  std::jthread connector_;
};

}  // namespace

std::unique_ptr<Transport> make_shm_transport(const TransportOptions& options) {
  return std::make_unique<ShmTransport>(options);
}

}  // namespace derecho::transport
