#include "member/member.hpp"

#include <algorithm>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

#include "multicast/view_counter.hpp"

namespace derecho {
namespace {

std::uint64_t random_boot() {
  std::random_device rd;
  std::uint64_t boot = 0;
  while (boot == 0) boot = ((std::uint64_t{rd()} << 32) | rd()) & membership::kValueMask;
  return boot;
}

bool contains(const std::vector<MemberId>& ids, MemberId id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

}  // namespace

Member::Member(GroupConfig config, MemberId self, multicast::DeliverySink& sink, Options options)
    : config_(std::move(config)), self_(self), plan_((validate(config_), config_)), clock_(options.physical_clock) {
  member_rank(config_, self);  // throws for a member id that is not in the config
  groups_.resize(config_.subgroups.size());
  before_.resize(config_.subgroups.size());
  layout_ = RegionLayout::compute(config_);
  transport_ = options.make_transport({config_, self, layout_.region_bytes});
  std::vector<MemberId> ids;
  for (const auto& m : config_.members) ids.push_back(m.id);
  sst_ = std::make_unique<sst::Sst>(*transport_, ids, layout_.sst_offset, layout_.sst_columns);
  predicates_ = std::make_unique<sst::PredicateThread>(
      *transport_, *sst_, sst::PredicateThread::Options{config_.spin, config_.idle_wait});
  create_stores(options);
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    if (!contains(sg.members, self)) {
      subgroups_.emplace_back();
      continue;
    }
    multicast::DeliverySink& to = stores_[s] ? static_cast<multicast::DeliverySink&>(*stores_[s]) : sink;
    subgroups_.push_back(std::make_unique<multicast::SubgroupMulticast>(
        static_cast<std::uint32_t>(s), sg, layout_.subgroups[s], *sst_, *transport_, to, options.max_queued_bytes));
  }
  const std::size_t sc = layout_.state_first_column;
  state_ = std::make_unique<StateTransfer>(*sst_, *transport_, StateTransfer::Columns{sc, sc + 1, sc + 2, sc + 3},
                                           StateTransfer::Buffer{layout_.state_buffer_offset, layout_.state_buffer_bytes,
                                                                 layout_.state_area_bytes});
  state_->on_snapshot([this](std::uint32_t subgroup, std::uint64_t vid) {
    if (stores_[subgroup]) {
      state_->provide_snapshot(subgroup, vid, stores_[subgroup]->snapshot(newcomer_rows_[subgroup]));
    } else if (snapshot_callback_) {
      snapshot_callback_(subgroup, vid);
    } else {
      state_->provide_snapshot(subgroup, vid, {});
    }
  });
  state_->on_restore([this](std::uint32_t subgroup, std::uint64_t vid, std::span<const std::byte> state) {
    if (stores_[subgroup]) {
      stores_[subgroup]->restore(state);
    } else if (restore_callback_) {
      restore_callback_(subgroup, vid, state);
    }
  });
  views_ = std::make_unique<membership::ViewManager>(
      *sst_, *transport_, layout_.membership, ids,
      membership::ViewManager::Options{config_.heartbeat_interval, config_.suspect_after,
                                       options.boot ? options.boot : random_boot(), config_.suspect_on_link_down,
                                       config_.initial_members, {sc + 2, sc + 3}},
      view_host(), options.clock);
  // Membership first, so a pass that wedges does not send after it.
  predicates_->add("membership", [this] { return views_->step(); }, [] {});
  predicates_->add("state-transfer", [this] { return state_->step(); }, [] {});
  for (std::size_t s = 0; s < subgroups_.size(); ++s) {
    if (!subgroups_[s]) continue;
    predicates_->add(config_.subgroups[s].name, [this, s] { return subgroups_[s]->step(); }, [] {});
    if (stores_[s]) predicates_->add(config_.subgroups[s].name + "-store", [this, s] { return stores_[s]->step(); }, [] {});
  }
  // Writes posted while a link was down may be lost: re-push everything we own to that peer,
  // rings before the row, so the counters that announce ring contents land after them.
  predicates_->on_link_event([this](const transport::LinkEvent& event) {
    views_->on_link_event(event);
    if (!event.up) return;
    for (auto& sg : subgroups_) {
      if (sg) sg->on_link_up(event.peer);
    }
    state_->on_link_up(event.peer);
    sst_->push_all_to(event.peer);
  });
}

Member::~Member() { stop(); }

void Member::create_stores(const Options& options) {
  stores_.resize(config_.subgroups.size());
  newcomer_rows_.resize(config_.subgroups.size());
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    if (!sg.store || !contains(sg.members, self_)) continue;
    store::VersionedStore::Options so;
    if (sg.store->storage == StorageKind::persistent) {
      if (options.data_dir.empty()) {
        throw std::invalid_argument("subgroups[" + std::to_string(s) + "].store: '" + sg.name +
                                    "' is persistent, so member " + std::to_string(self_) + " needs a data directory");
      }
      so.dir = options.data_dir / sg.name;
    }
    so.flush = options.flush;
    so.background_persist = options.background_persist;
    // Beyond the multicast's own queue, a few rings' worth: enough to ride out a view change.
    so.max_outbox_bytes = std::max<std::size_t>(64u << 10, 4 * std::size_t{sg.ring_bytes});
    store::VersionedStore::Host host;
    host.send = [this, s](std::span<const std::byte> op) {
      const bool accepted = subgroups_[s]->send(op);
      if (accepted) predicates_->wake();
      return accepted;
    };
    host.wake = [this] { predicates_->wake(); };
    stores_[s] = std::make_unique<store::VersionedStore>(
        sg.name, self_, *sg.store, std::move(so), *sst_,
        store::VersionedStore::Columns{layout_.store_persisted_column(s), layout_.store_digest_column(s),
                                       layout_.store_lineage_column(s)},
        clock_,
        std::move(host));
  }
}

