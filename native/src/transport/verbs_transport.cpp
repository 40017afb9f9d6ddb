// RDMA verbs transport: one RC queue pair per peer, writes as RDMA WRITE work requests, the last
// write of every flush as RDMA WRITE WITH IMMEDIATE so the peer's IO thread wakes up and rings
// its doorbell. Queue pairs are set up (and re-set up after failures) over a TCP side channel.
// See docs/transport-verbs.md for the protocol and the reasoning.
#include "transport/verbs_transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/log.hpp"
#include "transport/verbs_fabric.hpp"
#include "transport/verbs_wire.hpp"

namespace derecho::transport::verbs {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kComponent = "verbs";
constexpr auto kHandshakeTimeout = 5s;
constexpr auto kMinBackoff = 20ms;
constexpr auto kMaxBackoff = 1000ms;
constexpr auto kMaxIdleWait = 1000ms;          // the IO thread re-checks timers at least this often
constexpr auto kSendQueueStallLimit = 10s;     // SQ full this long without progress: link is dead
constexpr std::size_t kMaxPeers = 0x7fff;      // 15 bits of wr_id
constexpr std::uint64_t kMaxWriteBytes = 0x7fffffff;

// wr_id layout: [63] receive WR, [62..48] peer index, [47..16] QP epoch, [15..0] signal ticket.
// The epoch tells completions of a torn-down QP apart from the live one's.
struct WrId {
  bool recv = false;
  std::size_t peer = 0;
  std::uint32_t epoch = 0;
  std::uint16_t ticket = 0;
};

std::uint64_t encode(const WrId& w) {
  return (w.recv ? (1ull << 63) : 0) | (static_cast<std::uint64_t>(w.peer & 0x7fff) << 48) |
         (static_cast<std::uint64_t>(w.epoch) << 16) | w.ticket;
}

WrId decode(std::uint64_t v) {
  return WrId{(v >> 63) != 0, static_cast<std::size_t>((v >> 48) & 0x7fff),
              static_cast<std::uint32_t>(v >> 16), static_cast<std::uint16_t>(v)};
}

std::string errno_text(int err) { return std::string(std::strerror(err)); }

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

void tune_socket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A side channel to a host that vanished without a FIN is noticed within ~11 s even when no
  // RDMA write is in flight to fail first.
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  int idle = 5, interval = 2, count = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  return host + ":" + std::to_string(port);
}

std::string peer_name(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "?";
  }
  return std::string(host) + ":" + serv;
}

struct AddrInfoDeleter {
  void operator()(addrinfo* ai) const noexcept { ::freeaddrinfo(ai); }
};
using AddrInfo = std::unique_ptr<addrinfo, AddrInfoDeleter>;

AddrInfo resolve(const std::string& host, std::uint16_t port, bool passive, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* out = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &out);
  if (rc != 0) {
    error = "cannot resolve " + endpoint_text(host, port) + ": " + ::gai_strerror(rc);
    return nullptr;
  }
  return AddrInfo(out);
}

class VerbsTransport final : public Transport {
 public:
  VerbsTransport(const TransportOptions& options, std::unique_ptr<Fabric> fabric,
                 VerbsTuning tuning);
  ~VerbsTransport() override;

  MemberId self() const override { return self_; }
  std::span<std::byte> region() override { return region_; }
  void start(std::chrono::milliseconds timeout) override;
  void stop() override;
  void post_write(MemberId peer, std::size_t offset, std::size_t len) override;
  void flush() override;
  std::uint64_t completed(MemberId peer) const override;
  Doorbell& doorbell() override { return doorbell_; }
  std::vector<LinkEvent> take_link_events() override;
  bool link_up(MemberId peer) const override;
  std::uint64_t bad_frames() const override { return bad_frames_.load(std::memory_order_relaxed); }

 private:
  struct Pending {
    std::uint64_t offset;    // destination offset (same in our region and the peer's)
    std::uint32_t len;
    std::uint64_t seq;       // writes of this link session covered once this write completes
    std::uint32_t epoch;     // the QP it was staged for; stale entries are dropped at flush
    bool from_staging;       // source: the staging ring (snapshot) or the region (zero copy)
    std::uint64_t src_off;   // offset of the source bytes in staging or region
    std::uint64_t ring_end;  // staging ring head after this write's bytes
  };
  // One signaled WR in flight: its completion retires `wrs` WRs, completes writes up to `seq`
  // and frees the staging ring up to `ring_end`.
  struct Marker {
    std::uint64_t seq;
    std::uint32_t wrs;
    std::uint16_t ticket;
    std::uint64_t ring_end;
  };
  struct Stall {
    std::optional<Clock::time_point> since;
    unsigned spins = 0;
  };

  struct Peer {
    MemberId id = 0;
    std::size_t index = 0;
    std::string host;
    std::uint16_t port = 0;
    bool initiator = false;  // we are the lower id: we connect, the peer accepts

    // Guarded by mu_.
    std::unique_ptr<QueuePair> qp;  // the installed QP (present while up, and until torn down)
    std::uint32_t epoch = 0;
    std::unique_ptr<QueuePair> handshake_qp;  // QP being connected over the side channel
    std::uint32_t handshake_epoch = 0;
    std::uint32_t handshake_psn = 0;
    wire::Hello handshake_remote;
    std::uint32_t next_epoch = 1;
    std::uint64_t remote_addr = 0;
    std::uint32_t rkey = 0;
    bool up = false;
    bool teardown_requested = false;
    std::deque<Marker> markers;
    std::uint32_t outstanding = 0;   // send WRs posted on qp and not yet retired
    std::uint32_t since_signal = 0;  // unsignaled WRs since the last signaled one
    std::uint16_t next_ticket = 0;
    // This peer's staging ring: bytes [ring_tail, ring_head) (positions modulo the ring size)
    // hold snapshots not yet known to be sent.
    std::uint64_t ring_head = 0;
    std::uint64_t ring_tail = 0;
    bool needs_wake = false;  // writes went out without a write-with-immediate after them
    // completed() counts writes that landed: session_base (completed() at link-up) plus the
    // writes of this session known done. post_write numbers the writes it accepts per session.
    std::uint64_t session_base = 0;
    std::uint32_t accepted_epoch = 0;
    std::uint64_t accepted = 0;
    std::uint32_t engine_epoch = 0;  // the epoch whose up event the engine has taken

    // Predicate thread only.
    std::vector<Pending> pending;

    std::atomic<std::uint64_t> completed{0};
    std::atomic<bool> up_flag{false};

    // IO thread only.
    std::uint64_t conn = 0;  // side-channel connection id, 0 = none
    Clock::time_point next_attempt{};
    std::chrono::milliseconds backoff = kMinBackoff;
    std::string last_failure;
  };

