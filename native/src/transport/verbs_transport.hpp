#pragma once
#include <memory>

#include "transport/transport.hpp"

namespace derecho::transport {

// RDMA verbs transport (rdma-core): one RC queue pair per peer, RDMA writes into the peer's
// registered region, connection info exchanged over a TCP side channel on each member's
// configured host:port. See docs/transport-verbs.md.
//
// Device selection comes from the environment: DERECHO_RDMA_DEVICE (device name, default the
// first device), DERECHO_RDMA_PORT (default 1), DERECHO_RDMA_GID_INDEX (default 0).
//
// Throws std::invalid_argument for unusable options and std::runtime_error when no RDMA device
// exists ("no RDMA device found (ibv_get_device_list returned 0 devices)"), the named device is
// missing, or the device cannot be opened or the region registered.
std::unique_ptr<Transport> make_verbs_transport(const TransportOptions& options);

}  // namespace derecho::transport
