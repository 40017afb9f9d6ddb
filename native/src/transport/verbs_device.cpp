// The real verbs fabric: device, protection domain, completion queue + channel, registered region
// and RC queue pairs, each owned by a std::unique_ptr with a custom deleter.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "transport/verbs_fabric.hpp"

namespace derecho::transport::verbs {
namespace {

constexpr std::string_view kComponent = "verbs";

// Queue pair attributes (see docs/transport-verbs.md).
constexpr std::uint32_t kWantedDepth = 256;     // send and receive queue depth per QP
constexpr std::uint32_t kWantedInline = 64;     // counters and small SST columns go inline
constexpr std::uint8_t kAckTimeout = 14;        // 4.096 us * 2^14 = 67 ms per try
constexpr std::uint8_t kRetryCount = 7;         // 7 retries: a dead peer is seen in ~0.5 s
constexpr std::uint8_t kRnrRetry = 7;           // 7 = retry forever on receiver-not-ready
constexpr std::uint8_t kMinRnrTimer = 12;       // 0.64 ms
constexpr std::uint8_t kHopLimit = 64;

std::string errno_text(int err) { return std::string(std::strerror(err)); }

// ---- RAII wrappers -------------------------------------------------------------------------

struct DeviceListDeleter {
  void operator()(ibv_device** list) const noexcept { ibv_free_device_list(list); }
};
struct ContextDeleter {
  void operator()(ibv_context* ctx) const noexcept {
    if (int rc = ibv_close_device(ctx); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_close_device failed: " + errno_text(errno));
    }
  }
};
struct PdDeleter {
  void operator()(ibv_pd* pd) const noexcept {
    if (int rc = ibv_dealloc_pd(pd); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_dealloc_pd failed: " + errno_text(rc));
    }
  }
};
struct ChannelDeleter {
  void operator()(ibv_comp_channel* ch) const noexcept {
    if (int rc = ibv_destroy_comp_channel(ch); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_destroy_comp_channel failed: " + errno_text(rc));
    }
  }
};
struct CqDeleter {
  void operator()(ibv_cq* cq) const noexcept {
    if (int rc = ibv_destroy_cq(cq); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_destroy_cq failed: " + errno_text(rc));
    }
  }
};
struct QpDeleter {
  void operator()(ibv_qp* qp) const noexcept {
    if (int rc = ibv_destroy_qp(qp); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_destroy_qp failed: " + errno_text(rc));
    }
  }
};
struct MrDeleter {
  void operator()(ibv_mr* mr) const noexcept {
    if (int rc = ibv_dereg_mr(mr); rc != 0) {
      log(LogLevel::warn, kComponent, "ibv_dereg_mr failed: " + errno_text(rc));
    }
  }
};
struct MunmapDeleter {
  std::size_t bytes = 0;
  void operator()(std::byte* p) const noexcept { ::munmap(p, bytes); }
};

using DeviceList = std::unique_ptr<ibv_device*, DeviceListDeleter>;
using Context = std::unique_ptr<ibv_context, ContextDeleter>;
using ProtectionDomain = std::unique_ptr<ibv_pd, PdDeleter>;
using CompletionChannel = std::unique_ptr<ibv_comp_channel, ChannelDeleter>;
using CompletionQueue = std::unique_ptr<ibv_cq, CqDeleter>;
using QpHandle = std::unique_ptr<ibv_qp, QpDeleter>;
using MemoryRegion = std::unique_ptr<ibv_mr, MrDeleter>;
using Mapping = std::unique_ptr<std::byte, MunmapDeleter>;

// ---- environment ---------------------------------------------------------------------------

struct DeviceChoice {
  std::optional<std::string> name;  // DERECHO_RDMA_DEVICE
  std::uint8_t port = 1;            // DERECHO_RDMA_PORT
  int gid_index = 0;                // DERECHO_RDMA_GID_INDEX
  bool gid_index_set = false;
};

DeviceChoice choice_from_env() {
  DeviceChoice c;
  if (const char* v = std::getenv("DERECHO_RDMA_DEVICE"); v != nullptr && *v != '\0') c.name = v;
  c.port = static_cast<std::uint8_t>(env_number("DERECHO_RDMA_PORT", 1, 1, 255));
  c.gid_index = static_cast<int>(env_number("DERECHO_RDMA_GID_INDEX", 0, 0, 65535, &c.gid_index_set));
  return c;
}

// Maps `bytes` of zeroed, page-aligned memory for registration. MADV_DONTFORK keeps it out of
// child processes (Node may fork): on kernels without fork-safe pinning a fork would otherwise
// make the parent's registered pages copy-on-write, and the HCA would keep using the old ones.
Mapping map_registrable(std::size_t bytes, const char* what) {
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    throw std::runtime_error(std::string("mmap of a ") + std::to_string(bytes) + "-byte " + what +
                             " failed: " + errno_text(errno));
  }
  Mapping m(static_cast<std::byte*>(mem), MunmapDeleter{bytes});
  if (::madvise(mem, bytes, MADV_DONTFORK) != 0) {
    throw std::runtime_error(std::string("madvise(MADV_DONTFORK) on the ") + what +
                             " failed: " + errno_text(errno));
  }
  return m;
}

void set_nonblocking(int fd, const char* what) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw std::runtime_error(std::string("cannot make the ") + what +
                             " fd non-blocking: " + errno_text(errno));
  }
}