  enum class ConnState { connecting, await_hello, await_ready, up };

  struct Conn {
    std::uint64_t id = 0;
    Fd fd;
    bool outgoing = false;
    std::size_t peer = SIZE_MAX;  // unknown until the hello of an incoming connection
    ConnState state = ConnState::await_hello;
    std::vector<std::uint8_t> rx;
    std::vector<std::uint8_t> tx;
    bool want_out = false;
    Clock::time_point deadline{};
    std::string remote;  // address text for logs
  };

  static constexpr std::uint64_t kWakeKey = 1;
  static constexpr std::uint64_t kListenKey = 2;
  static constexpr std::uint64_t kCompletionKey = 3;
  static constexpr std::uint64_t kAsyncKey = 4;
  static constexpr std::uint64_t kFirstConnKey = 16;

  // Any thread, mu_ held.
  void post_pending_locked(std::unique_lock<std::mutex>& lock, Peer& p, bool wake);
  bool wait_for_completions_locked(std::unique_lock<std::mutex>& lock, Peer& p,
                                   std::uint32_t epoch, Stall& stall, const char* what);
  std::optional<std::uint64_t> ring_alloc_locked(Peer& p, std::size_t len);
  void process_completions_locked();
  void handle_completion_locked(const Completion& c, bool& rang);
  void mark_down_locked(Peer& p, const std::string& reason);
  std::unique_ptr<QueuePair> install_locked(Peer& p);
  void kick();
  void push_event(LinkEvent event);

  // IO thread.
  void io_loop();
  int next_timeout_ms() const;
  void on_completion_event();
  void on_async_event();
  void on_listen();
  void on_conn(std::uint64_t id, std::uint32_t events);
  bool finish_connect(Conn& c);
  bool read_conn(Conn& c);
  bool handle_frame(Conn& c, const wire::Frame& f);
  bool on_hello_request(Conn& c, const wire::Hello& h);
  bool on_hello_reply(Conn& c, const wire::Hello& h);
  bool on_ready(Conn& c);
  bool send_frame(Conn& c, const std::vector<std::uint8_t>& bytes);
  bool flush_tx(Conn& c);
  void set_epoll(Conn& c, bool want_out);
  void refuse(Conn& c, const std::string& why);
  void fail_conn(std::uint64_t id, const std::string& reason, LogLevel level);
  void close_conn(std::uint64_t id);
  void teardown_peer(Peer& p, const std::string& reason);
  void run_timers();
  void run_teardowns();
  void start_connect(Peer& p);
  std::unique_ptr<QueuePair> new_qp(Peer& p, std::uint32_t& epoch);
  std::string check_hello(const wire::Hello& h, const Peer* expected) const;
  wire::Hello our_hello(const Peer& p, std::uint32_t qpn, std::uint32_t psn) const;
  std::string conn_label(const Conn& c) const;

  const MemberId self_;
  const std::string group_;
  std::unique_ptr<Fabric> fabric_;  // declared before peers_: outlives every QP
  std::span<std::byte> region_;
  std::span<std::byte> staging_;
  std::size_t ring_bytes_ = 0;    // staging ring per peer
  std::size_t max_piece_ = 0;     // larger writes are staged (and sent) in pieces of this size
  std::size_t zero_copy_min_ = 0;
  std::uint32_t send_depth_ = 0;
  std::uint32_t recv_depth_ = 0;
  std::uint32_t signal_every_ = 1;
  Doorbell doorbell_;
  std::atomic<std::uint64_t> bad_frames_{0};

  mutable std::mutex mu_;  // peers' QPs and link state, CQ polling
  std::condition_variable up_cv_;
  std::vector<std::unique_ptr<Peer>> peers_;
  std::unordered_map<MemberId, std::size_t> index_;
  std::vector<WriteRequest> writes_;
  std::vector<Completion> completions_;

  std::mutex events_mu_;
  std::vector<LinkEvent> events_;

  std::mutex lifecycle_mu_;
  bool started_ = false;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
  Fd listen_fd_;
  Fd epoll_fd_;
  Fd wake_fd_;
  std::thread io_;

  // IO thread only.
  std::unordered_map<std::uint64_t, Conn> conns_;
  std::uint64_t next_conn_id_ = kFirstConnKey;
  std::mt19937 rng_{std::random_device{}()};
};

VerbsTransport::VerbsTransport(const TransportOptions& options, std::unique_ptr<Fabric> fabric,
                               VerbsTuning tuning)
    : self_(options.self), group_(options.group.group_name), fabric_(std::move(fabric)) {
  validate_verbs_options(options);
  if (!fabric_) throw std::invalid_argument("verbs transport needs a fabric");
  region_ = fabric_->region();
  if (region_.size() != options.region_bytes) {
    throw std::invalid_argument("fabric region has " + std::to_string(region_.size()) +
                                " bytes, options ask for " + std::to_string(options.region_bytes));
  }
  staging_ = fabric_->staging();
  ring_bytes_ = staging_bytes_per_peer(options);
  if (staging_.size() < staging_bytes_for(options)) {
    throw std::invalid_argument("fabric staging buffer has " + std::to_string(staging_.size()) +
                                " bytes, the transport needs " +
                                std::to_string(staging_bytes_for(options)));
  }
  max_piece_ = ring_bytes_ / 2 / 64 * 64;
  zero_copy_min_ = tuning.zero_copy_min_bytes;
  send_depth_ = fabric_->send_depth();
  recv_depth_ = fabric_->recv_depth();
  if (send_depth_ < 1 || recv_depth_ < 1) throw std::runtime_error("fabric queue depth is zero");
  signal_every_ = std::max<std::uint32_t>(1, send_depth_ / 4);
  completions_.resize(32);

  const MemberAddress* me = nullptr;
  for (const MemberAddress& m : options.group.members) {
    if (m.id == self_) {
      me = &m;
      continue;
    }
    auto p = std::make_unique<Peer>();
    p->id = m.id;
    p->index = peers_.size();
    p->host = m.host;
    p->port = m.port;
    p->initiator = self_ < m.id;
    index_.emplace(m.id, p->index);
    peers_.push_back(std::move(p));
  }

  // The side channel listens on our configured address, or on every address when that one is
  // not local (e.g. a DNS name that resolves to a service IP).
  std::string error;
  auto ai = resolve(me->host, me->port, true, error);
  for (int attempt = 0; attempt < 2 && !listen_fd_; ++attempt) {
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_port = htons(me->port);
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    const sockaddr* sa = reinterpret_cast<const sockaddr*>(&any);
    socklen_t sa_len = sizeof any;
    int family = AF_INET;
    if (attempt == 0) {
      if (!ai) continue;
      sa = ai->ai_addr;
      sa_len = ai->ai_addrlen;
      family = ai->ai_family;
    }
    Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) throw std::runtime_error("verbs side channel: socket() failed: " + errno_text(errno));
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), sa, sa_len) != 0) {
      const int err = errno;
      if (attempt == 0 && err == EADDRNOTAVAIL) {
        log(LogLevel::warn, kComponent,
            "side channel cannot bind " + endpoint_text(me->host, me->port) +
                " (not a local address); listening on all addresses instead");
        continue;
      }
      throw std::runtime_error("verbs side channel: cannot listen on " +
                               endpoint_text(attempt == 0 ? me->host : "0.0.0.0", me->port) + ": " +
                               errno_text(err));
    }
    if (::listen(fd.get(), 64) != 0) {
      throw std::runtime_error("verbs side channel: listen() failed: " + errno_text(errno));
    }
    listen_fd_ = std::move(fd);
  }
  if (!listen_fd_) throw std::runtime_error("verbs side channel: " + error);

  epoll_fd_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!epoll_fd_ || !wake_fd_) {
    throw std::runtime_error("verbs transport: epoll/eventfd failed: " + errno_text(errno));
  }
  auto add = [&](int fd, std::uint64_t key) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = key;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      throw std::runtime_error("verbs transport: epoll_ctl failed: " + errno_text(errno));
    }
  };
  add(wake_fd_.get(), kWakeKey);
  add(listen_fd_.get(), kListenKey);
  add(fabric_->completion_fd(), kCompletionKey);
  if (fabric_->async_fd() >= 0) add(fabric_->async_fd(), kAsyncKey);
}

