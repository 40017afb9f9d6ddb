#include "transport/tcp_transport.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "common/log.hpp"
#include "transport/tcp_frame.hpp"
#include "transport/tcp_out_queue.hpp"
#include "transport/tcp_socket.hpp"

namespace derecho::transport {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp::Fd;
using tcp::FrameEvent;
using tcp::FrameHeader;
using tcp::FrameKind;
using tcp::FrameReader;
using tcp::Hello;
using tcp::OutQueue;

// Inbound connections start with a buffer that only fits a handshake, so unauthenticated
// connections (probes, scanners) cost little; a member's connection then gets a big one so a
// busy stream is drained in few reads.
constexpr std::size_t kHandshakeBufferBytes = 4096;
constexpr std::size_t kInboundBufferBytes = 1u << 20;
// Outbound connections only ever receive the handshake reply and acks.
constexpr std::size_t kOutboundReadBytes = 4096;
// Per readable connection per wake-up, so one busy peer cannot starve the others.
constexpr std::size_t kReadBudgetBytes = 4u << 20;
// A peer that stops reading must not make us buffer without bound.
constexpr std::size_t kMaxQueuedBytes = 256u << 20;
constexpr Clock::duration kFirstBackoff = 5ms;
constexpr Clock::duration kMaxBackoff = 200ms;
constexpr Clock::duration kHandshakeTimeout = 3s;
constexpr std::size_t kNoFrame = std::numeric_limits<std::size_t>::max();

// epoll_event.data: two tag bits, then for outbound sockets a generation (so events of a
// closed socket never reach its successor) and the peer index, for inbound ones a serial.
constexpr std::uint64_t kListenToken = 0;
constexpr std::chrono::milliseconds kAcceptPause{100};
constexpr std::uint64_t kWakeToken = 1;
constexpr std::uint64_t kTagMask = 3ull << 62;
constexpr std::uint64_t kOutboundTag = 1ull << 62;
constexpr std::uint64_t kInboundTag = 2ull << 62;

constexpr std::string_view kComponent = "tcp";

class MappedRegion {
 public:
  explicit MappedRegion(std::size_t bytes) : bytes_(bytes) {
    // NORESERVE: large-object areas are mostly never touched; only touched pages take memory.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      throw std::runtime_error("cannot map a " + std::to_string(bytes) +
                               "-byte region: " + tcp::errno_text(errno));
    }
    data_ = static_cast<std::byte*>(p);
  }
  ~MappedRegion() { ::munmap(data_, bytes_); }
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  std::byte* data() const { return data_; }
  std::size_t size() const { return bytes_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_;
};

enum class LinkState { waiting, connecting, handshaking, up };

// Our outbound connection to one peer, which carries our writes to it.
struct Peer {
  Peer(std::size_t index, const MemberAddress& address, std::uint64_t region_bytes)
      : index(index), id(address.id), host(address.host), port(address.port),
        name("member " + std::to_string(address.id)), reader(kOutboundReadBytes, region_bytes) {}

  const std::size_t index;
  const MemberId id;
  const std::string host;
  const std::uint16_t port;
  const std::string name;

  // Engine thread only: frames posted since the last flush.
  OutQueue pending;
  std::uint64_t pending_session = 0;
  std::uint64_t engine_session = 0;  // the session whose up event the engine has taken
  std::size_t last_header = kNoFrame;  // where in `pending`'s own tail the last write frame starts
  std::uint64_t last_end = 0;          // region offset just past that frame's bytes

  // Guarded by `mutex`: the engine's flush() sends directly; the IO thread drains the rest.
  std::mutex mutex;
  Fd fd;
  std::uint64_t token = 0;
  OutQueue backlog;
  bool backlog_armed = false;  // EPOLLOUT requested
  std::string break_reason;    // why the engine thread cut the link, for the IO thread to report

  // Written under `mutex`, read lock-free by the engine thread.
  std::atomic<bool> up{false};
  std::atomic<std::uint64_t> session{0};  // bumped before every link-up
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::size_t> backlog_bytes{0};

  // IO thread only.
  LinkState state = LinkState::waiting;
  Clock::time_point deadline{};  // next connect attempt, or when a connect/handshake gives up
  Clock::duration backoff = kFirstBackoff;
  std::uint64_t generation = 0;
  std::uint64_t completed_base = 0;  // completed() when the current session began
  FrameReader reader;
  std::string last_failure;
};

// A connection a peer opened to us, carrying its writes into our region.
struct Inbound {
  Inbound(Fd socket, std::uint64_t token, std::string from, std::uint64_t region_bytes)
      : fd(std::move(socket)), token(token), name(std::move(from)),
        reader(kHandshakeBufferBytes, region_bytes) {}

  Fd fd;
  const std::uint64_t token;
  std::string name;  // the remote address until the handshake names the member
  std::optional<MemberId> peer;
  FrameReader reader;
  std::uint64_t applied = 0;  // post_write calls applied from this connection
  std::uint64_t acked = 0;    // the value of the last ack queued
  bool ack_due = false;
  std::vector<std::byte> out;  // handshake reply and acks not yet sent
  std::size_t out_sent = 0;
  bool out_armed = false;
};