// ---- queue pair ----------------------------------------------------------------------------

struct QpParams {
  ibv_pd* pd = nullptr;
  ibv_cq* cq = nullptr;
  std::uint8_t port = 1;
  int gid_index = 0;
  bool use_grh = false;
  PortAddress local;
  std::uint32_t send_depth = 0;
  std::uint32_t recv_depth = 0;
  std::byte* region = nullptr;
  std::uint32_t lkey = 0;
  std::byte* staging = nullptr;
  std::uint32_t staging_lkey = 0;
  std::string device;
};

class IbvQueuePair final : public QueuePair {
 public:
  explicit IbvQueuePair(const QpParams& params) : p_(params) {
    ibv_qp_init_attr init{};
    init.send_cq = p_.cq;
    init.recv_cq = p_.cq;
    init.qp_type = IBV_QPT_RC;
    init.sq_sig_all = 0;
    init.cap.max_send_wr = p_.send_depth;
    init.cap.max_recv_wr = p_.recv_depth;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    init.cap.max_inline_data = kWantedInline;
    ibv_qp* raw = ibv_create_qp(p_.pd, &init);
    if (raw == nullptr) {
      // Some devices have no inline support; try again without it.
      init.cap.max_inline_data = 0;
      raw = ibv_create_qp(p_.pd, &init);
    }
    if (raw == nullptr) {
      throw std::runtime_error("ibv_create_qp (RC, depth " + std::to_string(p_.send_depth) +
                               ") on " + p_.device + " failed: " + errno_text(errno));
    }
    qp_.reset(raw);
    max_inline_ = init.cap.max_inline_data;

    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = p_.port;
    attr.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
    if (int rc = ibv_modify_qp(qp_.get(), &attr,
                               IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
        rc != 0) {
      throw std::runtime_error("ibv_modify_qp RESET->INIT failed: " + errno_text(rc));
    }
  }

  std::uint32_t qp_num() const override { return qp_->qp_num; }

  void connect(const RemoteQp& remote, std::uint32_t local_psn) override {
    ibv_qp_attr rtr{};
    rtr.qp_state = IBV_QPS_RTR;
    rtr.path_mtu = std::min(p_.local.mtu, remote.port.mtu);
    rtr.dest_qp_num = remote.qpn;
    rtr.rq_psn = remote.psn & 0xffffff;
    rtr.max_dest_rd_atomic = 1;
    rtr.min_rnr_timer = kMinRnrTimer;
    rtr.ah_attr.port_num = p_.port;
    rtr.ah_attr.dlid = remote.port.lid;
    rtr.ah_attr.sl = 0;
    rtr.ah_attr.src_path_bits = 0;
    if (p_.use_grh || remote.port.ethernet) {
      rtr.ah_attr.is_global = 1;
      std::memcpy(rtr.ah_attr.grh.dgid.raw, remote.port.gid.data(), remote.port.gid.size());
      rtr.ah_attr.grh.sgid_index = static_cast<std::uint8_t>(p_.gid_index);
      rtr.ah_attr.grh.hop_limit = kHopLimit;
      rtr.ah_attr.grh.traffic_class = 0;
      rtr.ah_attr.grh.flow_label = 0;
    }
    if (int rc = ibv_modify_qp(qp_.get(), &rtr,
                               IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                   IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                   IBV_QP_MIN_RNR_TIMER);
        rc != 0) {
      throw std::runtime_error("ibv_modify_qp INIT->RTR (remote qpn " + std::to_string(remote.qpn) +
                               ", lid " + std::to_string(remote.port.lid) +
                               ") failed: " + errno_text(rc));
    }
    ibv_qp_attr rts{};
    rts.qp_state = IBV_QPS_RTS;
    rts.timeout = kAckTimeout;
    rts.retry_cnt = kRetryCount;
    rts.rnr_retry = kRnrRetry;
    rts.sq_psn = local_psn & 0xffffff;
    rts.max_rd_atomic = 1;
    if (int rc = ibv_modify_qp(qp_.get(), &rts,
                               IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
                                   IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
        rc != 0) {
      throw std::runtime_error("ibv_modify_qp RTR->RTS failed: " + errno_text(rc));
    }
  }

  int post_writes(std::span<const WriteRequest> writes) override {
    if (writes.empty()) return 0;
    wrs_.assign(writes.size(), ibv_send_wr{});
    sges_.assign(writes.size(), ibv_sge{});
    for (std::size_t i = 0; i < writes.size(); ++i) {
      const WriteRequest& w = writes[i];
      ibv_sge& sge = sges_[i];
      sge.addr = reinterpret_cast<std::uint64_t>((w.from_staging ? p_.staging : p_.region) +
                                                  w.local_offset);
      sge.length = w.length;
      sge.lkey = w.from_staging ? p_.staging_lkey : p_.lkey;
      ibv_send_wr& wr = wrs_[i];
      wr.wr_id = w.wr_id;
      wr.next = i + 1 < writes.size() ? &wrs_[i + 1] : nullptr;
      wr.sg_list = w.length > 0 ? &sge : nullptr;
      wr.num_sge = w.length > 0 ? 1 : 0;
      wr.opcode = w.with_imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE;
      unsigned flags = 0;
      if (w.signaled) flags |= IBV_SEND_SIGNALED;
      if (w.length > 0 && w.length <= max_inline_) flags |= IBV_SEND_INLINE;
      wr.send_flags = flags;
      if (w.with_imm) wr.imm_data = htobe32(w.imm);
      wr.wr.rdma.remote_addr = w.remote_addr;
      wr.wr.rdma.rkey = w.rkey;
    }
    ibv_send_wr* bad = nullptr;
    return ibv_post_send(qp_.get(), wrs_.data(), &bad);
  }

  int post_recvs(std::uint64_t wr_id, std::size_t count) override {
    if (count == 0) return 0;
    rwrs_.assign(count, ibv_recv_wr{});
    for (std::size_t i = 0; i < count; ++i) {
      rwrs_[i].wr_id = wr_id;
      rwrs_[i].next = i + 1 < count ? &rwrs_[i + 1] : nullptr;
      rwrs_[i].sg_list = nullptr;  // write-with-immediate carries no receive payload
      rwrs_[i].num_sge = 0;
    }
    ibv_recv_wr* bad = nullptr;
    return ibv_post_recv(qp_.get(), rwrs_.data(), &bad);
  }

 private:
  QpParams p_;
  QpHandle qp_;
  std::uint32_t max_inline_ = 0;
  std::vector<ibv_send_wr> wrs_;
  std::vector<ibv_sge> sges_;
  std::vector<ibv_recv_wr> rwrs_;
};

// ---- fabric --------------------------------------------------------------------------------

class IbvFabric final : public Fabric {
 public:
  IbvFabric(const FabricSpec& spec, const DeviceChoice& choice) : choice_(choice) {
    int count = 0;
    errno = 0;
    DeviceList list(ibv_get_device_list(&count));
    if (!list) {
      // ENOSYS: no RDMA support in the kernel at all, which for us is the same as no device.
      if (errno == ENOSYS || errno == 0) {
        throw std::runtime_error("no RDMA device found (ibv_get_device_list returned 0 devices)");
      }
      throw std::runtime_error("ibv_get_device_list failed: " + errno_text(errno));
    }
    if (count == 0) {
      throw std::runtime_error("no RDMA device found (ibv_get_device_list returned 0 devices)");
    }
    ibv_device* device = nullptr;
    if (choice_.name) {
      std::string names;
      for (int i = 0; i < count; ++i) {
        const char* n = ibv_get_device_name(list.get()[i]);
        if (*choice_.name == n) device = list.get()[i];
        names += (names.empty() ? "" : ", ") + std::string(n);
      }
      if (device == nullptr) {
        throw std::runtime_error("RDMA device '" + *choice_.name +
                                 "' (DERECHO_RDMA_DEVICE) not found; devices present: " + names);
      }
    } else {
      device = list.get()[0];
    }
    name_ = ibv_get_device_name(device);

    ctx_.reset(ibv_open_device(device));
    if (!ctx_) throw std::runtime_error("ibv_open_device(" + name_ + ") failed: " + errno_text(errno));
    // The list may be freed once the device is open.
    list.reset();

    ibv_device_attr dev{};
    if (int rc = ibv_query_device(ctx_.get(), &dev); rc != 0) {
      throw std::runtime_error("ibv_query_device(" + name_ + ") failed: " + errno_text(rc));
    }
    if (choice_.port > dev.phys_port_cnt) {
      throw std::runtime_error("RDMA device " + name_ + " has " + std::to_string(dev.phys_port_cnt) +
                               " port(s); DERECHO_RDMA_PORT=" + std::to_string(choice_.port));
    }
    ibv_port_attr port{};
    if (int rc = ibv_query_port(ctx_.get(), choice_.port, &port); rc != 0) {
      throw std::runtime_error("ibv_query_port(" + name_ + ", port " + std::to_string(choice_.port) +
                               ") failed: " + errno_text(rc));
    }
    if (port.state != IBV_PORT_ACTIVE) {
      log(LogLevel::warn, kComponent,
          "port " + std::to_string(choice_.port) + " of " + name_ + " is " +
              ibv_port_state_str(port.state) + ", not ACTIVE; links will fail until it is up");
    }
    address_.lid = port.lid;
    address_.mtu = port.active_mtu;
    address_.ethernet = port.link_layer == IBV_LINK_LAYER_ETHERNET;
    if (choice_.gid_index >= port.gid_tbl_len) {
      throw std::runtime_error("DERECHO_RDMA_GID_INDEX=" + std::to_string(choice_.gid_index) +
                               " is outside the GID table of " + name_ + " port " +
                               std::to_string(choice_.port) + " (" +
                               std::to_string(port.gid_tbl_len) + " entries)");
    }
    ibv_gid gid{};
    if (int rc = ibv_query_gid(ctx_.get(), choice_.port, choice_.gid_index, &gid); rc != 0) {
      throw std::runtime_error("ibv_query_gid(" + name_ + ", port " + std::to_string(choice_.port) +
                               ", index " + std::to_string(choice_.gid_index) +
                               ") failed: " + errno_text(errno));
    }
    std::memcpy(address_.gid.data(), gid.raw, address_.gid.size());
    const bool gid_empty =
        std::all_of(address_.gid.begin(), address_.gid.end(), [](std::uint8_t b) { return b == 0; });
    if (address_.ethernet && gid_empty) {
      throw std::runtime_error("GID index " + std::to_string(choice_.gid_index) + " of " + name_ +
                               " port " + std::to_string(choice_.port) +
                               " is empty; RoCE needs a GID (set DERECHO_RDMA_GID_INDEX)");
    }
    if (!address_.ethernet && address_.lid == 0) {
      log(LogLevel::warn, kComponent,
          "InfiniBand port " + std::to_string(choice_.port) + " of " + name_ +
              " has LID 0 (no subnet manager?)");
    }
    use_grh_ = address_.ethernet || choice_.gid_index_set;

    send_depth_ = std::min<std::uint32_t>(kWantedDepth, static_cast<std::uint32_t>(dev.max_qp_wr));
    recv_depth_ = send_depth_;
    const std::size_t wanted_cqe =
        std::max<std::size_t>(1, spec.peers) * (send_depth_ + recv_depth_) * 2 + 64;
    const int cqe = static_cast<int>(std::min<std::size_t>(wanted_cqe, static_cast<std::size_t>(dev.max_cqe)));

    pd_.reset(ibv_alloc_pd(ctx_.get()));
    if (!pd_) throw std::runtime_error("ibv_alloc_pd(" + name_ + ") failed: " + errno_text(errno));
    channel_.reset(ibv_create_comp_channel(ctx_.get()));
    if (!channel_) {
      throw std::runtime_error("ibv_create_comp_channel(" + name_ + ") failed: " + errno_text(errno));
    }
    set_nonblocking(channel_->fd, "completion channel");
    set_nonblocking(ctx_->async_fd, "async event");
    cq_.reset(ibv_create_cq(ctx_.get(), cqe, nullptr, channel_.get(), 0));
    if (!cq_) {
      throw std::runtime_error("ibv_create_cq(" + name_ + ", " + std::to_string(cqe) +
                               " entries) failed: " + errno_text(errno));
    }

    region_bytes_ = spec.region_bytes;
    region_ = map_registrable(region_bytes_, "region");
    mr_.reset(ibv_reg_mr(pd_.get(), region_.get(), region_bytes_,
                         IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
    if (!mr_) {
      const int err = errno;
      throw std::runtime_error("ibv_reg_mr of the " + std::to_string(region_bytes_) + "-byte region on " +
                               name_ + " failed: " + errno_text(err) +
                               (err == ENOMEM || err == EPERM
                                    ? " (is RLIMIT_MEMLOCK large enough? see ulimit -l / IPC_LOCK)"
                                    : ""));
    }
    staging_bytes_ = spec.staging_bytes;
    staging_ = map_registrable(staging_bytes_, "staging buffer");
    staging_mr_.reset(ibv_reg_mr(pd_.get(), staging_.get(), staging_bytes_, IBV_ACCESS_LOCAL_WRITE));
    if (!staging_mr_) {
      const int err = errno;
      throw std::runtime_error("ibv_reg_mr of the " + std::to_string(staging_bytes_) +
                               "-byte staging buffer on " + name_ + " failed: " + errno_text(err) +
                               (err == ENOMEM || err == EPERM
                                    ? " (is RLIMIT_MEMLOCK large enough? see ulimit -l / IPC_LOCK)"
                                    : ""));
    }
    log(LogLevel::info, kComponent, "opened " + describe());
  }

  std::string describe() const override {
    return name_ + " port " + std::to_string(choice_.port) + " (" +
           (address_.ethernet ? "RoCE" : "InfiniBand") + ", lid " + std::to_string(address_.lid) +
           ", gid index " + std::to_string(choice_.gid_index) + ", mtu " +
           std::to_string(128 << address_.mtu) + (use_grh_ ? ", GRH" : "") + ")";
  }
  std::span<std::byte> region() override { return {region_.get(), region_bytes_}; }
  std::span<std::byte> staging() override { return {staging_.get(), staging_bytes_}; }
  std::uint32_t rkey() const override { return mr_->rkey; }
  PortAddress port_address() const override { return address_; }
  std::uint32_t send_depth() const override { return send_depth_; }
  std::uint32_t recv_depth() const override { return recv_depth_; }

  std::unique_ptr<QueuePair> create_qp() override {
    QpParams p;
    p.pd = pd_.get();
    p.cq = cq_.get();
    p.port = choice_.port;
    p.gid_index = choice_.gid_index;
    p.use_grh = use_grh_;
    p.local = address_;
    p.send_depth = send_depth_;
    p.recv_depth = recv_depth_;
    p.region = region_.get();
    p.lkey = mr_->lkey;
    p.staging = staging_.get();
    p.staging_lkey = staging_mr_->lkey;
    p.device = name_;
    return std::make_unique<IbvQueuePair>(p);
  }

  int completion_fd() const override { return channel_->fd; }

  bool take_completion_event() override {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    if (ibv_get_cq_event(channel_.get(), &cq, &ctx) != 0) return false;  // EAGAIN: none pending
    ibv_ack_cq_events(cq, 1);
    return true;
  }

  int request_notify() override { return ibv_req_notify_cq(cq_.get(), 0); }

  int poll(std::span<Completion> out) override {
    std::array<ibv_wc, 32> wc{};
    const int want = static_cast<int>(std::min(out.size(), wc.size()));
    const int n = ibv_poll_cq(cq_.get(), want, wc.data());
    if (n < 0) return -1;
    for (int i = 0; i < n; ++i) {
      out[static_cast<std::size_t>(i)] = Completion{wc[static_cast<std::size_t>(i)].wr_id,
                                                    wc[static_cast<std::size_t>(i)].status,
                                                    wc[static_cast<std::size_t>(i)].vendor_err};
    }
    return n;
  }

  int async_fd() const override { return ctx_->async_fd; }

  std::optional<AsyncEvent> take_async_event() override {
    ibv_async_event ev{};
    if (ibv_get_async_event(ctx_.get(), &ev) != 0) return std::nullopt;
    AsyncEvent out;
    out.what = std::string(ibv_event_type_str(ev.event_type)) + " on " + name_;
    switch (ev.event_type) {
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_QP_REQ_ERR:
      case IBV_EVENT_QP_ACCESS_ERR:
        out.qp_num = ev.element.qp->qp_num;
        out.qp_fatal = true;
        break;
      case IBV_EVENT_COMM_EST:
      case IBV_EVENT_SQ_DRAINED:
      case IBV_EVENT_PATH_MIG:
      case IBV_EVENT_PATH_MIG_ERR:
      case IBV_EVENT_QP_LAST_WQE_REACHED:
        out.qp_num = ev.element.qp->qp_num;
        break;
      case IBV_EVENT_CQ_ERR:
      case IBV_EVENT_DEVICE_FATAL:
        out.device_fatal = true;
        break;
      case IBV_EVENT_PORT_ACTIVE:
      case IBV_EVENT_PORT_ERR:
      case IBV_EVENT_LID_CHANGE:
      case IBV_EVENT_PKEY_CHANGE:
      case IBV_EVENT_SM_CHANGE:
      case IBV_EVENT_CLIENT_REREGISTER:
      case IBV_EVENT_GID_CHANGE:
        out.what += " port " + std::to_string(ev.element.port_num);
        break;
      default:
        break;
    }
    ibv_ack_async_event(&ev);
    return out;
  }

 private:
  DeviceChoice choice_;
  std::string name_;
  PortAddress address_;
  bool use_grh_ = false;
  std::uint32_t send_depth_ = 0;
  std::uint32_t recv_depth_ = 0;
  std::size_t region_bytes_ = 0;
  std::size_t staging_bytes_ = 0;
  // Destroyed in reverse order: MR before its memory, CQ before its channel, all before the PD
  // and the context.
  Context ctx_;
  ProtectionDomain pd_;
  CompletionChannel channel_;
  CompletionQueue cq_;
  Mapping region_{nullptr, MunmapDeleter{}};
  MemoryRegion mr_;
  Mapping staging_{nullptr, MunmapDeleter{}};
  MemoryRegion staging_mr_;
};

}  // namespace

int rdma_device_count() {
  int count = 0;
  DeviceList list(ibv_get_device_list(&count));
  return list ? count : 0;
}

std::unique_ptr<Fabric> open_device_fabric(const FabricSpec& spec) {
  return std::make_unique<IbvFabric>(spec, choice_from_env());
}

}  // namespace derecho::transport::verbs

namespace derecho::transport {

std::unique_ptr<Transport> make_verbs_transport(const TransportOptions& options) {
  verbs::validate_verbs_options(options);
  verbs::VerbsTuning tuning;
  tuning.zero_copy_min_bytes =
      verbs::env_number("DERECHO_RDMA_ZERO_COPY_BYTES", 0, 0, std::uint64_t{1} << 40);
  verbs::FabricSpec spec;
  spec.region_bytes = options.region_bytes;
  spec.staging_bytes = verbs::staging_bytes_for(options);
  spec.peers = options.group.members.size() > 0 ? options.group.members.size() - 1 : 0;
  return verbs::make_verbs_transport(options, verbs::open_device_fabric(spec), tuning);
}

}  // namespace derecho::transport
