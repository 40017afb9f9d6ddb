#pragma once
// The seam between the verbs transport's connection logic (verbs_transport.cpp) and the RDMA
// device (verbs_device.cpp). Internal to the transport and its tests: the tests drive the same
// transport over an in-process fake fabric on machines without an RDMA device.
#include <infiniband/verbs.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "transport/transport.hpp"

namespace derecho::transport::verbs {

using Gid = std::array<std::uint8_t, 16>;

// How one end of a queue pair is reached; sent to the peer in the side-channel hello.
struct PortAddress {
  std::uint16_t lid = 0;
  Gid gid{};
  ibv_mtu mtu = IBV_MTU_1024;  // the port's active MTU
  bool ethernet = false;       // RoCE: the address handle must carry a GRH
};

struct RemoteQp {
  std::uint32_t qpn = 0;
  std::uint32_t psn = 0;  // first PSN the remote will send (our rq_psn)
  PortAddress port;
};

// One RDMA write of [local_offset, +length) of our region (or of the staging buffer) to
// remote_addr under rkey.
struct WriteRequest {
  std::uint64_t wr_id = 0;
  bool from_staging = false;
  std::uint64_t local_offset = 0;
  std::uint32_t length = 0;
  std::uint64_t remote_addr = 0;
  std::uint32_t rkey = 0;
  bool signaled = false;
  bool with_imm = false;   // IBV_WR_RDMA_WRITE_WITH_IMM: consumes a receive at the remote
  std::uint32_t imm = 0;   // host order
};

struct Completion {
  std::uint64_t wr_id = 0;
  ibv_wc_status status = IBV_WC_SUCCESS;
  std::uint32_t vendor_err = 0;
};

struct AsyncEvent {
  std::string what;               // ibv_event_type_str and context
  std::optional<std::uint32_t> qp_num;  // set for QP events
  bool qp_fatal = false;          // the QP is unusable (QP_FATAL, QP_REQ_ERR, QP_ACCESS_ERR)
  bool device_fatal = false;      // DEVICE_FATAL, CQ_ERR: every link is dead
};

// An RC queue pair, created in INIT (so receives can be posted before connect()).
// Not thread-safe: the transport serializes calls under its lock.
class QueuePair {
 public:
  virtual ~QueuePair() = default;
  virtual std::uint32_t qp_num() const = 0;
  // INIT -> RTR -> RTS towards `remote`. Throws std::runtime_error naming the failed step.
  virtual void connect(const RemoteQp& remote, std::uint32_t local_psn) = 0;
  // Posts the writes as one linked list. Returns 0 or an errno value (the link is then unusable).
  virtual int post_writes(std::span<const WriteRequest> writes) = 0;
  // Posts `count` zero-length receives (for write-with-immediate) with the same wr_id.
  virtual int post_recvs(std::uint64_t wr_id, std::size_t count) = 0;
};

// One device context, protection domain, completion queue (+ channel) and the registered region.
// QueuePairs it creates must be destroyed before it.
class Fabric {
 public:
  virtual ~Fabric() = default;
  virtual std::string describe() const = 0;
  virtual std::span<std::byte> region() = 0;
  // Registered (local-only) memory where post_write snapshots the bytes it will send.
  virtual std::span<std::byte> staging() = 0;
  virtual std::uint32_t rkey() const = 0;
  virtual PortAddress port_address() const = 0;
  virtual std::uint32_t send_depth() const = 0;  // max outstanding send WRs per QP
  virtual std::uint32_t recv_depth() const = 0;  // receives kept posted per QP
  virtual std::unique_ptr<QueuePair> create_qp() = 0;  // throws std::runtime_error

  // Completion notification: completion_fd() turns readable when an event is pending after
  // request_notify(). take_completion_event() consumes (and acks) one event without blocking.
  virtual int completion_fd() const = 0;
  virtual bool take_completion_event() = 0;
  virtual int request_notify() = 0;  // 0 or errno
  // Polls up to out.size() completions. Returns the count, or -1 if the CQ itself failed.
  virtual int poll(std::span<Completion> out) = 0;

  // Asynchronous device events (port changes, fatal QP errors); -1 if the fabric has none.
  virtual int async_fd() const { return -1; }
  virtual std::optional<AsyncEvent> take_async_event() { return std::nullopt; }
};

struct FabricSpec {
  std::size_t region_bytes = 0;
  std::size_t staging_bytes = 0;  // staging_bytes_for(options)
  std::size_t peers = 0;          // queue pairs the CQ must have room for
};

// Staging memory a transport for `options` needs: per peer, the region size clamped to
// [64 KiB, 4 MiB] or DERECHO_RDMA_STAGING_BYTES (rounded up to 4 KiB, at least 64 KiB).
std::size_t staging_bytes_per_peer(const TransportOptions& options);
std::size_t staging_bytes_for(const TransportOptions& options);

// Opens the device named by DERECHO_RDMA_DEVICE (else the first one), port DERECHO_RDMA_PORT
// (default 1), GID index DERECHO_RDMA_GID_INDEX (default 0), and registers a fresh region.
std::unique_ptr<Fabric> open_device_fabric(const FabricSpec& spec);

// Number of RDMA devices ibv_get_device_list reports (0 when the call fails, e.g. ENOSYS).
int rdma_device_count();

struct VerbsTuning {
  // Writes of at least this many bytes (0 = none) skip the staging copy and are sent straight
  // from the region; their bytes must then stay unchanged until completed() covers them.
  // DERECHO_RDMA_ZERO_COPY_BYTES for make_verbs_transport(options).
  std::size_t zero_copy_min_bytes = 0;
};

// The transport over any fabric whose region has options.region_bytes bytes and whose staging
// buffer has staging_bytes_for(options) bytes.
std::unique_ptr<Transport> make_verbs_transport(const TransportOptions& options,
                                                std::unique_ptr<Fabric> fabric,
                                                VerbsTuning tuning = {});

// The environment variable `name` as a number in [lo, hi], or `fallback` when unset or empty.
// Throws std::invalid_argument naming the variable otherwise. Sets *was_set when given.
std::uint64_t env_number(const char* name, std::uint64_t fallback, std::uint64_t lo,
                         std::uint64_t hi, bool* was_set = nullptr);

// Throws std::invalid_argument if the options cannot drive a verbs transport.
void validate_verbs_options(const TransportOptions& options);

}  // namespace derecho::transport::verbs