VerbsTransport::~VerbsTransport() { stop(); }

void VerbsTransport::start(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lk(lifecycle_mu_);
    if (started_ || stopped_) return;
    started_ = true;
    if (int rc = fabric_->request_notify(); rc != 0) {
      throw std::runtime_error("ibv_req_notify_cq failed: " + errno_text(rc));
    }
    io_ = std::thread([this] { io_loop(); });
  }
  std::unique_lock lk(mu_);
  up_cv_.wait_for(lk, timeout, [&] {
    return stopping_.load() ||
           std::all_of(peers_.begin(), peers_.end(), [](const auto& p) { return p->up; });
  });
}

void VerbsTransport::stop() {
  {
    std::lock_guard lk(lifecycle_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopping_.store(true);
  kick();
  if (io_.joinable()) io_.join();
  conns_.clear();  // closes every side channel: peers see EOF and mark their links down
  listen_fd_.reset();
  std::vector<std::unique_ptr<QueuePair>> dead;
  {
    std::lock_guard lk(mu_);
    for (auto& p : peers_) {
      p->up = false;
      p->up_flag.store(false, std::memory_order_release);
      if (p->qp) dead.push_back(std::move(p->qp));
      if (p->handshake_qp) dead.push_back(std::move(p->handshake_qp));
      p->markers.clear();
      p->outstanding = 0;
    }
    up_cv_.notify_all();
  }
  dead.clear();
}

void VerbsTransport::post_write(MemberId peer, std::size_t offset, std::size_t len) {
  auto it = index_.find(peer);
  if (it == index_.end()) {
    throw std::invalid_argument("verbs post_write to member " + std::to_string(peer) +
                                ", which is not a peer of member " + std::to_string(self_));
  }
  if (offset < kRegionHeaderBytes || offset > region_.size() || len > region_.size() - offset ||
      len > kMaxWriteBytes) {
    throw std::out_of_range("verbs post_write [" + std::to_string(offset) + ", +" +
                            std::to_string(len) + ") is outside the writable part [" +
                            std::to_string(kRegionHeaderBytes) + ", " +
                            std::to_string(region_.size()) + ") of the region");
  }
  Peer& p = *peers_[it->second];
  // Writes to a peer whose link is down are dropped: the engine re-pushes after the link-up event.
  if (!p.up_flag.load(std::memory_order_acquire)) return;

  std::unique_lock lk(mu_);
  if (!p.up || p.epoch != p.engine_epoch) return;
  const std::uint32_t epoch = p.epoch;
  if (p.accepted_epoch != epoch) {
    p.accepted_epoch = epoch;
    p.accepted = 0;
  }
  const std::uint64_t seq = ++p.accepted;
  if (zero_copy_min_ != 0 && len >= zero_copy_min_) {
    p.pending.push_back(Pending{offset, static_cast<std::uint32_t>(len), seq, epoch, false, offset,
                                p.ring_head});
    return;
  }
  // RDMA reads the source when the NIC executes the WR, long after this call; the contract is
  // "copies the bytes as they are now", so snapshot them into the staging ring.
  std::size_t done = 0;
  do {
    const std::size_t piece = std::min(len - done, max_piece_);
    auto slot = ring_alloc_locked(p, piece);
    Stall stall;
    while (!slot) {
      // The ring is full of writes not yet completed: send what is pending, reap completions.
      if (!p.pending.empty()) post_pending_locked(lk, p, false);
      if (!wait_for_completions_locked(lk, p, epoch, stall, "staging buffer")) return;
      slot = ring_alloc_locked(p, piece);
    }
    if (piece > 16384) {
      // Big copies run without the lock (the slot is ours) so completions keep flowing.
      lk.unlock();
      std::memcpy(staging_.data() + *slot, region_.data() + offset + done, piece);
      lk.lock();
      if (!p.up || p.epoch != epoch) return;
    } else if (piece > 0) {
      std::memcpy(staging_.data() + *slot, region_.data() + offset + done, piece);
    }
    const bool last = done + piece == len;
    p.pending.push_back(Pending{offset + done, static_cast<std::uint32_t>(piece),
                                last ? seq : seq - 1, epoch, true, *slot, p.ring_head});
    done += piece;
  } while (done < len);
}

// Reserves `len` bytes (rounded up to 64) in p's staging ring; returns their offset in staging_.
std::optional<std::uint64_t> VerbsTransport::ring_alloc_locked(Peer& p, std::size_t len) {
  const std::uint64_t cap = ring_bytes_;
  const std::uint64_t need = align_up(len, 64);
  const std::uint64_t pos = p.ring_head % cap;
  const std::uint64_t pad = pos + need > cap ? cap - pos : 0;  // never wrap inside a write
  if (p.ring_head + pad + need - p.ring_tail > cap) return std::nullopt;
  p.ring_head += pad;
  const std::uint64_t off = p.ring_head % cap;
  p.ring_head += need;
  return p.index * cap + off;
}

void VerbsTransport::flush() {
  std::unique_lock lk(mu_);
  for (auto& pp : peers_) {
    Peer& p = *pp;
    if (p.pending.empty() && !p.needs_wake) continue;
    if (!p.up || !p.qp) {
      p.pending.clear();
      continue;
    }
    if (p.pending.empty()) {
      // Everything was already sent (the staging ring filled up): a zero-length write with
      // immediate still wakes the peer once it all landed.
      const std::uint64_t seq = p.accepted_epoch == p.epoch ? p.accepted : 0;
      p.pending.push_back(
          Pending{kRegionHeaderBytes, 0, seq, p.epoch, false, kRegionHeaderBytes, p.ring_head});
    }
    post_pending_locked(lk, p, true);
  }
}

// Polls the CQ; if that retired nothing of p's, lets the other threads (and the HCA) run for a
// moment. Returns false, with the link marked down, when p's link is gone or has made no
// progress for kSendQueueStallLimit.
bool VerbsTransport::wait_for_completions_locked(std::unique_lock<std::mutex>& lock, Peer& p,
                                                 std::uint32_t epoch, Stall& stall,
                                                 const char* what) {
  const auto outstanding = p.outstanding;
  const auto tail = p.ring_tail;
  process_completions_locked();
  if (!p.up || !p.qp || p.epoch != epoch) return false;
  if (p.outstanding != outstanding || p.ring_tail != tail) {
    stall = Stall{};
    return true;
  }
  const auto now = Clock::now();
  if (!stall.since) stall.since = now;
  if (now - *stall.since > kSendQueueStallLimit) {
    mark_down_locked(p, std::string(what) + " for member " + std::to_string(p.id) +
                            " stayed full for 10 s (no completions)");
    return false;
  }
  lock.unlock();
  if (++stall.spins < 64) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(50us);
  }
  lock.lock();
  return p.up && p.qp && p.epoch == epoch;
}

// Posts p.pending (and clears it) as linked lists of at most the free send-queue slots each.
// Every list ends with a signaled WR (so its slots can be reclaimed) and every signal_every_-th
// WR is signaled in between. With `wake`, the very last WR is a write-with-immediate: the peer's
// wake-up, which RC ordering delivers only after every earlier write landed.
void VerbsTransport::post_pending_locked(std::unique_lock<std::mutex>& lock, Peer& p, bool wake) {
  const std::uint32_t epoch = p.epoch;
  std::vector<Pending> pending = std::move(p.pending);
  p.pending.clear();
  // Entries staged for an earlier QP of this peer (the link went down and up since) are dropped:
  // their staging bytes were recycled, and the engine re-pushes after the link-up event.
  std::size_t i = 0;
  while (i < pending.size() && pending[i].epoch != epoch) ++i;
  const std::size_t n = pending.size();
  Stall stall;
  bool posted = false;
  while (i < n) {
    if (!p.up || !p.qp || p.epoch != epoch) return;  // the link went down meanwhile
    if (p.outstanding >= send_depth_) {
      if (!wait_for_completions_locked(lock, p, epoch, stall, "send queue")) return;
      continue;
    }
    const std::size_t chunk = std::min<std::size_t>(n - i, send_depth_ - p.outstanding);
    writes_.clear();
    for (std::size_t k = 0; k < chunk; ++k) {
      const Pending& w = pending[i + k];
      const bool last_of_chunk = k + 1 == chunk;
      const bool signaled = last_of_chunk || p.since_signal + 1 >= signal_every_;
      WriteRequest r;
      r.from_staging = w.from_staging;
      r.local_offset = w.src_off;
      r.length = w.len;
      r.remote_addr = p.remote_addr + w.offset;
      r.rkey = p.rkey;
      r.signaled = signaled;
      r.with_imm = wake && i + k + 1 == n;
      r.imm = self_;
      if (signaled) {
        const std::uint16_t ticket = p.next_ticket++;
        r.wr_id = encode(WrId{false, p.index, epoch, ticket});
        p.markers.push_back(Marker{w.seq, p.since_signal + 1, ticket, w.ring_end});
        p.since_signal = 0;
      } else {
        r.wr_id = encode(WrId{false, p.index, epoch, 0});
        ++p.since_signal;
      }
      writes_.push_back(r);
    }
    if (int rc = p.qp->post_writes(writes_); rc != 0) {
      // (mark_down_locked drops the markers just pushed.)
      mark_down_locked(p, "ibv_post_send to member " + std::to_string(p.id) +
                              " failed: " + errno_text(rc));
      return;
    }
    p.outstanding += static_cast<std::uint32_t>(chunk);
    i += chunk;
    posted = true;
  }
  if (posted) p.needs_wake = !wake;
}

void VerbsTransport::process_completions_locked() {
  bool rang = false;
  for (;;) {
    const int n = fabric_->poll(completions_);
    if (n < 0) {
      log(LogLevel::error, kComponent, "polling the completion queue failed; all links down");
      for (auto& p : peers_) mark_down_locked(*p, "completion queue failed");
      break;
    }
    for (int i = 0; i < n; ++i) handle_completion_locked(completions_[static_cast<std::size_t>(i)], rang);
    if (static_cast<std::size_t>(n) < completions_.size()) break;
  }
  if (rang) doorbell_.ring();
}

void VerbsTransport::handle_completion_locked(const Completion& c, bool& rang) {
  const WrId w = decode(c.wr_id);
  if (w.peer >= peers_.size()) return;
  Peer& p = *peers_[w.peer];
  const bool current = p.qp && w.epoch == p.epoch;
  if (w.recv) {
    QueuePair* qp = current ? p.qp.get()
                    : (p.handshake_qp && w.epoch == p.handshake_epoch) ? p.handshake_qp.get()
                                                                         : nullptr;
    if (qp == nullptr) return;  // a QP that was torn down
    if (c.status == IBV_WC_SUCCESS) {
      rang = true;  // a peer's flush landed: everything it wrote before is in our region
      if (int rc = qp->post_recvs(c.wr_id, 1); rc != 0 && current) {
        mark_down_locked(p, "ibv_post_recv for member " + std::to_string(p.id) +
                                " failed: " + errno_text(rc));
      }
    } else if (current && c.status != IBV_WC_WR_FLUSH_ERR) {
      mark_down_locked(p, std::string("receive from member ") + std::to_string(p.id) +
                              " failed: " + ibv_wc_status_str(c.status));
    }
    return;
  }
  if (!current) return;
  if (c.status != IBV_WC_SUCCESS) {
    std::string reason = std::string("RDMA write to member ") + std::to_string(p.id) +
                         " failed: " + ibv_wc_status_str(c.status);
    if (c.vendor_err != 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, " (vendor error 0x%x)", c.vendor_err);
      reason += buf;
    }
    mark_down_locked(p, reason);
    return;
  }
  if (p.markers.empty() || p.markers.front().ticket != w.ticket) {
    mark_down_locked(p, "internal error: unexpected send completion for member " +
                            std::to_string(p.id));
    return;
  }
  const Marker m = p.markers.front();
  p.markers.pop_front();
  p.outstanding -= std::min(p.outstanding, m.wrs);
  p.ring_tail = std::max(p.ring_tail, m.ring_end);
  const std::uint64_t done = p.session_base + m.seq;
  if (done > p.completed.load(std::memory_order_relaxed)) {
    p.completed.store(done, std::memory_order_release);
  }
}

