#include "transport/memory_network.hpp"

#include <stdexcept>
#include <string>

namespace derecho::transport {

class MemoryNetwork::Endpoint final : public Transport {
 public:
  Endpoint(MemoryNetwork& net, MemberId self) : net_(net), self_(self) {
    net_.nodes_.at(self).doorbell = &doorbell_;
  }
  ~Endpoint() override { net_.nodes_.at(self_).doorbell = nullptr; }

  MemberId self() const override { return self_; }
  std::span<std::byte> region() override { return net_.nodes_.at(self_).region; }
  void start(std::chrono::milliseconds) override {}
  void stop() override {}

  void post_write(MemberId peer, std::size_t offset, std::size_t len) override {
    if (offset < kRegionHeaderBytes || offset + len > net_.region_bytes_) {
      throw std::out_of_range("write outside the region");
    }
    net_.enqueue(self_, peer, offset, region().subspan(offset, len));
    ++posted_[peer];
  }
  void flush() override {}
  std::uint64_t completed(MemberId peer) const override {
    const auto it = posted_.find(peer);
    return it == posted_.end() ? 0 : it->second - net_.links_.at({self_, peer}).size();
  }
  Doorbell& doorbell() override { return doorbell_; }
  std::vector<LinkEvent> take_link_events() override { return {}; }
  bool link_up(MemberId) const override { return true; }

 private:
  MemoryNetwork& net_;
  MemberId self_;
  Doorbell doorbell_;
  std::map<MemberId, std::uint64_t> posted_;
};

MemoryNetwork::MemoryNetwork(std::vector<MemberId> members, std::size_t region_bytes, std::uint64_t seed)
    : members_(std::move(members)), region_bytes_(region_bytes), random_(seed) {
  for (MemberId m : members_) {
    nodes_[m].region.assign(region_bytes, std::byte{0});
    for (MemberId p : members_) {
      if (p != m) links_[{m, p}];
    }
  }
}

MemoryNetwork::~MemoryNetwork() = default;

std::unique_ptr<Transport> MemoryNetwork::endpoint(MemberId id) {
  if (!nodes_.contains(id)) throw std::out_of_range("member " + std::to_string(id) + " is not in the network");
  return std::make_unique<Endpoint>(*this, id);
}

void MemoryNetwork::enqueue(MemberId from, MemberId to, std::size_t offset, std::span<const std::byte> bytes) {
  links_.at({from, to}).push_back({offset, {bytes.begin(), bytes.end()}});
}

void MemoryNetwork::apply(MemberId to, const Write& w) {
  Node& node = nodes_.at(to);
  copy_into_region(node.region.data() + w.offset, w.bytes.data(), w.bytes.size());
  if (node.doorbell) node.doorbell->ring();
}

bool MemoryNetwork::deliver_from(MemberId from, MemberId to) {
  auto& q = links_.at({from, to});
  if (q.empty()) return false;
  apply(to, q.front());
  q.pop_front();
  return true;
}

bool MemoryNetwork::deliver_one() {
  std::vector<std::pair<MemberId, MemberId>> busy;
  for (const auto& [link, q] : links_) {
    if (!q.empty()) busy.push_back(link);
  }
  if (busy.empty()) return false;
  const auto& link = busy[std::uniform_int_distribution<std::size_t>(0, busy.size() - 1)(random_)];
  return deliver_from(link.first, link.second);
}

void MemoryNetwork::deliver_all() {
  while (deliver_one()) {
  }
}

std::size_t MemoryNetwork::pending() const {
  std::size_t n = 0;
  for (const auto& [link, q] : links_) n += q.size();
  return n;
}

}  // namespace derecho::transport