std::uint64_t Member::lineage_of(std::size_t subgroup, std::size_t shard) const {
  return config_.subgroups[subgroup].sharding ? shard + 1 : 1;
}

void Member::fail_store_operations(const std::string& why) {
  for (auto& st : stores_) {
    if (st) st->fail_pending(why);
  }
}

store::VersionedStore& Member::store(std::uint32_t index) {
  subgroup(index);  // throws for an unknown subgroup or one this member is not in
  if (!stores_[index]) {
    throw std::invalid_argument("subgroup '" + config_.subgroups[index].name + "' is not a store");
  }
  return *stores_[index];
}

std::vector<std::uint64_t> Member::plan_layout(std::uint64_t members, std::uint64_t carried_on,
                                               std::span<const std::uint64_t> current) const {
  auto words = plan_.plan(members, carried_on, current.first(plan_.words()));
  const auto decoded = plan_.decode(words, members);
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    // As install() groups them: per shard (or the whole subgroup), and who carries its state on.
    std::vector<std::vector<MemberId>> groups, carriers;
    if (sg.sharding) {
      groups = decoded.now[s];
      carriers = decoded.before[s];
    } else {
      groups.emplace_back();
      carriers.emplace_back(sg.members);
      for (MemberId m : sg.members) {
        if (members & (std::uint64_t{1} << member_rank(config_, m))) groups.back().push_back(m);
      }
    }
    const std::size_t slots = restart_slots(s);
    for (std::size_t i = 0; i < slots; ++i) {
      words.push_back(sg.store && i < groups.size() ? restart_source(s, i, groups[i], carriers, members, carried_on) : 0);
    }
  }
  return words;
}

std::size_t Member::restart_slots(std::size_t subgroup) const {
  const auto& sharding = config_.subgroups[subgroup].sharding;
  return sharding ? sharding->shards : 1;
}