void VerbsTransport::mark_down_locked(Peer& p, const std::string& reason) {
  p.teardown_requested = true;  // the IO thread closes the side channel and destroys the QP
  p.markers.clear();
  p.outstanding = 0;
  if (p.up) {
    p.up = false;
    // The event is queued before link_up() turns false, so whoever sees the state finds the event.
    push_event(LinkEvent{p.id, false, reason});
    p.up_flag.store(false, std::memory_order_release);
    log(LogLevel::warn, kComponent, "link to member " + std::to_string(p.id) + " down: " + reason);
    doorbell_.ring();
  }
  kick();
}

// Makes the handshake QP the live one. Returns the QP it replaces (if any) so the caller can
// destroy it outside the lock.
std::unique_ptr<QueuePair> VerbsTransport::install_locked(Peer& p) {
  auto old = std::move(p.qp);
  p.qp = std::move(p.handshake_qp);
  p.epoch = p.handshake_epoch;
  p.remote_addr = p.handshake_remote.region_addr;
  p.rkey = p.handshake_remote.rkey;
  p.markers.clear();
  p.outstanding = 0;
  p.since_signal = 0;
  p.ring_head = 0;
  p.ring_tail = 0;
  p.needs_wake = false;
  p.session_base = p.completed.load(std::memory_order_relaxed);
  p.teardown_requested = false;
  p.up = true;
  const std::string reason = "connected to " + endpoint_text(p.host, p.port) + " (qpn " +
                             std::to_string(p.qp->qp_num()) + " -> " +
                             std::to_string(p.handshake_remote.qpn) + ")";
  push_event(LinkEvent{p.id, true, reason, p.epoch});
  p.up_flag.store(true, std::memory_order_release);
  log(LogLevel::info, kComponent, "link to member " + std::to_string(p.id) + " up: " + reason);
  doorbell_.ring();
  up_cv_.notify_all();
  return old;
}