std::size_t checked_region_bytes(std::size_t bytes) {
  if (bytes < kRegionHeaderBytes || bytes % 4096 != 0) {
    throw std::invalid_argument("region_bytes " + std::to_string(bytes) +
                                " must be a multiple of 4096 and at least " +
                                std::to_string(kRegionHeaderBytes));
  }
  return bytes;
}

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(const TransportOptions& options);
  ~TcpTransport() override { stop(); }

  MemberId self() const override { return self_; }
  std::span<std::byte> region() override { return {region_.data(), region_.size()}; }
  void start(std::chrono::milliseconds timeout) override;
  void stop() override;
  void post_write(MemberId peer, std::size_t offset, std::size_t len) override;
  void post_bulk_write(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch) override;
  void post_bulk_copy(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch) override;
  void fence_bulk_below(std::uint64_t epoch) override {
    std::uint64_t seen = bulk_fence_.load(std::memory_order_relaxed);
    while (seen < epoch && !bulk_fence_.compare_exchange_weak(seen, epoch, std::memory_order_acq_rel)) {
    }
  }
  void flush() override;
  std::uint64_t completed(MemberId peer) const override {
    return find_peer(peer).completed.load(std::memory_order_acquire);
  }
  std::size_t queued_bytes(MemberId peer) const override {
    const Peer& p = find_peer(peer);
    return p.pending.bytes() + p.backlog_bytes.load(std::memory_order_relaxed);
  }
  Doorbell& doorbell() override { return doorbell_; }
  std::vector<LinkEvent> take_link_events() override;
  bool link_up(MemberId peer) const override {
    return find_peer(peer).up.load(std::memory_order_acquire);
  }
  std::uint64_t bad_frames() const override { return bad_frames_.load(std::memory_order_relaxed); }

 private:
  Peer& find_peer(MemberId id) const;
  bool all_links_up() const;
  void log_line(LogLevel level, const std::string& message) const;
  void push_event(LinkEvent event);
  void count_bad_frame(const std::string& from, const std::string& what);
  void set_events(int fd, std::uint64_t token, bool want_write);
  // Engine thread, with peer.mutex held.
  void break_link_locked(Peer& peer, std::string reason);
  void append_backlog_locked(Peer& peer);
  void queue_bulk(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch, bool by_reference);
  // Engine thread: cuts the link when a peer that does not read has too much queued.
  void check_queue_limit(Peer& peer);
  // Engine thread: the peer's pending queue if writes to it are taken now (its link is up in the
  // session whose up event the engine took), else null: such writes are dropped.
  OutQueue* pending_for(Peer& peer, std::size_t offset, std::size_t len);

  // IO thread.
  void run();
  int next_timeout_ms(Clock::time_point now) const;
  void run_timers(Clock::time_point now);
  void dispatch(const epoll_event& event);
  void begin_connect(Peer& peer, Clock::time_point now);
  void on_connected(Peer& peer);
  void handle_outbound(Peer& peer, std::uint32_t events);
  void read_outbound(Peer& peer);
  bool process_outbound(Peer& peer);
  void drain_backlog(Peer& peer);
  void link_came_up(Peer& peer);
  void fail_outbound(Peer& peer, std::string reason);
  void accept_all();
  void watch_listener(std::uint32_t events);
  void handle_inbound(Inbound& conn, std::uint32_t events);
  void read_inbound(Inbound& conn);
  bool process_inbound(Inbound& conn);
  // A write from `conn` landed; `completes` of its posts are done (0 for a partial frame).
  void applied(Inbound& conn, std::uint32_t completes);
  bool accept_hello(Inbound& conn, const Hello& hello);
  bool send_inbound_out(Inbound& conn);
  void send_due_acks();
  void close_inbound(Inbound& conn, LogLevel level, const std::string& why);
  void cut_inbound(Inbound& conn, const std::string& what);

  const MemberId self_;
  const std::string group_name_;
  MappedRegion region_;
  Doorbell doorbell_;
  std::vector<std::unique_ptr<Peer>> peers_;
  Fd listen_fd_;
  Fd epoll_fd_;
  Fd wake_fd_;
  std::thread io_thread_;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> bad_frames_{0};
  // Bulk frames of an older epoch are read and dropped (fence_bulk_below).
  std::atomic<std::uint64_t> bulk_fence_{0};
  // Where a dropped bulk frame's bytes are read to, off the socket.
  std::vector<std::byte> discard_;

  std::mutex events_mutex_;
  std::condition_variable links_cv_;
  std::vector<LinkEvent> events_;

  // IO thread only.
  std::unordered_map<std::uint64_t, std::unique_ptr<Inbound>> inbound_;
  std::uint64_t next_inbound_serial_ = 0;
  std::optional<Clock::time_point> accept_resumes_at_;  // accepts paused after a hard accept error
  std::vector<std::uint64_t> acks_due_;
  std::vector<std::uint64_t> acks_sending_;
  bool applied_this_batch_ = false;
};