std::uint64_t Member::restart_source(std::size_t subgroup, std::size_t shard, const std::vector<MemberId>& group,
                                     const std::vector<std::vector<MemberId>>& carriers, std::uint64_t members,
                                     std::uint64_t carried_on) const {
  // A store group that nobody carries on into the view (a total restart, or every member of a
  // shard came back) starts from the most advanced log of this group's history (lineage) among
  // all the view's members, as their SST rows show it to the leader now, wherever the new layout
  // put that member: the group's members take their state from it (docs/store.md). The word is
  // the source's rank + 1; 0: none.
  for (MemberId m : group) {
    if (shard < carriers.size() && contains(carriers[shard], m) &&
        (carried_on & (std::uint64_t{1} << member_rank(config_, m)))) {
      return 0;
    }
  }
  std::uint64_t best = 0, best_version = 0;
  for (std::size_t rank = 0; rank < config_.members.size(); ++rank) {
    if (!(members & (std::uint64_t{1} << rank))) continue;
    const std::size_t row = sst_->row_of(config_.members[rank].id);
    if (sst_->read(row, layout_.store_lineage_column(subgroup)) != lineage_of(subgroup, shard)) continue;
    const std::uint64_t v = sst_->read(row, layout_.store_persisted_column(subgroup));
    if (v > best_version) {
      best = rank + 1;
      best_version = v;
    }
  }
  return best;
}

membership::ViewManager::Host Member::view_host() {
  membership::ViewManager::Host host;
  host.wedge = [this] {
    for (auto& sg : subgroups_) {
      if (sg) sg->wedge();
    }
    state_->abandon();
  };
  host.ragged_edge = [this](std::span<const MemberId> survivors) { return ragged_edge(survivors); };
  host.finish_view = [this](std::span<const std::uint64_t> edge) {
    for (std::size_t s = 0; s < subgroups_.size(); ++s) {
      if (!subgroups_[s]) continue;
      const auto mine = edge.subspan(layout_.edge_base[s], config_.subgroups[s].senders.size());
      subgroups_[s]->deliver_to_edge(mine);
      subgroups_[s]->requeue_cut_off(mine);
    }
  };
  host.removed = [this](std::span<const std::uint64_t> edge) {
    std::uint64_t dropped = 0;
    for (std::size_t s = 0; s < subgroups_.size(); ++s) {
      if (!subgroups_[s]) continue;
      // Dropped: no ragged edge, or one that cannot say what became of our messages (our shard
      // has no survivor); either way nothing of ours is sent again.
      const std::uint64_t lost =
          edge.empty() ? subgroups_[s]->drop_pending()
                       : subgroups_[s]->requeue_cut_off(edge.subspan(layout_.edge_base[s], config_.subgroups[s].senders.size()));
      dropped += lost;
      if (stores_[s]) stores_[s]->removed(edge.empty() || lost > 0, !edge.empty() && lost > 0);
    }
    return dropped;
  };
  host.install = [this](const membership::View& view, std::span<const std::uint64_t> layout) { install(view, layout); };
  host.plan_layout = [this](std::uint64_t members, std::uint64_t carried_on, std::span<const std::uint64_t> current) {
    return plan_layout(members, carried_on, current);
  };
  host.ready_to_announce = [this] { return state_->received_all(); };
  host.open = [this] {
    for (auto& sg : subgroups_) {
      if (sg) sg->open();
    }
    for (auto& st : stores_) {
      if (st) st->open();
    }
    std::lock_guard lock(view_mutex_);
    open_ = true;
    view_changed_.notify_all();
  };
  host.event = [this](membership::MembershipEvent event, const std::string& why) {
    if (event == membership::MembershipEvent::removed || event == membership::MembershipEvent::left) {
      std::lock_guard lock(view_mutex_);
      installed_.reset();
      open_ = false;
      left_ = event == membership::MembershipEvent::left;
      view_changed_.notify_all();
    }
    if (event == membership::MembershipEvent::left) fail_store_operations("this member left the group");
    if (event_callback_) event_callback_(event, why);
  };
  return host;
}

std::vector<std::uint64_t> Member::ragged_edge(std::span<const MemberId> survivors) const {
  // Per subgroup and sender: the least any surviving member of the sender's shard received.
  std::vector<std::uint64_t> edge(layout_.membership.edge_words, 0);
  const auto current = views_->view();
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    const auto& placement = layout_.subgroups[s];
    for (const auto& group : groups_[s]) {
      for (std::size_t k = 0; k < sg.senders.size(); ++k) {
        if (!contains(group, sg.senders[k])) continue;
        std::uint64_t least = std::numeric_limits<std::uint64_t>::max();
        for (MemberId m : survivors) {
          if (!contains(group, m)) continue;
          const std::uint64_t word = sst_->read(sst_->row_of(m), placement.first_column + 2 + k);
          least = std::min(least, multicast::count_in_view(word, current->vid));
        }
        edge[layout_.edge_base[s] + k] = least == std::numeric_limits<std::uint64_t>::max() ? multicast::kUnknownEdge : least;
      }
    }
  }
  return edge;
}