void VerbsTransport::push_event(LinkEvent event) {
  std::lock_guard lk(events_mu_);
  events_.push_back(std::move(event));
}

void VerbsTransport::kick() {
  if (!wake_fd_) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto rc = ::write(wake_fd_.get(), &one, sizeof one);
}

std::uint64_t VerbsTransport::completed(MemberId peer) const {
  auto it = index_.find(peer);
  if (it == index_.end()) return 0;
  return peers_[it->second]->completed.load(std::memory_order_acquire);
}

std::vector<LinkEvent> VerbsTransport::take_link_events() {
  std::vector<LinkEvent> taken;
  {
    std::lock_guard lk(events_mu_);
    taken = std::exchange(events_, {});
  }
  std::lock_guard lk(mu_);
  for (const LinkEvent& e : taken) {
    if (e.up) peers_[index_.at(e.peer)]->engine_epoch = static_cast<std::uint32_t>(e.session);
  }
  return taken;
}

bool VerbsTransport::link_up(MemberId peer) const {
  if (peer == self_) return true;
  auto it = index_.find(peer);
  if (it == index_.end()) return false;
  return peers_[it->second]->up_flag.load(std::memory_order_acquire);
}

// ---- IO thread ---------------------------------------------------------------------------

void VerbsTransport::io_loop() {
  std::array<epoll_event, 64> events{};
  {
    // Completions that arrived before the first request_notify() raise no event.
    std::lock_guard lk(mu_);
    process_completions_locked();
  }
  while (!stopping_.load()) {
    run_timers();
    const int n = ::epoll_wait(epoll_fd_.get(), events.data(), static_cast<int>(events.size()),
                               next_timeout_ms());
    if (n < 0) {
      if (errno == EINTR) continue;
      log(LogLevel::error, kComponent, "epoll_wait failed: " + errno_text(errno));
      std::this_thread::sleep_for(10ms);
      continue;
    }
    for (int i = 0; i < n && !stopping_.load(); ++i) {
      const epoll_event& ev = events[static_cast<std::size_t>(i)];
      try {
        switch (ev.data.u64) {
          case kWakeKey: {
            std::uint64_t v;
            [[maybe_unused]] auto rc = ::read(wake_fd_.get(), &v, sizeof v);
            break;
          }
          case kListenKey: on_listen(); break;
          case kCompletionKey: on_completion_event(); break;
          case kAsyncKey: on_async_event(); break;
          default: on_conn(ev.data.u64, ev.events); break;
        }
      } catch (const std::exception& e) {
        log(LogLevel::error, kComponent, std::string("IO thread: ") + e.what());
      }
    }
    run_teardowns();
  }
}

int VerbsTransport::next_timeout_ms() const {
  const auto now = Clock::now();
  auto next = now + kMaxIdleWait;
  for (const auto& p : peers_) {
    if (p->initiator && p->conn == 0) next = std::min(next, p->next_attempt);
  }
  for (const auto& [id, c] : conns_) {
    if (c.state != ConnState::up) next = std::min(next, c.deadline);
  }
  if (next <= now) return 0;
  return static_cast<int>(
      std::chrono::ceil<std::chrono::milliseconds>(next - now).count());
}

void VerbsTransport::on_completion_event() {
  while (fabric_->take_completion_event()) {
  }
  // Re-arm before polling, so a completion that lands after the poll raises a new event.
  if (int rc = fabric_->request_notify(); rc != 0) {
    log(LogLevel::error, kComponent, "ibv_req_notify_cq failed: " + errno_text(rc));
  }
  std::lock_guard lk(mu_);
  process_completions_locked();
}

void VerbsTransport::on_async_event() {
  while (auto ev = fabric_->take_async_event()) {
    const bool bad = ev->qp_fatal || ev->device_fatal;
    log(bad ? LogLevel::error : LogLevel::info, kComponent, "async event: " + ev->what);
    if (!bad) continue;
    std::lock_guard lk(mu_);
    for (auto& p : peers_) {
      const bool mine = p->qp && ev->qp_num && p->qp->qp_num() == *ev->qp_num;
      if (ev->device_fatal || mine) mark_down_locked(*p, ev->what);
    }
  }
}