TcpTransport::TcpTransport(const TransportOptions& options)
    : self_(options.self),
      group_name_(options.group.group_name),
      region_(checked_region_bytes(options.region_bytes)) {
  if (group_name_.size() > tcp::kMaxGroupNameBytes) {
    throw std::invalid_argument("group name is " + std::to_string(group_name_.size()) +
                                " bytes; the tcp handshake allows at most " +
                                std::to_string(tcp::kMaxGroupNameBytes));
  }
  const MemberAddress* me = nullptr;
  for (const MemberAddress& m : options.group.members) {
    if (m.id == self_) {
      me = &m;
    } else {
      peers_.push_back(std::make_unique<Peer>(peers_.size(), m, region_.size()));
    }
  }
  if (me == nullptr) {
    throw std::invalid_argument("member " + std::to_string(self_) + " is not in group '" +
                                group_name_ + "'");
  }

  sockaddr_in address{};
  std::string error = tcp::resolve_ipv4(me->host, me->port, address);
  if (error.empty()) listen_fd_ = tcp::listen_on(address, error);
  if (!listen_fd_) {
    throw std::runtime_error("member " + std::to_string(self_) + " cannot listen: " + error);
  }
  epoll_fd_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!epoll_fd_ || !wake_fd_) {
    throw std::runtime_error("cannot create epoll/eventfd: " + tcp::errno_text(errno));
  }
  for (const auto& [fd, token] : {std::pair{listen_fd_.get(), kListenToken},
                                  std::pair{wake_fd_.get(), kWakeToken}}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
  }
}

Peer& TcpTransport::find_peer(MemberId id) const {
  for (const auto& p : peers_) {
    if (p->id == id) return *p;
  }
  throw std::invalid_argument("member " + std::to_string(id) + " is not a peer of member " +
                              std::to_string(self_));
}

bool TcpTransport::all_links_up() const {
  return std::all_of(peers_.begin(), peers_.end(),
                     [](const auto& p) { return p->up.load(std::memory_order_acquire); });
}

void TcpTransport::log_line(LogLevel level, const std::string& message) const {
  log(level, kComponent, "member " + std::to_string(self_) + ": " + message);
}

void TcpTransport::start(std::chrono::milliseconds timeout) {
  if (!started_ && !stopped_) {
    started_ = true;
    io_thread_ = std::thread([this] { run(); });
  }
  std::unique_lock lock(events_mutex_);
  links_cv_.wait_for(lock, timeout, [this] { return all_links_up() || stopping_.load(); });
}

void TcpTransport::stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_.get(), &one, sizeof one);
  if (io_thread_.joinable()) io_thread_.join();
  for (auto& p : peers_) {
    std::lock_guard lock(p->mutex);
    p->up.store(false, std::memory_order_release);
    p->fd.reset();
    p->backlog.clear();
    p->backlog_bytes.store(0);
  }
  inbound_.clear();
  listen_fd_.reset();
  links_cv_.notify_all();
}

std::vector<LinkEvent> TcpTransport::take_link_events() {
  std::vector<LinkEvent> taken;
  {
    std::lock_guard lock(events_mutex_);
    taken = std::exchange(events_, {});
  }
  for (const LinkEvent& e : taken) {
    if (e.up) find_peer(e.peer).engine_session = e.session;
  }
  return taken;
}

void TcpTransport::push_event(LinkEvent event) {
  {
    std::lock_guard lock(events_mutex_);
    events_.push_back(std::move(event));
  }
  links_cv_.notify_all();
  doorbell_.ring();
}

void TcpTransport::count_bad_frame(const std::string& from, const std::string& what) {
  bad_frames_.fetch_add(1, std::memory_order_relaxed);
  log_line(LogLevel::warn, "bad frame from " + from + ": " + what);
}

void TcpTransport::set_events(int fd, std::uint64_t token, bool want_write) {
  epoll_event ev{};
  ev.events = EPOLLIN | (want_write ? EPOLLOUT : 0u);
  ev.data.u64 = token;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev);
}

// ---- engine thread -------------------------------------------------------------------------

OutQueue* TcpTransport::pending_for(Peer& peer, std::size_t offset, std::size_t len) {
  if (offset < kRegionHeaderBytes || offset > region_.size() || len > region_.size() - offset) {
    throw std::out_of_range("post_write [" + std::to_string(offset) + ", " +
                            std::to_string(offset + len) + ") is outside the writable region [" +
                            std::to_string(kRegionHeaderBytes) + ", " +
                            std::to_string(region_.size()) + ")");
  }
  // A write posted while the link is down, or before the engine took its up event, is dropped:
  // the engine re-pushes on link-up.
  if (!peer.up.load(std::memory_order_acquire)) return nullptr;
  const std::uint64_t session = peer.session.load(std::memory_order_relaxed);
  if (session != peer.engine_session) return nullptr;
  if (session != peer.pending_session) {
    peer.pending.clear();
    peer.last_header = kNoFrame;
    peer.pending_session = session;
  }
  return &peer.pending;
}