std::uint64_t Member::bits_of(std::span<const MemberId> ids) const {
  std::uint64_t bits = 0;
  for (MemberId id : ids) bits |= std::uint64_t{1} << member_rank(config_, id);
  return bits;
}

void Member::install(membership::View view, std::span<const std::uint64_t> layout_words) {
  const auto decoded = plan_.decode(layout_words.first(plan_.words()), bits_of(view.members));
  const auto restart = layout_words.subspan(plan_.words());
  restart_words_.assign(restart.begin(), restart.end());
  view.shards = decoded.now;
  view.adequate = decoded.adequate;
  view.inadequate = decoded.inadequate;
  std::vector<MemberId> stayed;
  for (MemberId m : view.members) {
    if (!contains(view.joined, m)) stayed.push_back(m);
  }
  // Each subgroup as groups of members that multicast together: its shards, or all of it.
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto& sg = config_.subgroups[s];
    groups_[s].clear();
    before_[s].clear();
    if (sg.sharding) {
      groups_[s] = decoded.now[s];
      // The last adequate layout may list members that left since; one that came back (a
      // joiner) has none of the shard's state, whatever that layout says.
      for (const auto& shard : decoded.before[s]) {
        std::vector<MemberId> kept;
        for (MemberId m : shard) {
          if (contains(stayed, m)) kept.push_back(m);
        }
        before_[s].push_back(kept);
      }
      continue;
    }
    std::vector<MemberId> now, before;
    for (MemberId m : sg.members) {
      if (view.contains(m)) now.push_back(m);
      if (contains(stayed, m)) before.push_back(m);
    }
    groups_[s].push_back(now);
    before_[s].push_back(before);
  }
  for (std::size_t s = 0; s < subgroups_.size(); ++s) {
    if (!subgroups_[s]) continue;
    const auto& sg = config_.subgroups[s];
    multicast::SubgroupView shape;
    shape.vid = view.vid;
    for (const auto& group : groups_[s]) {
      if (!contains(group, self_)) continue;
      shape.members = group;
      for (std::size_t k = 0; k < sg.senders.size(); ++k) {
        if (contains(group, sg.senders[k])) shape.sender_slots.push_back(k);
      }
    }
    subgroups_[s]->enter_view(shape);
    if (stores_[s]) {
      std::vector<std::size_t> rows;
      for (MemberId m : shape.members) rows.push_back(sst_->row_of(m));
      // Lineage 0: in no shard of this view (a spare, or the view is inadequate).
      std::uint64_t lineage = 0;
      for (std::size_t i = 0; i < groups_[s].size(); ++i) {
        if (contains(groups_[s][i], self_)) lineage = lineage_of(s, i);
      }
      stores_[s]->enter_view(std::move(rows), lineage);
    }
  }
  {
    std::lock_guard lock(view_mutex_);
    installed_ = view;
    open_ = false;
  }
  view_changed_.notify_all();
  if (view_callback_) view_callback_(view);
  // After the view is visible, so an application asked for a snapshot sees the view it is for.
  plan_state_transfer(view.vid);
  if (!view.adequate && event_callback_) event_callback_(membership::MembershipEvent::inadequate, view.inadequate);
}