void VerbsTransport::on_listen() {
  for (;;) {
    Fd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      log(LogLevel::warn, kComponent, "accept failed: " + errno_text(errno));
      return;
    }
    tune_socket(fd.get());
    Conn c;
    c.id = next_conn_id_++;
    c.remote = peer_name(fd.get());
    c.fd = std::move(fd);
    c.outgoing = false;
    c.state = ConnState::await_hello;
    c.deadline = Clock::now() + kHandshakeTimeout;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c.id;
    if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
      log(LogLevel::warn, kComponent, "epoll_ctl on an accepted socket failed: " + errno_text(errno));
      continue;
    }
    const auto id = c.id;
    conns_.emplace(id, std::move(c));
  }
}

void VerbsTransport::on_conn(std::uint64_t id, std::uint32_t events) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = it->second;
  if (c.state == ConnState::connecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) finish_connect(c);
    return;
  }
  if ((events & EPOLLOUT) != 0 && !flush_tx(c)) return;
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) read_conn(c);
}

bool VerbsTransport::finish_connect(Conn& c) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  Peer& p = *peers_[c.peer];
  if (err != 0) {
    fail_conn(c.id, "connect to " + endpoint_text(p.host, p.port) + " failed: " + errno_text(err),
              LogLevel::debug);
    return false;
  }
  tune_socket(c.fd.get());
  c.remote = peer_name(c.fd.get());
  c.state = ConnState::await_hello;
  std::uint32_t qpn = 0;
  std::uint32_t psn = 0;
  {
    std::lock_guard lk(mu_);
    if (!p.handshake_qp) {
      fail_conn(c.id, "handshake queue pair vanished", LogLevel::warn);
      return false;
    }
    qpn = p.handshake_qp->qp_num();
    psn = p.handshake_psn;
  }
  return send_frame(c, wire::encode_hello(our_hello(p, qpn, psn)));
}

bool VerbsTransport::read_conn(Conn& c) {
  const std::uint64_t id = c.id;
  bool eof = false;
  int read_error = 0;
  std::array<std::uint8_t, 2048> buf{};
  for (;;) {
    const ssize_t n = ::recv(c.fd.get(), buf.data(), buf.size(), 0);
    if (n > 0) {
      c.rx.insert(c.rx.end(), buf.begin(), buf.begin() + n);
      if (c.rx.size() > wire::kHeaderBytes + wire::kMaxBodyBytes) break;  // parse before reading on
      continue;
    }
    if (n == 0) {
      eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      read_error = errno;
    }
    break;
  }
  for (;;) {
    std::optional<wire::Frame> f;
    try {
      f = wire::take_frame(c.rx);
    } catch (const wire::FrameError& e) {
      refuse(c, e.what());
      return false;
    }
    if (!f) break;
    if (!handle_frame(c, *f)) return false;
    if (conns_.find(id) == conns_.end()) return false;
  }
  const std::string who =
      c.peer != SIZE_MAX ? "member " + std::to_string(peers_[c.peer]->id) : c.remote;
  if (eof) {
    fail_conn(id, "side channel to " + who + " closed (peer stopped or restarted)",
              c.state == ConnState::up ? LogLevel::info : LogLevel::debug);
    return false;
  }
  if (read_error != 0) {
    fail_conn(id, "side channel to " + who + " failed: " + errno_text(read_error), LogLevel::info);
    return false;
  }
  return true;
}

bool VerbsTransport::handle_frame(Conn& c, const wire::Frame& f) {
  try {
    switch (f.type) {
      case wire::FrameType::reject: {
        const std::string why = wire::decode_reject(f.body);
        fail_conn(c.id, conn_label(c) + " refused our side-channel handshake: " + why,
                  LogLevel::error);
        return false;
      }
      case wire::FrameType::hello: {
        const wire::Hello h = wire::decode_hello(f.body);
        if (!c.outgoing && c.state == ConnState::await_hello) return on_hello_request(c, h);
        if (c.outgoing && c.state == ConnState::await_hello) return on_hello_reply(c, h);
        refuse(c, "unexpected hello frame");
        return false;
      }
      case wire::FrameType::ready:
        if (!f.body.empty()) throw wire::FrameError("ready frame with a body");
        if (!c.outgoing && c.state == ConnState::await_ready) return on_ready(c);
        refuse(c, "unexpected ready frame");
        return false;
    }
  } catch (const wire::FrameError& e) {
    refuse(c, e.what());
    return false;
  }
  refuse(c, "unknown frame");
  return false;
}

std::string VerbsTransport::check_hello(const wire::Hello& h, const Peer* expected) const {
  if (h.group != group_) {
    return "group name '" + h.group + "' does not match ours ('" + group_ + "')";
  }
  if (h.to != self_) {
    return "hello addressed to member " + std::to_string(h.to) + " reached member " +
           std::to_string(self_);
  }
  auto it = index_.find(h.from);
  if (it == index_.end()) return "member " + std::to_string(h.from) + " is not in our group";
  if (expected != nullptr && expected->id != h.from) {
    return "expected a hello from member " + std::to_string(expected->id) + ", got member " +
           std::to_string(h.from);
  }
  if (expected == nullptr && h.from > self_) {
    return "member " + std::to_string(h.from) + " connected to member " + std::to_string(self_) +
           ", but the lower id connects";
  }
  if (h.region_bytes != region_.size()) {
    return "region size " + std::to_string(h.region_bytes) + " differs from ours (" +
           std::to_string(region_.size()) + ")";
  }
  return {};
}

wire::Hello VerbsTransport::our_hello(const Peer& p, std::uint32_t qpn, std::uint32_t psn) const {
  const PortAddress a = fabric_->port_address();
  wire::Hello h;
  h.from = self_;
  h.to = p.id;
  h.qpn = qpn;
  h.psn = psn;
  h.lid = a.lid;
  h.mtu = static_cast<std::uint8_t>(a.mtu);
  h.flags = a.ethernet ? wire::kHelloFlagEthernet : 0;
  h.gid = a.gid;
  h.rkey = fabric_->rkey();
  h.region_addr = reinterpret_cast<std::uint64_t>(region_.data());
  h.region_bytes = region_.size();
  h.group = group_;
  return h;
}

RemoteQp remote_of(const wire::Hello& h) {
  RemoteQp r;
  r.qpn = h.qpn;
  r.psn = h.psn;
  r.port.lid = h.lid;
  r.port.gid = h.gid;
  r.port.mtu = static_cast<ibv_mtu>(h.mtu);
  r.port.ethernet = (h.flags & wire::kHelloFlagEthernet) != 0;
  return r;
}