void TcpTransport::post_write(MemberId peer_id, std::size_t offset, std::size_t len) {
  Peer& peer = find_peer(peer_id);
  OutQueue* pending = pending_for(peer, offset, len);
  if (!pending) return;
  const std::byte* src = region_.data() + offset;
  auto& out = pending->own_tail();
  const std::size_t before = out.size();

  bool merged = false;
  if (peer.last_header != kNoFrame && peer.last_end == offset) {
    FrameHeader h = tcp::decode_header(out.data() + peer.last_header);
    if (len <= tcp::kMaxWritePayload - h.length &&
        h.count < std::numeric_limits<std::uint32_t>::max()) {
      h.length += static_cast<std::uint32_t>(len);
      h.count += 1;
      tcp::encode_header(h, out.data() + peer.last_header);
      out.insert(out.end(), src, src + len);
      peer.last_end += len;
      merged = true;
    }
  }
  if (!merged) {
    // Longer posts become several frames; only the last one counts the post as complete.
    do {
      const std::size_t chunk = std::min<std::size_t>(len, tcp::kMaxWritePayload);
      FrameHeader h;
      h.kind = static_cast<std::uint16_t>(FrameKind::write);
      h.length = static_cast<std::uint32_t>(chunk);
      h.count = chunk == len ? 1 : 0;
      h.value = offset;
      std::array<std::byte, tcp::kHeaderBytes> header;
      tcp::encode_header(h, header.data());
      peer.last_header = out.size();
      out.insert(out.end(), header.begin(), header.end());
      out.insert(out.end(), src, src + chunk);
      src += chunk;
      offset += chunk;
      len -= chunk;
    } while (len != 0);
    peer.last_end = offset;
  }
  pending->grew(out.size() - before);
  check_queue_limit(peer);
}

void TcpTransport::post_bulk_write(MemberId peer_id, std::size_t offset, std::size_t len, std::uint64_t epoch) {
  queue_bulk(peer_id, offset, len, epoch, true);
}

void TcpTransport::post_bulk_copy(MemberId peer_id, std::size_t offset, std::size_t len, std::uint64_t epoch) {
  queue_bulk(peer_id, offset, len, epoch, false);
}

// By reference, the bytes stay in the region until the socket takes them and only the frame
// headers are copied; otherwise they are copied now.
void TcpTransport::queue_bulk(MemberId peer_id, std::size_t offset, std::size_t len, std::uint64_t epoch, bool by_reference) {
  Peer& peer = find_peer(peer_id);
  OutQueue* pending = pending_for(peer, offset, len);
  if (!pending) return;
  do {
    const std::size_t chunk = std::min<std::size_t>(len, tcp::kMaxWritePayload);
    FrameHeader h;
    h.kind = static_cast<std::uint16_t>(FrameKind::bulk);
    h.length = static_cast<std::uint32_t>(chunk + tcp::kBulkEpochBytes);
    h.count = chunk == len ? 1 : 0;
    h.value = offset;
    auto& out = pending->own_tail();
    const std::size_t at = out.size();
    out.resize(at + tcp::kHeaderBytes + tcp::kBulkEpochBytes);
    tcp::encode_header(h, out.data() + at);
    std::memcpy(out.data() + at + tcp::kHeaderBytes, &epoch, tcp::kBulkEpochBytes);
    pending->grew(tcp::kHeaderBytes + tcp::kBulkEpochBytes);
    if (by_reference) {
      pending->append_reference({region_.data() + offset, chunk});
    } else {
      out.insert(out.end(), region_.data() + offset, region_.data() + offset + chunk);
      pending->grew(chunk);
    }
    offset += chunk;
    len -= chunk;
  } while (len != 0);
  peer.last_header = kNoFrame;  // a write after this one starts a frame of its own
  check_queue_limit(peer);
}

void TcpTransport::check_queue_limit(Peer& peer) {
  if (peer.pending.bytes() + peer.backlog_bytes.load(std::memory_order_relaxed) <= kMaxQueuedBytes) return;
  std::lock_guard lock(peer.mutex);
  break_link_locked(peer, "more than " + std::to_string(kMaxQueuedBytes) +
                              " bytes queued for the peer (it is not reading)");
  peer.pending.clear();
  peer.last_header = kNoFrame;
}

