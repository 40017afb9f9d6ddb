#pragma once
#include <memory>

#include "transport/transport.hpp"

namespace derecho::transport {

// Same-host transport: every member's region is a file in /dev/shm that all members map.
// A write is a copy straight into the peer's mapping, so it has landed when post_write returns.
std::unique_ptr<Transport> make_shm_transport(const TransportOptions& options);

}  // namespace derecho::transport