// A fresh QP in INIT with its receive queue full. Created outside mu_ (a firmware command);
// nothing can complete on it before it is published under mu_.
std::unique_ptr<QueuePair> VerbsTransport::new_qp(Peer& p, std::uint32_t& epoch) {
  {
    std::lock_guard lk(mu_);
    epoch = p.next_epoch++;
  }
  auto qp = fabric_->create_qp();
  if (int rc = qp->post_recvs(encode(WrId{true, p.index, epoch, 0}), recv_depth_); rc != 0) {
    throw std::runtime_error("ibv_post_recv failed: " + errno_text(rc));
  }
  return qp;
}

bool VerbsTransport::on_hello_request(Conn& c, const wire::Hello& h) {
  if (std::string why = check_hello(h, nullptr); !why.empty()) {
    refuse(c, why);
    return false;
  }
  Peer& p = *peers_[index_.at(h.from)];
  bool stale = false;
  {
    std::lock_guard lk(mu_);
    stale = p.teardown_requested || p.qp != nullptr;
  }
  if ((p.conn != 0 && p.conn != c.id) || stale) {
    // The peer restarted (or re-dialed after a failure we have not handled yet): the old link is
    // dead. Tear it down first so the pending teardown cannot hit the new handshake.
    teardown_peer(p, "member " + std::to_string(p.id) + " opened a new side channel");
  }
  std::unique_ptr<QueuePair> qp;
  std::uint32_t epoch = 0;
  const std::uint32_t psn = rng_() & 0xffffff;
  try {
    qp = new_qp(p, epoch);
    qp->connect(remote_of(h), psn);
  } catch (const std::exception& e) {
    log(LogLevel::error, kComponent,
        "cannot set up a queue pair for member " + std::to_string(p.id) + ": " + e.what());
    const auto bytes = wire::encode_reject(std::string("queue pair setup failed: ") + e.what());
    [[maybe_unused]] auto rc = ::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    fail_conn(c.id, e.what(), LogLevel::debug);
    return false;
  }
  const std::uint32_t qpn = qp->qp_num();
  std::unique_ptr<QueuePair> replaced;
  {
    std::lock_guard lk(mu_);
    replaced = std::move(p.handshake_qp);
    p.handshake_qp = std::move(qp);
    p.handshake_epoch = epoch;
    p.handshake_psn = psn;
    p.handshake_remote = h;
  }
  replaced.reset();
  c.peer = p.index;
  p.conn = c.id;
  c.state = ConnState::await_ready;
  c.deadline = Clock::now() + kHandshakeTimeout;
  return send_frame(c, wire::encode_hello(our_hello(p, qpn, psn)));
}

bool VerbsTransport::on_hello_reply(Conn& c, const wire::Hello& h) {
  Peer& p = *peers_[c.peer];
  if (std::string why = check_hello(h, &p); !why.empty()) {
    refuse(c, why);
    return false;
  }
  // Only this thread touches the handshake QP until it is installed, and the peer writes nothing
  // before our ready frame, so connecting it outside mu_ is safe.
  QueuePair* qp = nullptr;
  std::uint32_t psn = 0;
  {
    std::lock_guard lk(mu_);
    qp = p.handshake_qp.get();
    psn = p.handshake_psn;
    p.handshake_remote = h;
  }
  if (qp == nullptr) {
    fail_conn(c.id, "handshake queue pair vanished", LogLevel::warn);
    return false;
  }
  try {
    qp->connect(remote_of(h), psn);
  } catch (const std::exception& e) {
    fail_conn(c.id, std::string("cannot connect the queue pair: ") + e.what(), LogLevel::error);
    return false;
  }
  std::unique_ptr<QueuePair> replaced;
  {
    std::lock_guard lk(mu_);
    replaced = install_locked(p);
  }
  replaced.reset();
  c.state = ConnState::up;
  p.backoff = kMinBackoff;
  p.last_failure.clear();
  return send_frame(c, wire::encode_ready());
}

bool VerbsTransport::on_ready(Conn& c) {
  Peer& p = *peers_[c.peer];
  std::unique_ptr<QueuePair> replaced;
  {
    std::lock_guard lk(mu_);
    if (!p.handshake_qp) {
      fail_conn(c.id, "handshake queue pair vanished", LogLevel::warn);
      return false;
    }
    replaced = install_locked(p);
  }
  replaced.reset();
  c.state = ConnState::up;
  p.last_failure.clear();
  return true;
}

bool VerbsTransport::send_frame(Conn& c, const std::vector<std::uint8_t>& bytes) {
  c.tx.insert(c.tx.end(), bytes.begin(), bytes.end());
  return flush_tx(c);
}

bool VerbsTransport::flush_tx(Conn& c) {
  while (!c.tx.empty()) {
    const ssize_t n = ::send(c.fd.get(), c.tx.data(), c.tx.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.tx.erase(c.tx.begin(), c.tx.begin() + n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    fail_conn(c.id, "side channel to " + conn_label(c) + " failed: " + errno_text(errno),
              LogLevel::info);
    return false;
  }
  set_epoll(c, !c.tx.empty());
  return true;
}

void VerbsTransport::set_epoll(Conn& c, bool want_out) {
  if (c.want_out == want_out) return;
  c.want_out = want_out;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0u);
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
}

// Refuses what the peer sent: counts it, tells the peer why (best effort) and cuts the link.
void VerbsTransport::refuse(Conn& c, const std::string& why) {
  bad_frames_.fetch_add(1, std::memory_order_relaxed);
  const auto bytes = wire::encode_reject(why);
  [[maybe_unused]] auto rc = ::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
  fail_conn(c.id, "refused side-channel frame from " + conn_label(c) + ": " + why, LogLevel::warn);
}

std::string VerbsTransport::conn_label(const Conn& c) const {
  if (c.peer != SIZE_MAX) return "member " + std::to_string(peers_[c.peer]->id) + " (" + c.remote + ")";
  return c.remote;
}

void VerbsTransport::close_conn(std::uint64_t id) {
  auto node = conns_.extract(id);
  if (node.empty()) return;
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, node.mapped().fd.get(), nullptr);
}

void VerbsTransport::fail_conn(std::uint64_t id, const std::string& reason, LogLevel level) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  const std::size_t peer = it->second.peer;
  close_conn(id);
  if (peer != SIZE_MAX && peers_[peer]->conn == id) {
    Peer& p = *peers_[peer];
    p.conn = 0;
    // Say it once per distinct failure while the peer stays away (it may simply not be up yet).
    if (reason != p.last_failure) {
      log(level, kComponent, reason);
      p.last_failure = reason;
    }
    teardown_peer(p, reason);
  } else {
    log(level, kComponent, reason);
  }
}

