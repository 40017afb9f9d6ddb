#include "transport/memory_network.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <string>

namespace derecho::transport {

class MemoryNetwork::Endpoint final : public Transport {
 public:
  Endpoint(MemoryNetwork& net, MemberId self) : net_(net), self_(self) {
    Node& node = net_.nodes_.at(self);
    node.doorbell = &doorbell_;
    node.has_endpoint = true;
  }
  ~Endpoint() override {
    Node& node = net_.nodes_.at(self_);
    node.doorbell = nullptr;
    node.has_endpoint = false;
  }

  MemberId self() const override { return self_; }
  std::span<std::byte> region() override { return net_.nodes_.at(self_).region; }
  void start(std::chrono::milliseconds) override {}
  void stop() override {}

  void post_write(MemberId peer, std::size_t offset, std::size_t len) override {
    if (offset < kRegionHeaderBytes || offset + len > net_.region_bytes_) {
      throw std::out_of_range("write outside the region");
    }
    if (net_.enqueue(self_, peer, offset, region().subspan(offset, len))) ++posted_[peer];
  }
  void post_bulk_write(MemberId peer, std::size_t offset, std::size_t len, std::uint64_t epoch) override {
    if (offset < kRegionHeaderBytes || offset + len > net_.region_bytes_) {
      throw std::out_of_range("write outside the region");
    }
    if (net_.enqueue(self_, peer, offset, region().subspan(offset, len), epoch)) ++posted_[peer];
  }
  void fence_bulk_below(std::uint64_t epoch) override {
    auto& fence = net_.nodes_.at(self_).bulk_fence;
    fence = std::max(fence, epoch);
  }
  void flush() override {}
  std::uint64_t completed(MemberId peer) const override {
    const auto it = posted_.find(peer);
    return it == posted_.end() ? 0 : it->second - net_.links_.at({self_, peer}).writes.size();
  }
  Doorbell& doorbell() override { return doorbell_; }
  std::vector<LinkEvent> take_link_events() override {
    auto taken = std::exchange(net_.nodes_.at(self_).events, {});
    for (const LinkEvent& e : taken) {
      if (e.up) net_.links_.at({self_, e.peer}).engine_session = e.session;
    }
    return taken;
  }
  bool link_up(MemberId peer) const override { return net_.links_.at({self_, peer}).up; }

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
      if (p == m) continue;
      links_[{m, p}];
      nodes_[m].events.push_back({p, true, "in-memory link", 1});
    }
  }
}

MemoryNetwork::~MemoryNetwork() = default;

std::unique_ptr<Transport> MemoryNetwork::endpoint(MemberId id) {
  if (!nodes_.contains(id)) throw std::out_of_range("member " + std::to_string(id) + " is not in the network");
  if (nodes_.at(id).has_endpoint) throw std::logic_error("member " + std::to_string(id) + " already has an endpoint");
  return std::make_unique<Endpoint>(*this, id);
}

void MemoryNetwork::reset_member(MemberId id) {
  Node& node = nodes_.at(id);
  if (node.has_endpoint) throw std::logic_error("reset_member(" + std::to_string(id) + ") while its endpoint is alive");
  for (MemberId peer : members_) {
    if (peer == id) continue;
    break_link(peer, id);  // the peer's engine hears of it
    Link& out = links_.at({id, peer});
    out.up = false;
    out.writes.clear();
    out.restore_on_next_post = false;
    links_.at({peer, id}).restore_on_next_post = false;
  }
  node.events.clear();
  node.region.assign(region_bytes_, std::byte{0});
  node.bulk_fence = 0;
}

bool MemoryNetwork::enqueue(MemberId from, MemberId to, std::size_t offset, std::span<const std::byte> bytes,
                            std::optional<std::uint64_t> bulk_epoch) {
  for (MemberId peer : members_) {
    if (peer == from) continue;
    Link& other = links_.at({from, peer});
    if (other.restore_on_next_post) {
      other.restore_on_next_post = false;
      restore_link(from, peer);
    }
  }
  Link& link = links_.at({from, to});
  if (!link.up || link.session != link.engine_session) return false;
  link.writes.push_back({offset, {bytes.begin(), bytes.end()}, bulk_epoch});
  return true;
}

void MemoryNetwork::queue_event(MemberId at, LinkEvent event) {
  Node& node = nodes_.at(at);
  node.events.push_back(std::move(event));
  if (node.doorbell) node.doorbell->ring();
}

void MemoryNetwork::break_link(MemberId from, MemberId to) {
  Link& link = links_.at({from, to});
  link.restore_on_next_post = false;
  if (!link.up) return;
  link.up = false;
  link.writes.clear();
  queue_event(from, {to, false, "link broken by the test", 0});
}

void MemoryNetwork::restore_link(MemberId from, MemberId to) {
  Link& link = links_.at({from, to});
  if (link.up) return;
  link.up = true;
  ++link.session;
  queue_event(from, {to, true, "link restored by the test", link.session});
}

void MemoryNetwork::apply(MemberId to, const Write& w) {
  Node& node = nodes_.at(to);
  // A bulk write from a view the receiver has left behind does not land.
  if (!w.bulk_epoch || *w.bulk_epoch >= node.bulk_fence) {
    copy_into_region(node.region.data() + w.offset, w.bytes.data(), w.bytes.size());
  }
  if (node.doorbell) node.doorbell->ring();
}

void MemoryNetwork::restore_link_mid_pass(MemberId from, MemberId to) {
  Link& link = links_.at({from, to});
  if (!link.up) link.restore_on_next_post = true;
}

void MemoryNetwork::restore_all_links() {
  for (auto& [ends, link] : links_) {
    link.restore_on_next_post = false;
    restore_link(ends.first, ends.second);
  }
}

bool MemoryNetwork::link_up_between(MemberId from, MemberId to) const { return links_.at({from, to}).up; }

bool MemoryNetwork::deliver_from(MemberId from, MemberId to) {
  auto& q = links_.at({from, to}).writes;
  if (q.empty()) return false;
  apply(to, q.front());
  q.pop_front();
  return true;
}

bool MemoryNetwork::deliver_one() {
  std::vector<std::pair<MemberId, MemberId>> busy;
  for (const auto& [ends, link] : links_) {
    if (!link.writes.empty()) busy.push_back(ends);
  }
  if (busy.empty()) return false;
  const auto& link = busy[std::uniform_int_distribution<std::size_t>(0, busy.size() - 1)(random_)];
  return deliver_from(link.first, link.second);
}

void MemoryNetwork::deliver_all() {
  while (deliver_one()) {
  }
}

std::size_t MemoryNetwork::pending(MemberId from, MemberId to) const { return links_.at({from, to}).writes.size(); }

std::span<const std::byte> MemoryNetwork::region_of(MemberId id) const { return nodes_.at(id).region; }

std::size_t MemoryNetwork::pending() const {
  std::size_t n = 0;
  for (const auto& [ends, link] : links_) n += link.writes.size();
  return n;
}

}  // namespace derecho::transport