void Member::plan_state_transfer(std::uint64_t vid) {
  // Per subgroup (per shard), the first member that was in it in the previous view hands the
  // state to every member that is new in it. Everyone computes the same source.
  std::vector<StateTransfer::Send> sends;
  std::vector<StateTransfer::Receive> receives;
  std::vector<std::size_t> start_over;
  std::size_t restart_base = 0;
  for (std::size_t s = 0; s < config_.subgroups.size(); ++s) {
    const auto subgroup = static_cast<std::uint32_t>(s);
    if (s > 0) restart_base += restart_slots(s - 1);
    for (const auto& group : groups_[s]) {
      std::optional<MemberId> source;
      std::vector<MemberId> newcomers;
      const std::size_t i = static_cast<std::size_t>(&group - groups_[s].data());
      for (MemberId m : group) {
        // In this very group (shard) before: a member the layout moved from another shard has
        // none of this one's state.
        const bool was_here = i < before_[s].size() && contains(before_[s][i], m);
        if (!was_here) {
          newcomers.push_back(m);
        } else if (!source) {
          source = m;
        }
      }
      if (!source && stores_[s]) {
        // Nobody carried the group on: a store restarts from the member the leader chose, which
        // may sit in another group of this view.
        const std::uint64_t word = restart_words_.at(restart_base + i);
        if (word != 0) {
          source = config_.members.at(word - 1).id;
          std::erase(newcomers, *source);
        }
      }
      if (!source) {
        // The group starts afresh: there is no state to hand over, and none to keep from
        // another shard's history (once this member's own snapshots are taken, below).
        if (stores_[s] && contains(group, self_)) start_over.push_back(s);
        continue;
      }
      if (*source == self_) {
        newcomer_rows_[s].clear();
        for (MemberId j : newcomers) newcomer_rows_[s].push_back(sst_->row_of(j));
      }
      for (MemberId j : newcomers) {
        if (*source == self_) sends.push_back({j, subgroup});
        if (j == self_) receives.push_back({*source, subgroup});
      }
    }
  }
  state_->begin_view(vid, std::move(sends), std::move(receives));
  for (std::size_t s : start_over) stores_[s]->start_over_if_foreign();
}

bool Member::start(std::chrono::milliseconds timeout) {
  if (started_) throw std::logic_error("member already started");
  started_ = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  transport_->start(timeout);
  predicates_->start();
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return wait_for_members(config_.members.size(), std::max(left, std::chrono::milliseconds{0}));
}

bool Member::wait_for_members(std::size_t members, std::chrono::milliseconds timeout) {
  std::unique_lock lock(view_mutex_);
  return view_changed_.wait_for(lock, timeout, [&] { return open_ && installed_ && installed_->members.size() >= members; });
}

bool Member::leave(std::chrono::milliseconds timeout) {
  request_leave();
  bool left;
  {
    std::unique_lock lock(view_mutex_);
    left = view_changed_.wait_for(lock, timeout, [&] { return left_; });
  }
  stop();
  return left;
}

void Member::stop() {
  if (predicates_) predicates_->stop();
  if (transport_) transport_->stop();
  fail_store_operations("the member stopped");
}

std::optional<membership::View> Member::view() const {
  std::lock_guard lock(view_mutex_);
  return installed_;
}

multicast::SubgroupMulticast& Member::subgroup(std::uint32_t index) const {
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

bool Member::send_object(std::uint32_t index, std::size_t bytes, const std::function<void(std::span<std::byte>)>& fill) {
  const bool accepted = subgroup(index).send_object(bytes, fill);
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
    total.resent += s.resent;
    total.delivered += s.delivered;
    total.delivered_bytes += s.delivered_bytes;
    total.delivery_batches += s.delivery_batches;
  }
  const auto p = predicates_->stats();
  total.predicate_passes = p.passes;
  total.sleeps = p.sleeps;
  total.failed = p.failed;
  total.bad_frames = transport_->bad_frames();
  if (const auto v = view()) total.vid = v->vid;
  return total;
}

Member::SubgroupStats Member::subgroup_stats(std::uint32_t index) const {
  const auto s = subgroup(index).stats();
  SubgroupStats out{s.delivered, s.delivered_bytes, s.queued_messages, s.queued_bytes, s.object_blocks_received,
                    s.object_blocks_sent};
  // A store's operations wait in its own outbox while the multicast's queue is full.
  if (stores_[index]) {
    const auto outbox = stores_[index]->outbox();
    out.queued_messages += outbox.operations;
    out.queued_bytes += outbox.bytes;
  }
  return out;
}

}  // namespace derecho