// Link down (if it was up), QPs destroyed, side channel closed, reconnect scheduled.
void VerbsTransport::teardown_peer(Peer& p, const std::string& reason) {
  std::unique_ptr<QueuePair> a;
  std::unique_ptr<QueuePair> b;
  {
    std::lock_guard lk(mu_);
    mark_down_locked(p, reason);
    a = std::move(p.qp);
    b = std::move(p.handshake_qp);
    p.teardown_requested = false;
  }
  a.reset();
  b.reset();
  if (p.conn != 0) {
    close_conn(p.conn);
    p.conn = 0;
  }
  // start_connect() grows the backoff; a link that was up retries after the minimum.
  if (p.initiator) p.next_attempt = Clock::now() + p.backoff;
}

void VerbsTransport::run_teardowns() {
  for (auto& pp : peers_) {
    bool requested = false;
    {
      std::lock_guard lk(mu_);
      requested = pp->teardown_requested;
    }
    if (requested) teardown_peer(*pp, "link failed");
  }
}

void VerbsTransport::run_timers() {
  const auto now = Clock::now();
  std::vector<std::uint64_t> expired;
  for (const auto& [id, c] : conns_) {
    if (c.state != ConnState::up && c.deadline <= now) expired.push_back(id);
  }
  for (std::uint64_t id : expired) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    fail_conn(id, "side-channel handshake with " + conn_label(it->second) + " timed out",
              LogLevel::warn);
  }
  for (auto& p : peers_) {
    if (stopping_.load()) return;
    if (p->initiator && p->conn == 0 && p->next_attempt <= now) start_connect(*p);
  }
}

void VerbsTransport::start_connect(Peer& p) {
  // Schedule the next attempt now; a success resets the backoff.
  p.next_attempt = Clock::now() + p.backoff;
  p.backoff = std::min<std::chrono::milliseconds>(p.backoff * 2, kMaxBackoff);
  auto note = [&](LogLevel level, const std::string& what) {
    if (what != p.last_failure) {
      log(level, kComponent, what);
      p.last_failure = what;
    }
  };

  std::string error;
  auto ai = resolve(p.host, p.port, false, error);
  if (!ai) {
    note(LogLevel::warn, "member " + std::to_string(p.id) + ": " + error);
    return;
  }
  std::unique_ptr<QueuePair> qp;
  std::uint32_t epoch = 0;
  try {
    qp = new_qp(p, epoch);
  } catch (const std::exception& e) {
    note(LogLevel::error, "cannot create a queue pair for member " + std::to_string(p.id) + ": " +
                              e.what());
    return;
  }
  Fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    note(LogLevel::error, "socket() failed: " + errno_text(errno));
    return;
  }
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    note(LogLevel::debug, "connect to member " + std::to_string(p.id) + " at " +
                              endpoint_text(p.host, p.port) + " failed: " + errno_text(errno));
    return;
  }
  Conn c;
  c.id = next_conn_id_++;
  c.fd = std::move(fd);
  c.outgoing = true;
  c.peer = p.index;
  c.state = ConnState::connecting;
  c.deadline = Clock::now() + kHandshakeTimeout;
  c.remote = endpoint_text(p.host, p.port);
  c.want_out = true;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  ev.data.u64 = c.id;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) {
    note(LogLevel::error, "epoll_ctl failed: " + errno_text(errno));
    return;
  }
  std::unique_ptr<QueuePair> replaced;
  {
    std::lock_guard lk(mu_);
    replaced = std::move(p.handshake_qp);
    p.handshake_qp = std::move(qp);
    p.handshake_epoch = epoch;
    p.handshake_psn = rng_() & 0xffffff;
  }
  replaced.reset();
  p.conn = c.id;
  const auto id = c.id;
  conns_.emplace(id, std::move(c));
}

}  // namespace

void validate_verbs_options(const TransportOptions& options) {
  const GroupConfig& g = options.group;
  if (options.region_bytes < kRegionHeaderBytes || options.region_bytes % 4096 != 0) {
    throw std::invalid_argument("region_bytes must be a multiple of 4096 and at least " +
                                std::to_string(kRegionHeaderBytes) + ", got " +
                                std::to_string(options.region_bytes));
  }
  if (g.group_name.empty() || g.group_name.size() > wire::kMaxGroupNameBytes) {
    throw std::invalid_argument("group_name must have 1 to 255 bytes for the verbs side channel");
  }
  if (g.members.size() > kMaxPeers + 1) {
    throw std::invalid_argument("the verbs transport supports at most " +
                                std::to_string(kMaxPeers + 1) + " members");
  }
  bool found_self = false;
  std::unordered_set<MemberId> seen;
  for (const MemberAddress& m : g.members) {
    if (!seen.insert(m.id).second) {
      throw std::invalid_argument("member id " + std::to_string(m.id) + " appears twice");
    }
    if (m.host.empty() || m.port == 0) {
      throw std::invalid_argument("member " + std::to_string(m.id) +
                                  " needs a host and a non-zero port for the verbs side channel");
    }
    found_self = found_self || m.id == options.self;
  }
  if (!found_self) {
    throw std::invalid_argument("self (member " + std::to_string(options.self) +
                                ") is not among the group's members");
  }
}

std::uint64_t env_number(const char* name, std::uint64_t fallback, std::uint64_t lo,
                         std::uint64_t hi, bool* was_set) {
  if (was_set) *was_set = false;
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  std::uint64_t out = 0;
  const char* end = v + std::strlen(v);
  auto [ptr, ec] = std::from_chars(v, end, out);
  if (ec != std::errc() || ptr != end || out < lo || out > hi) {
    throw std::invalid_argument(std::string(name) + "='" + v + "' is not a number in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  if (was_set) *was_set = true;
  return out;
}

std::size_t staging_bytes_per_peer(const TransportOptions& options) {
  constexpr std::size_t kMin = 64 << 10;
  constexpr std::size_t kMax = 4 << 20;
  bool set = false;
  const std::size_t env = env_number("DERECHO_RDMA_STAGING_BYTES", 0, 0, std::uint64_t{1} << 36, &set);
  const std::size_t want = set ? env : std::clamp(options.region_bytes, kMin, kMax);
  return std::max(kMin, align_up(want, 4096));
}

std::size_t staging_bytes_for(const TransportOptions& options) {
  const std::size_t peers = options.group.members.size() > 1 ? options.group.members.size() - 1 : 1;
  return peers * staging_bytes_per_peer(options);
}

std::unique_ptr<Transport> make_verbs_transport(const TransportOptions& options,
                                                std::unique_ptr<Fabric> fabric,
                                                VerbsTuning tuning) {
  return std::make_unique<VerbsTransport>(options, std::move(fabric), tuning);
}

}  // namespace derecho::transport::verbs