void TcpTransport::flush() {
  for (auto& p : peers_) {
    Peer& peer = *p;
    if (peer.pending.empty()) continue;
    {
      std::lock_guard lock(peer.mutex);
      const bool current = peer.up.load(std::memory_order_relaxed) &&
                           peer.session.load(std::memory_order_relaxed) == peer.pending_session;
      if (!current || !peer.fd) {
        // The link went down after these were posted: they are dropped like any write to a
        // down link.
      } else if (peer.backlog.empty()) {
        if (const int err = peer.pending.send_some(peer.fd.get()); err != 0) {
          break_link_locked(peer, "send failed: " + tcp::errno_text(err));
        } else if (!peer.pending.empty()) {
          // The socket is full: the IO thread sends the rest when it drains, and later
          // flushes queue behind it so per-peer order holds.
          peer.pending.move_to(peer.backlog);
          peer.backlog_armed = true;
          set_events(peer.fd.get(), peer.token, true);
        }
      } else {
        append_backlog_locked(peer);
      }
      peer.backlog_bytes.store(peer.backlog.bytes(), std::memory_order_relaxed);
    }
    peer.pending.clear();
    peer.last_header = kNoFrame;
  }
}

void TcpTransport::append_backlog_locked(Peer& peer) {
  if (peer.backlog.bytes() + peer.pending.bytes() > kMaxQueuedBytes) {
    break_link_locked(peer, "more than " + std::to_string(kMaxQueuedBytes) +
                                " bytes queued for the peer (it is not reading)");
    return;
  }
  peer.pending.move_to(peer.backlog);
}

void TcpTransport::break_link_locked(Peer& peer, std::string reason) {
  if (!peer.up.load(std::memory_order_relaxed)) return;
  peer.up.store(false, std::memory_order_release);
  peer.break_reason = std::move(reason);
  peer.backlog.clear();
  // The IO thread sees the shutdown as a hang-up and does the rest of the teardown.
  if (peer.fd) ::shutdown(peer.fd.get(), SHUT_RDWR);
}

// ---- IO thread -----------------------------------------------------------------------------

void TcpTransport::run() {
  const Clock::time_point now = Clock::now();
  for (auto& p : peers_) p->deadline = now;
  std::array<epoll_event, 64> events;
  while (!stopping_.load(std::memory_order_relaxed)) {
    const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                               next_timeout_ms(Clock::now()));
    if (n < 0) {
      if (errno == EINTR) continue;
      log_line(LogLevel::error, "epoll_wait failed, IO thread stops: " + tcp::errno_text(errno));
      return;
    }
    applied_this_batch_ = false;
    for (int i = 0; i < n; ++i) dispatch(events[static_cast<std::size_t>(i)]);
    run_timers(Clock::now());
    // One ring per batch, however many frames landed: the reader takes them all in one pass.
    if (applied_this_batch_) doorbell_.ring();
    send_due_acks();
  }
}

int TcpTransport::next_timeout_ms(Clock::time_point now) const {
  std::optional<Clock::time_point> earliest = accept_resumes_at_;
  for (const auto& p : peers_) {
    if (p->state != LinkState::up && (!earliest || p->deadline < *earliest)) earliest = p->deadline;
  }
  if (!earliest) return -1;
  if (*earliest <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(*earliest - now).count());
}

void TcpTransport::run_timers(Clock::time_point now) {
  if (accept_resumes_at_ && now >= *accept_resumes_at_) {
    accept_resumes_at_.reset();
    watch_listener(EPOLLIN);
    accept_all();
  }
  for (auto& p : peers_) {
    Peer& peer = *p;
    if (peer.state == LinkState::up || now < peer.deadline) continue;
    switch (peer.state) {
      case LinkState::waiting: begin_connect(peer, now); break;
      case LinkState::connecting: fail_outbound(peer, "connect timed out"); break;
      case LinkState::handshaking: fail_outbound(peer, "no handshake reply in time"); break;
      case LinkState::up: break;
    }
  }
}

void TcpTransport::dispatch(const epoll_event& event) {
  const std::uint64_t token = event.data.u64;
  if (token == kListenToken) {
    accept_all();
  } else if (token == kWakeToken) {
    std::uint64_t value = 0;
    [[maybe_unused]] const auto n = ::read(wake_fd_.get(), &value, sizeof value);
  } else if ((token & kTagMask) == kOutboundTag) {
    Peer& peer = *peers_[token & 0xffff];
    if (peer.token == token) handle_outbound(peer, event.events);
  } else if (auto it = inbound_.find(token); it != inbound_.end()) {
    handle_inbound(*it->second, event.events);
  }
}

void TcpTransport::begin_connect(Peer& peer, Clock::time_point now) {
  sockaddr_in address{};
  std::string error = tcp::resolve_ipv4(peer.host, peer.port, address);
  bool in_progress = false;
  Fd fd;
  if (error.empty()) fd = tcp::start_connect(address, in_progress, error);
  if (!fd) {
    fail_outbound(peer, error);
    return;
  }
  ++peer.generation;
  const std::uint64_t token = kOutboundTag | (peer.generation << 16) | peer.index;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = token;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd.get(), &ev);
  {
    std::lock_guard lock(peer.mutex);
    peer.fd = std::move(fd);
    peer.token = token;
    peer.break_reason.clear();
  }
  peer.reader.reset();
  peer.state = LinkState::connecting;
  peer.deadline = now + kHandshakeTimeout;
  if (!in_progress) on_connected(peer);
}

