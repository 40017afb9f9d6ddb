#include "member/member.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace derecho {

Member::Member(GroupConfig config, MemberId self, multicast::DeliverySink& sink, std::size_t max_queued_bytes,
               const TransportFactory& make_transport)
    : config_(std::move(config)), self_(self) {
  validate(config_);
  member_rank(config_, self);  // throws for a member id that is not in the config
  layout_ = RegionLayout::compute(config_);
  transport_ = make_transport({config_, self, layout_.region_bytes});
  std::vector<MemberId> ids;
  for (const auto& m : config_.members) ids.push_back(m.id);
  sst_ = std::make_unique<sst::Sst>(*transport_, ids, layout_.sst_offset, layout_.sst_columns);
  predicates_ = std::make_unique<sst::PredicateThread>(
      *transport_, *sst_, sst::PredicateThread::Options{config_.spin, config_.idle_wait});
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    if (std::find(sg.members.begin(), sg.members.end(), self) == sg.members.end()) {
      subgroups_.emplace_back();
      continue;
    }
    subgroups_.push_back(std::make_unique<multicast::SubgroupMulticast>(
        static_cast<std::uint32_t>(s), sg, layout_.subgroups[s], *sst_, *transport_, sink, max_queued_bytes));
    subgroups_.back()->register_predicates(*predicates_);
  }
  // Writes posted while a link was down may be lost: re-push everything we own to that peer,
  // rings before the row, so the counters that announce ring contents land after them.
  predicates_->on_link_event([this](const transport::LinkEvent& event) {
    if (!event.up) return;
    for (auto& sg : subgroups_) {
      if (sg) sg->on_link_up(event.peer);
    }
    sst_->push_all_to(event.peer);
  });
}

Member::~Member() { stop(); }

bool Member::start(std::chrono::milliseconds timeout) {
  if (started_) throw std::logic_error("member already started");
  started_ = true;
  transport_->start(timeout);
  bool all_up = true;
  for (const auto& m : config_.members) {
    if (m.id != self_ && !transport_->link_up(m.id)) all_up = false;
  }
  predicates_->start();
  return all_up;
}

void Member::stop() {
  if (predicates_) predicates_->stop();
  if (transport_) transport_->stop();
}

multicast::SubgroupMulticast& Member::subgroup(std::uint32_t index) {
  if (index >= subgroups_.size()) {
    throw std::invalid_argument("unknown subgroup " + std::to_string(index) + " (the group has " +
                                std::to_string(subgroups_.size()) + ")");
  }
  if (!subgroups_[index]) {
    throw std::invalid_argument("member " + std::to_string(self_) + " is not in subgroup '" +
                                config_.subgroups[index].name + "'");
  }
  return *subgroups_[index];
}

bool Member::send(std::uint32_t index, std::span<const std::byte> payload) {
  const bool accepted = subgroup(index).send(payload);
  if (accepted) predicates_->wake();
  return accepted;
}

multicast::SubgroupMulticast::Queued Member::send_packed(std::uint32_t index, std::span<const std::byte> packed) {
  const auto queued = subgroup(index).send_packed(packed);
  if (queued.messages > 0) predicates_->wake();
  return queued;
}

void Member::on_writable(std::function<void(std::uint32_t)> callback) {
  for (std::size_t s = 0; s < subgroups_.size(); ++s) {
    if (subgroups_[s]) subgroups_[s]->on_writable([callback, s] { callback(static_cast<std::uint32_t>(s)); });
  }
}

Member::Stats Member::stats() const {
  Stats total;
  for (const auto& sg : subgroups_) {
    if (!sg) continue;
    const auto s = sg->stats();
    total.sent += s.sent;
    total.nulls_sent += s.nulls_sent;
    total.delivered += s.delivered;
    total.delivered_bytes += s.delivered_bytes;
    total.delivery_batches += s.delivery_batches;
  }
  const auto p = predicates_->stats();
  total.predicate_passes = p.passes;
  total.sleeps = p.sleeps;
  total.failed = p.failed;
  total.bad_frames = transport_->bad_frames();
  return total;
}

}  // namespace derecho
