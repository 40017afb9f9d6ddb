#pragma once
#include <memory>

#include "transport/transport.hpp"

namespace derecho::transport {

// Transport over TCP (docs/wire-tcp.md): one outbound connection per peer carries our writes,
// an IO thread applies the writes peers send us and reads their acknowledgements. Throws
// std::invalid_argument for a bad configuration and std::runtime_error when the listening
// socket cannot be opened.
std::unique_ptr<Transport> make_tcp_transport(const TransportOptions& options);

}  // namespace derecho::transport