void TcpTransport::on_connected(Peer& peer) {
  std::vector<std::byte> hello;
  tcp::append_hello(Hello{self_, peer.id, group_name_, region_.size()}, hello);
  // A fresh socket's send buffer always has room for a few hundred bytes.
  const ssize_t n = ::send(peer.fd.get(), hello.data(), hello.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(hello.size())) {
    fail_outbound(peer, "cannot send handshake: " +
                            (n < 0 ? tcp::errno_text(errno) : std::string("short send")));
    return;
  }
  set_events(peer.fd.get(), peer.token, false);
  peer.state = LinkState::handshaking;
  peer.deadline = Clock::now() + kHandshakeTimeout;
}

void TcpTransport::handle_outbound(Peer& peer, std::uint32_t events) {
  if (peer.state == LinkState::connecting) {
    const int err = tcp::socket_error(peer.fd.get());
    if (err != 0) {
      fail_outbound(peer, "connect to " + peer.host + ":" + std::to_string(peer.port) + ": " +
                              tcp::errno_text(err));
    } else if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
      on_connected(peer);
    }
    return;
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) {
    const std::uint64_t token = peer.token;
    read_outbound(peer);
    if (peer.token != token) return;
  }
  if ((events & EPOLLOUT) != 0) drain_backlog(peer);
}

void TcpTransport::read_outbound(Peer& peer) {
  for (;;) {
    const std::span<std::byte> space = peer.reader.space();
    const ssize_t n = ::recv(peer.fd.get(), space.data(), space.size(), 0);
    if (n > 0) {
      peer.reader.commit(static_cast<std::size_t>(n));
      if (!process_outbound(peer)) return;
      if (static_cast<std::size_t>(n) < space.size()) return;
    } else if (n == 0) {
      fail_outbound(peer, peer.state == LinkState::up ? "connection closed by peer"
                                                      : "connection closed during handshake");
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else if (errno != EINTR) {
      fail_outbound(peer, "receive failed: " + tcp::errno_text(errno));
      return;
    }
  }
}

bool TcpTransport::process_outbound(Peer& peer) {
  for (;;) {
    const FrameEvent ev = peer.reader.next();
    std::string bad;
    switch (ev.kind) {
      case FrameEvent::Kind::need_more: return true;
      case FrameEvent::Kind::bad: bad = tcp::describe(ev.error, ev.header, region_.size()); break;
      case FrameEvent::Kind::write:
      case FrameEvent::Kind::bulk: bad = "write frame on our outbound connection"; break;
      case FrameEvent::Kind::hello: {
        if (peer.state != LinkState::handshaking) {
          bad = "second handshake on an established connection";
          break;
        }
        const Hello expected{peer.id, self_, group_name_, region_.size()};
        const std::string mismatch =
            tcp::hello_mismatch(tcp::decode_hello(ev.header, ev.bytes), expected);
        if (!mismatch.empty()) {
          bad = "handshake refused: " + mismatch;
          break;
        }
        link_came_up(peer);
        continue;
      }
      case FrameEvent::Kind::ack:
        if (peer.state != LinkState::up) {
          bad = "ack before the handshake";
          break;
        }
        peer.completed.store(peer.completed_base + ev.header.value, std::memory_order_release);
        continue;
    }
    count_bad_frame(peer.name, bad);
    fail_outbound(peer, "bad frame: " + bad);
    return false;
  }
}

void TcpTransport::drain_backlog(Peer& peer) {
  std::string failure;
  bool drained = false;
  {
    std::lock_guard lock(peer.mutex);
    if (!peer.fd) return;
    const bool had = !peer.backlog.empty();
    if (const int err = peer.backlog.send_some(peer.fd.get()); err != 0) failure = "send failed: " + tcp::errno_text(err);
    if (peer.backlog.empty()) {
      drained = had;
      if (peer.backlog_armed) {
        peer.backlog_armed = false;
        set_events(peer.fd.get(), peer.token, false);
      }
    }
    peer.backlog_bytes.store(peer.backlog.bytes(), std::memory_order_relaxed);
  }
  if (!failure.empty()) fail_outbound(peer, failure);
  // An engine holding back bulk data until the link drains (queued_bytes) can go on.
  if (drained) doorbell_.ring();
}

void TcpTransport::link_came_up(Peer& peer) {
  std::uint64_t session = 0;
  {
    std::lock_guard lock(peer.mutex);
    peer.completed_base = peer.completed.load(std::memory_order_relaxed);
    // session first: an engine that sees up=true must also see the new session.
    session = peer.session.fetch_add(1, std::memory_order_relaxed) + 1;
    peer.up.store(true, std::memory_order_release);
  }
  peer.state = LinkState::up;
  peer.backoff = kFirstBackoff;
  peer.last_failure.clear();
  log_line(LogLevel::info, "link to " + peer.name + " up");
  push_event({peer.id, true, "connected to " + peer.host + ":" + std::to_string(peer.port), session});
}

void TcpTransport::fail_outbound(Peer& peer, std::string reason) {
  bool was_up = false;
  {
    std::lock_guard lock(peer.mutex);
    was_up = peer.state == LinkState::up;
    peer.up.store(false, std::memory_order_release);
    if (!peer.break_reason.empty()) reason = std::exchange(peer.break_reason, {});
    peer.fd.reset();
    peer.token = 0;
    peer.backlog.clear();
    peer.backlog_armed = false;
    peer.backlog_bytes.store(0, std::memory_order_relaxed);
  }
  peer.state = LinkState::waiting;
  peer.deadline = Clock::now() + peer.backoff;
  peer.backoff = std::min(peer.backoff * 2, kMaxBackoff);
  if (was_up) {
    log_line(LogLevel::warn, "link to " + peer.name + " down: " + reason);
    push_event({peer.id, false, reason});
  } else if (reason != peer.last_failure) {
    // Retries repeat every backoff step; only a change of reason is worth a line.
    log_line(LogLevel::info, peer.name + " not reachable yet: " + reason);
  }
  peer.last_failure = std::move(reason);
}

void TcpTransport::watch_listener(std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = kListenToken;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, listen_fd_.get(), &ev);
}

