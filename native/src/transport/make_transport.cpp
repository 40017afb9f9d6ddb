#include <stdexcept>

#include "transport/shm_transport.hpp"
#include "transport/tcp_transport.hpp"
#include "transport/transport.hpp"
#ifdef DERECHO_HAVE_VERBS
#include "transport/verbs_transport.hpp"
#endif

namespace derecho::transport {

std::unique_ptr<Transport> make_transport(const TransportOptions& options) {
  switch (options.group.transport) {
    case TransportKind::shm: return make_shm_transport(options);
    case TransportKind::tcp: return make_tcp_transport(options);
    case TransportKind::verbs:
#ifdef DERECHO_HAVE_VERBS
      return make_verbs_transport(options);
#else
      throw std::runtime_error(
          "transport 'verbs' is not available: rdma-core (libibverbs) was not found at build time");
#endif
  }
  throw std::invalid_argument("unknown transport kind");
}

}  // namespace derecho::transport