void TcpTransport::accept_all() {
  for (;;) {
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&from), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // EMFILE and friends leave the connection pending, so the listener would stay readable
        // and the IO thread would spin: stop watching it for a while instead.
        log_line(LogLevel::warn, "accept failed, pausing accepts for " +
                                     std::to_string(kAcceptPause.count()) + " ms: " + tcp::errno_text(errno));
        watch_listener(0);
        accept_resumes_at_ = Clock::now() + kAcceptPause;
      }
      return;
    }
    tcp::set_no_delay(fd);
    const std::uint64_t token = kInboundTag | next_inbound_serial_++;
    auto conn = std::make_unique<Inbound>(Fd(fd), token, tcp::to_string(from), region_.size());
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token;
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev);
    inbound_.emplace(token, std::move(conn));
  }
}

void TcpTransport::handle_inbound(Inbound& conn, std::uint32_t events) {
  if ((events & EPOLLOUT) != 0 && !send_inbound_out(conn)) return;
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) read_inbound(conn);
}

void TcpTransport::applied(Inbound& conn, std::uint32_t completes) {
  applied_this_batch_ = true;
  if (completes == 0) return;
  conn.applied += completes;
  if (!conn.ack_due) {
    conn.ack_due = true;
    acks_due_.push_back(conn.token);
  }
}

void TcpTransport::read_inbound(Inbound& conn) {
  std::size_t budget = kReadBudgetBytes;
  while (budget > 0) {
    if (const auto direct = conn.reader.direct()) {
      // A bulk frame's header can come in alone: the handshake is checked here too, before
      // anything is read into the region.
      if (!conn.peer) {
        cut_inbound(conn, "write frame before the handshake");
        return;
      }
      // The rest of a bulk frame: from the socket straight into its place in the region, or
      // off the socket into the discard buffer when its epoch is behind the fence.
      std::byte* into = region_.data() + direct->offset;
      std::size_t want = direct->left;
      if (direct->epoch < bulk_fence_.load(std::memory_order_acquire)) {
        discard_.resize(std::min<std::size_t>(want, 1u << 20));
        into = discard_.data();
        want = discard_.size();
      }
      const ssize_t n = ::recv(conn.fd.get(), into, want, 0);
      if (n > 0) {
        applied(conn, conn.reader.took_direct(static_cast<std::size_t>(n)));
        if (static_cast<std::size_t>(n) < want) return;
        budget -= std::min(budget, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) {
        cut_inbound(conn, conn.reader.describe_truncation());
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno != EINTR) {
        close_inbound(conn, LogLevel::info, "receive failed: " + tcp::errno_text(errno));
        return;
      }
      continue;
    }
    const std::span<std::byte> space = conn.reader.space();
    const ssize_t n = ::recv(conn.fd.get(), space.data(), space.size(), 0);
    if (n > 0) {
      conn.reader.commit(static_cast<std::size_t>(n));
      if (!process_inbound(conn)) return;
      if (static_cast<std::size_t>(n) < space.size()) return;
      budget -= std::min(budget, static_cast<std::size_t>(n));
    } else if (n == 0) {
      if (conn.reader.mid_frame()) {
        cut_inbound(conn, conn.reader.describe_truncation());
      } else {
        close_inbound(conn, conn.peer ? LogLevel::info : LogLevel::debug, "closed by the peer");
      }
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else if (errno != EINTR) {
      close_inbound(conn, LogLevel::info, "receive failed: " + tcp::errno_text(errno));
      return;
    }
  }
}

bool TcpTransport::process_inbound(Inbound& conn) {
  for (;;) {
    const FrameEvent ev = conn.reader.next();
    switch (ev.kind) {
      case FrameEvent::Kind::need_more: return true;
      case FrameEvent::Kind::bad:
        cut_inbound(conn, tcp::describe(ev.error, ev.header, region_.size()));
        return false;
      case FrameEvent::Kind::ack:
        cut_inbound(conn, "ack frame on a connection that carries writes to us");
        return false;
      case FrameEvent::Kind::hello:
        if (conn.peer) {
          cut_inbound(conn, "second handshake on an established connection");
          return false;
        }
        if (!accept_hello(conn, tcp::decode_hello(ev.header, ev.bytes))) return false;
        break;
      case FrameEvent::Kind::write:
        if (!conn.peer) {
          cut_inbound(conn, "write frame before the handshake");
          return false;
        }
        copy_into_region(region_.data() + ev.offset, ev.bytes.data(), ev.bytes.size());
        applied(conn, ev.completes);
        break;
      case FrameEvent::Kind::bulk:
        if (!conn.peer) {
          cut_inbound(conn, "write frame before the handshake");
          return false;
        }
        // Nobody reads these bytes before a later write announces them: one plain copy, unless
        // they come from a view this member has left behind.
        if (ev.epoch >= bulk_fence_.load(std::memory_order_acquire)) {
          std::memcpy(region_.data() + ev.offset, ev.bytes.data(), ev.bytes.size());
        }
        applied(conn, ev.completes);
        break;
    }
  }
}

bool TcpTransport::accept_hello(Inbound& conn, const Hello& hello) {
  conn.name += " (says member " + std::to_string(hello.sender) + ")";
  const bool known = std::any_of(peers_.begin(), peers_.end(),
                                 [&](const auto& p) { return p->id == hello.sender; });
  if (!known) {
    cut_inbound(conn, "handshake refused: member " + std::to_string(hello.sender) +
                          " is not a peer in group '" + group_name_ + "'");
    return false;
  }
  const std::string mismatch =
      tcp::hello_mismatch(hello, Hello{hello.sender, self_, group_name_, region_.size()});
  if (!mismatch.empty()) {
    cut_inbound(conn, "handshake refused: " + mismatch);
    return false;
  }
  // A reconnecting peer's old connection may still hold stale bytes; applying them after the
  // new connection's writes would move its data backwards, so the old one goes first.
  for (auto it = inbound_.begin(); it != inbound_.end(); ++it) {
    if (it->second.get() != &conn && it->second->peer == hello.sender) {
      log_line(LogLevel::info, "member " + std::to_string(hello.sender) +
                                   " reconnected; dropping its previous connection");
      inbound_.erase(it);
      break;
    }
  }
  conn.peer = hello.sender;
  conn.name = "member " + std::to_string(hello.sender);
  conn.reader.grow(kInboundBufferBytes);
  tcp::append_hello(Hello{self_, hello.sender, group_name_, region_.size()}, conn.out);
  return send_inbound_out(conn);
}

bool TcpTransport::send_inbound_out(Inbound& conn) {
  for (;;) {
    if (conn.out_sent == conn.out.size()) {
      conn.out.clear();
      conn.out_sent = 0;
      if (conn.applied == conn.acked) break;
      tcp::append_ack(conn.applied, conn.out);
      conn.acked = conn.applied;
    }
    const ssize_t n = ::send(conn.fd.get(), conn.out.data() + conn.out_sent,
                             conn.out.size() - conn.out_sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (!would_block(errno)) {
        close_inbound(conn, LogLevel::info, "send failed: " + tcp::errno_text(errno));
        return false;
      }
      if (!conn.out_armed) {
        conn.out_armed = true;
        set_events(conn.fd.get(), conn.token, true);
      }
      return true;
    }
    conn.out_sent += static_cast<std::size_t>(n);
  }
  if (conn.out_armed) {
    conn.out_armed = false;
    set_events(conn.fd.get(), conn.token, false);
  }
  return true;
}

void TcpTransport::send_due_acks() {
  // Swapped rather than moved out so neither vector's capacity is lost (no allocation per batch).
  std::swap(acks_due_, acks_sending_);
  for (const std::uint64_t token : acks_sending_) {
    const auto it = inbound_.find(token);
    if (it == inbound_.end()) continue;
    it->second->ack_due = false;
    send_inbound_out(*it->second);
  }
  acks_sending_.clear();
}

void TcpTransport::close_inbound(Inbound& conn, LogLevel level, const std::string& why) {
  log_line(level, "connection from " + conn.name + " closed: " + why);
  inbound_.erase(conn.token);
}

void TcpTransport::cut_inbound(Inbound& conn, const std::string& what) {
  count_bad_frame(conn.name, what);
  inbound_.erase(conn.token);
}

}  // namespace

std::unique_ptr<Transport> make_tcp_transport(const TransportOptions& options) {
  return std::make_unique<TcpTransport>(options);
}

}  // namespace derecho::transport
