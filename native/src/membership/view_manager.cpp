#include "membership/view_manager.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "common/log.hpp"

namespace derecho::membership {
namespace {

constexpr std::uint64_t kTagMask = (std::uint64_t{1} << (64 - kValueBits)) - 1;
constexpr std::uint64_t bit(std::size_t rank) { return std::uint64_t{1} << rank; }
// The suspected column says in which view and which suspicion round its bits hold.
constexpr std::uint64_t suspicion_tag(std::uint64_t vid, std::uint64_t round) { return ((vid & 0xfff) << 12) | (round & 0xfff); }
constexpr std::uint64_t tag_vid_part(std::uint64_t tag) { return tag >> 12; }
constexpr std::uint64_t tag_round_part(std::uint64_t tag) { return tag & 0xfff; }

}  // namespace

ViewManager::ViewManager(sst::Sst& sst, transport::Transport& transport, const MembershipColumns& columns,
                         std::vector<MemberId> universe, Options options, Host host, Clock clock)
    : sst_(sst),
      transport_(transport),
      cols_(columns),
      universe_(std::move(universe)),
      me_(rank_of(transport.self())),
      options_(options),
      host_(std::move(host)),
      clock_(std::move(clock)) {
  if (universe_.size() > kMaxUniverse) {
    throw std::invalid_argument("a group has at most " + std::to_string(kMaxUniverse) + " configured members");
  }
  if (options_.boot == 0 || options_.boot > kValueMask) throw std::invalid_argument("boot nonce out of range");
  seen_beat_.assign(universe_.size(), 0);
  lost_because_.assign(universe_.size(), {});
  seen_progress_.assign(universe_.size(), 0);
  progress_changed_.assign(universe_.size(), {});
  beat_changed_.assign(universe_.size(), {});
  write(cols_.boot(), options_.boot);
  write(cols_.join(), options_.boot);
  started_ = clock_();
}

std::size_t ViewManager::rank_of(MemberId id) const {
  const auto it = std::find(universe_.begin(), universe_.end(), id);
  if (it == universe_.end()) throw std::out_of_range("member " + std::to_string(id) + " is not configured");
  return static_cast<std::size_t>(it - universe_.begin());
}

std::vector<MemberId> ViewManager::ids_of(std::uint64_t bits) const {
  std::vector<MemberId> ids;
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (bits & bit(r)) ids.push_back(universe_[r]);
  }
  return ids;
}

std::optional<std::size_t> ViewManager::leader_rank() const {
  // Members that were in the previous view lead before joiners, who may still be waiting for
  // their state.
  const std::uint64_t candidates = view_bits() & ~suspected_;
  if (candidates == 0) return std::nullopt;
  const std::uint64_t seniors = candidates & seniors_;
  return static_cast<std::size_t>(std::countr_zero(seniors ? seniors : candidates));
}

std::uint64_t ViewManager::survivors() const {
  std::uint64_t excluded = suspected_ & ~bit(me_);
  const std::uint64_t members = view_bits();
  const std::uint64_t tag = suspicion_tag(view_->vid, round_);
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (!(members & bit(r)) || (excluded & bit(r)) || r == me_) continue;
    const std::uint64_t theirs = read(r, cols_.suspected());
    if (tag_of(theirs) == tag) excluded |= value_of(theirs) & members & ~bit(me_);
  }
  return members & ~excluded;
}

void ViewManager::on_link_event(const transport::LinkEvent& event) {
  reach_changed_ = true;
  if (!options_.suspect_on_link_down) return;
  const std::size_t r = rank_of(event.peer);
  if (event.up) {
    links_lost_ &= ~bit(r);
    return;
  }
  // Remembered, not only acted on: a link lost while a change is decided still counts in the
  // view that change installs.
  links_lost_ |= bit(r);
  lost_because_[r] = event.reason;
}

bool ViewManager::step() {
  const auto now = clock_();
  heartbeat(now);
  if (phase_ == Phase::left) return false;
  if (phase_ == Phase::joining) return step_joining(now);
  bool fired = watch_members(now);
  // Leaving is suspecting ourselves: the suspicion spreads and the others decide a view
  // without us, which we learn like any removal.
  if (leave_requested_.load() && !(suspected_ & bit(me_))) {
    suspect(me_, "leaving");
    fired = true;
  }
  if (learn_commit()) return true;
  if (check_removed()) return true;
  fired |= admit_joiners(now);
  if (!announced_ && !wedged_ && host_.ready_to_announce()) {
    write(cols_.vid(), view_->vid);
    announced_ = true;
    fired = true;
  }
  if (!wedged_) {
    if (suspected_ & view_bits()) {
      std::string ids;
      for (MemberId id : ids_of(suspected_ & view_bits())) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      wedge("suspected [" + ids + "]");
    } else if (joiners_) {
      wedge("admitting " + std::to_string(std::popcount(joiners_)) + " joiner(s)");
    } else {
      for (MemberId id : view_->members) {
        if (read(rank_of(id), cols_.wedged()) == view_->vid) {
          wedge("member " + std::to_string(id) + " wedged");
          break;
        }
      }
    }
    fired |= wedged_;
  }
  if (!wedged_) return open_when_installed() || fired;
  // Wedged without a decision for suspect_after: suspicions taken when faults were under way
  // may no longer hold (a healed partition, a link back). Start over from what we see now.
  // Rounds are 12 bits in the column; past the last one suspicions just stay as they are.
  if (now - round_started_ > options_.suspect_after && round_ < 0xfff) {
    start_round(round_ + 1, now);
    fired = true;
  }
  const auto leader = leader_rank();
  if (!leader) return fired;
  return (*leader == me_ ? lead(now) : follow()) || fired;
}

void ViewManager::start_round(std::uint64_t round, std::chrono::steady_clock::time_point now) {
  round_ = round;
  round_started_ = now;
  suspected_ = 0;
  write(cols_.suspected(), tagged(suspicion_tag(view_->vid, round_), 0));
  log(LogLevel::info, "membership",
      "member " + std::to_string(transport_.self()) + " starts suspicion round " + std::to_string(round_) + " in view " +
          std::to_string(view_->vid));
  watch_members(now);
}

bool ViewManager::heartbeat(std::chrono::steady_clock::time_point now) {
  if (reach_changed_) {
    reach_changed_ = false;
    update_reach();
  }
  if (now - last_beat_ < options_.heartbeat_interval) return false;
  last_beat_ = now;
  write(0, ++beats_);
  update_reach();
  return false;
}

void ViewManager::update_reach() {
  std::uint64_t reach = bit(me_);
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (r != me_ && transport_.link_up(universe_[r])) reach |= bit(r);
  }
  if (reach != reach_) {
    reach_ = reach;
    write(cols_.reach(), reach);
  }
}

std::uint64_t ViewManager::progress_of(std::size_t rank) const {
  std::uint64_t signature = 0;
  for (std::size_t col : options_.progress_columns) signature = signature * 0x100000001b3ull ^ read(rank, col);
  return signature;
}

bool ViewManager::watch_members(std::chrono::steady_clock::time_point now) {
  const std::uint64_t before = suspected_;
  for (MemberId id : view_->members) {
    const std::size_t r = rank_of(id);
    if (r == me_) continue;
    const std::uint64_t beat = read(r, 0);
    if (beat != seen_beat_[r]) {
      seen_beat_[r] = beat;
      beat_changed_[r] = now;
    } else if (now - beat_changed_[r] > options_.suspect_after) {
      suspect(r, "no heartbeat for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - beat_changed_[r]).count()) +
                     " ms");
    }
    if (links_lost_ & bit(r)) suspect(r, "link down (" + lost_because_[r] + ")");
    if (read(r, cols_.vid()) < view_->vid) {
      // Not announced yet. One that has not even installed the view (its suspected column
      // still carries an older view) is given up after suspect_after; one that installed it
      // and waits for its state, only when the transfer stands still; one that installed it
      // and takes part in a change of it, not at all on this ground.
      const bool installed = tag_vid_part(tag_of(read(r, cols_.suspected()))) == (view_->vid & 0xfff);
      const std::uint64_t progress = progress_of(r);
      if (progress != seen_progress_[r]) {
        seen_progress_[r] = progress;
        progress_changed_[r] = now;
      }
      if (!installed && now - installed_at_ > options_.suspect_after) {
        suspect(r, "did not install view " + std::to_string(view_->vid));
      } else if (installed && !wedged_ && now - std::max(installed_at_, progress_changed_[r]) > options_.suspect_after) {
        suspect(r, "did not announce view " + std::to_string(view_->vid) + " (its state transfer stalled)");
      }
    }
    const std::uint64_t boot = read(r, cols_.boot());
    if (boot != 0 && boot != view_boots_[r]) suspect(r, "restarted (new incarnation)");
    // Suspicion spreads, unless we know better: a member whose heartbeat we see moving over a
    // link that works is alive, whatever a peer with a broken link to it says (one broken link
    // must not cost both its ends). A member's suspicion of itself (it leaves) always spreads.
    const std::uint64_t theirs = read(r, cols_.suspected());
    if (tag_vid_part(tag_of(theirs)) != (view_->vid & 0xfff)) continue;
    if (tag_round_part(tag_of(theirs)) > round_ && wedged_) {
      start_round(tag_round_part(tag_of(theirs)), now);  // a later round: join it with our own evidence
      return true;
    }
    if (tag_round_part(tag_of(theirs)) == round_) {
      const std::uint64_t more = value_of(theirs) & view_bits() & ~suspected_ & ~bit(me_);
      for (std::size_t s = 0; s < universe_.size(); ++s) {
        if (!(more & bit(s))) continue;
        const bool alive_to_us =
            !(links_lost_ & bit(s)) && now - beat_changed_[s] < options_.suspect_after / 2;
        if (s == r || !alive_to_us) suspect(s, "suspected by member " + std::to_string(id));
      }
    }
  }
  return suspected_ != before;
}

void ViewManager::suspect(std::size_t rank, const std::string& why) {
  if ((suspected_ & bit(rank)) || !(view_bits() & bit(rank))) return;
  suspected_ |= bit(rank);
  write(cols_.suspected(), tagged(suspicion_tag(view_->vid, round_), suspected_));
  log(LogLevel::info, "membership",
      "member " + std::to_string(transport_.self()) + " suspects " + std::to_string(universe_[rank]) + " in view " +
          std::to_string(view_->vid) + ": " + why);
}

void ViewManager::wedge(const std::string& why) {
  if (wedged_) return;
  wedged_ = true;
  round_started_ = clock_();
  host_.wedge();
  write(cols_.wedged(), view_->vid);
  if (host_.event) host_.event(MembershipEvent::wedged, why);
}

bool ViewManager::check_removed() {
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (r == me_) continue;
    const std::uint64_t vid = read(r, cols_.vid());
    if (vid <= view_->vid) continue;
    const std::uint64_t mask = read(r, cols_.view_mask());
    if (!(mask & bit(me_)) || vid > view_->vid + 1) {
      floor_ = std::max(floor_, vid);
      const std::uint64_t dropped = host_.removed({});
      rejoin("member " + std::to_string(universe_[r]) + " installed view " + std::to_string(vid) +
             " without us; the decision is gone, so " + std::to_string(dropped) + " messages whose fate is unknown were dropped");
      return true;
    }
  }
  return false;
}

bool ViewManager::admit_joiners(std::chrono::steady_clock::time_point now) {
  if (leader_rank() != me_) return false;
  std::uint64_t joiners = 0;
  const std::uint64_t members = view_bits();
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (members & bit(r)) continue;
    const std::uint64_t join = read(r, cols_.join());
    const std::uint64_t beat = read(r, 0);
    if (beat != seen_beat_[r]) {
      seen_beat_[r] = beat;
      beat_changed_[r] = now;
    }
    if (join == 0 || join != read(r, cols_.boot()) || !transport_.link_up(universe_[r])) continue;
    // A joiner that crashed (or left) leaves its request in its row: only one whose heartbeat
    // moved since this view was installed, and lately, is admitted.
    if (beat == 0 || beat_changed_[r] < installed_at_ || now - beat_changed_[r] > options_.suspect_after / 2) continue;
    // Only a joiner every member can reach, and that reaches every member: one some members
    // cannot talk to would be suspected at once and admitted again, forever.
    const std::uint64_t keep = members & ~suspected_;
    bool reachable = (read(r, cols_.reach()) & keep) == keep;
    for (std::size_t m = 0; m < universe_.size() && reachable; ++m) {
      if ((keep & bit(m)) && !(read(m, cols_.reach()) & bit(r))) reachable = false;
    }
    if (reachable) joiners |= bit(r);
  }
  const bool more = (joiners & ~joiners_) != 0;
  joiners_ = joiners;
  return more;
}

std::optional<ViewManager::Proposal> ViewManager::read_slot(std::size_t rank, std::uint64_t next_vid,
                                                            std::uint64_t ballot) const {
  const std::size_t base = cols_.slot(next_vid);
  const std::uint64_t head = read(rank, base + MembershipColumns::kNextVid);
  const std::uint64_t tag = tag_of(head);
  if (value_of(head) != next_vid || (tag & kMaxBallot) == 0 || (tag >> 20) != (next_vid & 0xf) ||
      (ballot != 0 && tag != slot_tag(next_vid, ballot))) {
    return std::nullopt;
  }
  Proposal p;
  p.ballot = tag & kMaxBallot;
  std::vector<std::uint64_t> words(cols_.slot_words());
  for (std::size_t i = 1; i < words.size(); ++i) {
    words[i] = read(rank, base + i);
    if (tag_of(words[i]) != tag) return std::nullopt;  // torn by a rewrite in flight
    words[i] = value_of(words[i]);
  }
  p.members = words[MembershipColumns::kMembers];
  p.previous = words[MembershipColumns::kPrevious];
  p.boots.assign(words.begin() + MembershipColumns::kBoots, words.begin() + static_cast<std::ptrdiff_t>(cols_.edge_offset()));
  p.edge.assign(words.begin() + static_cast<std::ptrdiff_t>(cols_.edge_offset()),
                words.begin() + static_cast<std::ptrdiff_t>(cols_.layout_offset()));
  p.layout.assign(words.begin() + static_cast<std::ptrdiff_t>(cols_.layout_offset()), words.end());
  return p;
}

void ViewManager::write_slot(std::uint64_t next_vid, const Proposal& p) {
  const std::size_t base = cols_.slot(next_vid);
  const std::uint64_t tag = slot_tag(next_vid, p.ballot);
  write(base + MembershipColumns::kNextVid, tagged(tag, next_vid));
  write(base + MembershipColumns::kMembers, tagged(tag, p.members));
  write(base + MembershipColumns::kPrevious, tagged(tag, p.previous));
  for (std::size_t r = 0; r < universe_.size(); ++r) write(base + MembershipColumns::kBoots + r, tagged(tag, p.boots[r]));
  for (std::size_t e = 0; e < cols_.edge_words; ++e) write(base + cols_.edge_offset() + e, tagged(tag, p.edge[e]));
  for (std::size_t l = 0; l < cols_.layout_words; ++l) write(base + cols_.layout_offset() + l, tagged(tag, p.layout[l]));
}

bool ViewManager::learn_commit() {
  const std::uint64_t next = view_->vid + 1;
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    const std::uint64_t ref = read(r, cols_.commit());
    if (ref_vid(ref) != next) continue;
    const auto p = read_slot(r, next, ref_ballot(ref));
    if (!p) continue;
    if (!wedged_) wedge("view " + std::to_string(next) + " decided");
    // Kept in our row too, so members that missed the leader's commit can learn it from us.
    if (r != me_) write_slot(next, *p);
    write(cols_.commit(), ref);
    if (p->members & bit(me_)) {
      host_.finish_view(p->edge);
      install(next, *p);
    } else {
      // A removed member may lack messages below the edge; it delivers nothing more in this
      // view, and sends its own messages beyond the edge again after it rejoins.
      const std::uint64_t dropped = host_.removed(p->edge);
      floor_ = std::max(floor_, next);
      rejoin("removed from view " + std::to_string(next) +
             (dropped ? "; " + std::to_string(dropped) + " messages whose fate is unknown were dropped" : ""));
    }
    return true;
  }
  return false;
}

bool ViewManager::follow() {
  // A joiner still waiting for its state takes part too (it has nothing of this view to
  // lose); the next view counts it as a joiner again and hands it the state then.
  const std::uint64_t next = view_->vid + 1;
  bool fired = false;
  // Promise the highest ballot any member of the view prepared (Paxos allows any; answering
  // only the member we take for the leader deadlocks when two members disagree on who it is).
  std::uint64_t best = 0;
  for (MemberId id : view_->members) {
    const std::uint64_t prepare = read(rank_of(id), cols_.prepare());
    if (ref_vid(prepare) == next && ref_ballot(prepare) > ref_ballot(best)) best = prepare;
  }
  const std::uint64_t promise = read(me_, cols_.promise());
  if (best != 0 && (ref_vid(promise) != next || ref_ballot(promise) < ref_ballot(best))) {
    write(cols_.promise(), best);
    fired = true;
  }
  // Accept the proposal of the ballot we promised; a ballot names its leader's rank.
  const std::uint64_t promised = read(me_, cols_.promise());
  if (ref_vid(promised) != next) return fired;
  const std::uint64_t ballot = ref_ballot(promised);
  const std::size_t proposer = (ballot & 63) - 1;
  if (proposer >= universe_.size() || read(proposer, cols_.proposed()) != promised || read_slot(me_, next, ballot)) {
    return fired;
  }
  if (const auto p = read_slot(proposer, next, ballot)) {
    write_slot(next, *p);
    fired = true;
  }
  return fired;
}

bool ViewManager::lead(std::chrono::steady_clock::time_point now) {
  // A leader that has not announced the view (it waits for a state) leads all the same: a view
  // not every member announced never opened, so nothing was sent in it.
  const std::uint64_t next = view_->vid + 1;
  const std::uint64_t survivors = this->survivors();
  // Members that are leaving (they suspect themselves and are alive to us) are not in the next
  // view but still vote: otherwise one of two could never leave.
  std::uint64_t leavers = 0;
  const std::uint64_t tag = suspicion_tag(view_->vid, round_);
  for (MemberId id : view_->members) {
    const std::size_t r = rank_of(id);
    const std::uint64_t theirs = read(r, cols_.suspected());
    if (r != me_ && !(survivors & bit(r)) && tag_of(theirs) == tag && (value_of(theirs) & bit(r)) &&
        !(links_lost_ & bit(r)) && now - beat_changed_[r] < options_.suspect_after / 2) {
      leavers |= bit(r);
    }
  }
  const std::uint64_t quorum = survivors | leavers;
  const auto survivor_ranks = [&] {
    std::vector<std::size_t> ranks;
    for (std::size_t r = 0; r < universe_.size(); ++r) {
      if (quorum & bit(r)) ranks.push_back(r);
    }
    return ranks;
  }();
  bool outbid = false;
  for (std::size_t r : survivor_ranks) {
    const std::uint64_t promise = read(r, cols_.promise());
    if (ref_vid(promise) != next || ref_ballot(promise) <= ballot_) continue;
    // A member that comes before us in the leader order (members of the previous view first,
    // then by rank), alive to us, leads: we follow it rather than duel.
    const std::size_t rival = (ref_ballot(promise) & 63) - 1;
    const bool rival_alive = rival < universe_.size() && !(suspected_ & bit(rival)) && !(links_lost_ & bit(rival)) &&
                             now - beat_changed_[rival] < options_.suspect_after / 2;
    const auto order = [&](std::size_t r) { return std::pair{(seniors_ & bit(r)) ? 0 : 1, r}; };
    if (rival_alive && order(rival) < order(me_)) return follow();
    outbid = true;
  }
  // Outbid: bid again, but not faster than the heartbeat, so two members that each take
  // itself for the leader (a broken link between them) cannot burn the ballots; suspicion
  // rounds settle who leads.
  if (outbid && now - last_prepare_ < options_.heartbeat_interval) return false;
  if (ballot_ == 0 || quorum != ballot_survivors_ || outbid) {
    // A new ballot above every one seen for this transition.
    std::uint64_t round = 0;
    for (std::size_t r = 0; r < universe_.size(); ++r) {
      for (std::size_t col : {cols_.promise(), cols_.prepare(), cols_.proposed()}) {
        const std::uint64_t ref = read(r, col);
        if (ref_vid(ref) == next) round = std::max(round, ref_ballot(ref) >> 6);
      }
      const std::uint64_t head = read(r, cols_.slot(next));
      if (value_of(head) == next) round = std::max(round, (tag_of(head) & kMaxBallot) >> 6);
    }
    if ((((round + 1) << 6) | (me_ + 1)) > kMaxBallot) {
      log(LogLevel::error, "membership", "view change to " + std::to_string(next) + ": ballots exhausted, staying wedged");
      return false;
    }
    ballot_ = ((round + 1) << 6) | (me_ + 1);
    last_prepare_ = now;
    ballot_survivors_ = quorum;
    proposed_ = false;
    write(cols_.promise(), ballot_ref(next, ballot_));
    write(cols_.prepare(), ballot_ref(next, ballot_));
    return true;
  }
  const std::uint64_t ref = ballot_ref(next, ballot_);
  if (!proposed_) {
    for (std::size_t r : survivor_ranks) {
      if (read(r, cols_.promise()) != ref || read(r, cols_.wedged()) != view_->vid) return false;
    }
    // No view without a majority of the previous one: a minority stays wedged.
    if (2 * survivor_ranks.size() <= view_->members.size()) {
      if (!minority_reported_ && host_.event) {
        host_.event(MembershipEvent::minority, std::to_string(survivor_ranks.size()) + " of " +
                                                    std::to_string(view_->members.size()) +
                                                    " members reachable: no majority, staying wedged");
      }
      minority_reported_ = true;
      return false;
    }
    // A proposal some survivor accepted under an earlier ballot may have been decided: it wins.
    // A slot of this transition that is not whole is being rewritten as we read it (pushes land
    // in ascending order, the head first): that is not "accepted nothing", so we wait.
    std::optional<Proposal> value;
    for (std::size_t r : survivor_ranks) {
      auto p = read_slot(r, next, 0);
      if (!p) {
        const std::uint64_t head = read(r, cols_.slot(next));
        if (value_of(head) == next && (tag_of(head) >> 20) == (next & 0xf)) return false;
      }
      if (read(r, cols_.promise()) != ref) return false;  // it moved on while we read its slot
      if (p && (!value || p->ballot > value->ballot)) value = std::move(p);
    }
    if (!value) {
      value.emplace();
      value->members = survivors | joiners_;
      // Members that announced this view have its state; one that never did (a joiner still
      // waiting for it) joins again in the next view.
      value->previous = 0;
      for (std::size_t r = 0; r < universe_.size(); ++r) {
        if ((view_bits() & bit(r)) && read(r, cols_.vid()) == view_->vid) value->previous |= bit(r);
      }
      value->boots.assign(universe_.size(), 0);
      for (std::size_t r = 0; r < universe_.size(); ++r) {
        if (survivors & bit(r)) value->boots[r] = view_boots_[r];
        else if (joiners_ & bit(r)) value->boots[r] = read(r, cols_.boot());
      }
      value->edge = host_.ragged_edge(ids_of(survivors));
      value->layout = host_.plan_layout(value->members, value->previous, layout_);
    }
    value->ballot = ballot_;
    write_slot(next, *value);
    write(cols_.proposed(), ref);
    proposed_ = true;
    return true;
  }
  for (std::size_t r : survivor_ranks) {
    const std::uint64_t head = read(r, cols_.slot(next));
    if (value_of(head) != next || tag_of(head) != slot_tag(next, ballot_)) return false;
  }
  write(cols_.commit(), ref);
  return true;
}

void ViewManager::install(std::uint64_t vid, const Proposal& decided) {
  const std::uint64_t members = decided.members;
  View next;
  next.vid = vid;
  next.members = ids_of(members);
  next.joined = ids_of(members & ~decided.previous);
  next.departed = ids_of(decided.previous & ~members);
  view_ = next;
  view_bits_ = members;
  view_boots_ = decided.boots;
  layout_ = decided.layout;
  phase_ = Phase::member;
  floor_ = std::max(floor_, vid);
  seniors_ = members & decided.previous;
  // A joiner is a new incarnation: a link lost to its predecessor says nothing about it (its
  // own silence is caught by the heartbeat and the install timeout).
  links_lost_ &= ~(members & ~decided.previous);
  write(cols_.join(), 0);
  write(cols_.view_mask(), members);
  write(cols_.suspected(), tagged(suspicion_tag(vid, 0), 0));
  round_ = 0;
  announced_ = false;
  suspected_ = 0;
  wedged_ = false;
  opened_ = false;
  joiners_ = 0;
  ballot_ = 0;
  proposed_ = false;
  minority_reported_ = false;
  installed_at_ = clock_();
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    // Members that carry on get a fresh start; a joiner whose heartbeat we watched keeps that
    // history, so one admitted while already dead is suspected at once rather than admitted
    // over and over. One we never watched starts now.
    if (!(members & bit(r))) continue;
    if (!(decided.previous & bit(r)) && beat_changed_[r] != std::chrono::steady_clock::time_point{}) continue;
    seen_beat_[r] = read(r, 0);
    beat_changed_[r] = installed_at_;
    seen_progress_[r] = progress_of(r);
    progress_changed_[r] = installed_at_;
  }
  round_started_ = installed_at_;
  log(LogLevel::info, "membership", "member " + std::to_string(transport_.self()) + " installed " + describe(next));
  host_.install(next, layout_);
}

bool ViewManager::open_when_installed() {
  if (opened_) return false;
  for (MemberId id : view_->members) {
    const std::size_t r = rank_of(id);
    if (read(r, cols_.vid()) != view_->vid) return false;
  }
  opened_ = true;
  host_.open();
  return true;
}

void ViewManager::rejoin(const std::string& why) {
  host_.wedge();
  view_.reset();
  view_bits_ = 0;
  if (leave_requested_.load()) {
    phase_ = Phase::left;
    write(cols_.join(), 0);
    log(LogLevel::info, "membership", "member " + std::to_string(transport_.self()) + " left the group: " + why);
    if (host_.event) host_.event(MembershipEvent::left, why);
    return;
  }
  phase_ = Phase::joining;
  suspected_ = 0;
  wedged_ = false;
  joiners_ = 0;
  write(cols_.join(), options_.boot);
  log(LogLevel::warn, "membership", "member " + std::to_string(transport_.self()) + " rejoins: " + why);
  if (host_.event) host_.event(MembershipEvent::removed, why);
}

bool ViewManager::step_joining(std::chrono::steady_clock::time_point now) {
  if (leave_requested_.load()) {
    rejoin("asked to leave before being admitted");
    return true;
  }
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    const std::uint64_t ref = read(r, cols_.commit());
    const std::uint64_t next = ref_vid(ref);
    if (next <= floor_) continue;
    const auto p = read_slot(r, next, ref_ballot(ref));
    if (!p || !(p->members & bit(me_)) || p->boots[me_] != options_.boot) continue;
    if (r != me_) write_slot(next, *p);
    write(cols_.commit(), ref);
    install(next, *p);
    return true;
  }
  return me_ == 0 && floor_ == 0 && try_bootstrap(now);
}

bool ViewManager::try_bootstrap(std::chrono::steady_clock::time_point now) {
  // Without persisted views there is no telling a group that never existed from one we cannot
  // reach; demanding every initial member (reachable, with no view) keeps a few restarted
  // members from founding a second group beside a running one (docs/membership.md).
  std::uint64_t present = bit(me_);
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (r == me_ || !transport_.link_up(universe_[r])) continue;
    const std::uint64_t boot = read(r, cols_.boot());
    if (boot == 0) continue;
    if (read(r, cols_.vid()) != 0 || read(r, cols_.commit()) != 0) return false;  // a group exists: join it
    if (read(r, cols_.join()) == boot) present |= bit(r);
  }
  const std::size_t initial = options_.initial_members ? options_.initial_members : universe_.size();
  for (std::size_t r = 0; r < initial; ++r) {
    if (!(present & bit(r))) return false;
  }
  // With fewer initial members than configured ones, a restarted first member could see its
  // initial peers before the rows of a running group reach it: it waits suspect_after for
  // links to come up, and for the row of every peer it is linked to.
  if (static_cast<std::size_t>(std::popcount(present)) < universe_.size()) {
    if (now - started_ < options_.suspect_after) return false;
    for (std::size_t r = 0; r < universe_.size(); ++r) {
      if (r != me_ && transport_.link_up(universe_[r]) && read(r, cols_.boot()) == 0) return false;
    }
  }
  Proposal first;
  first.ballot = (1 << 6) | (me_ + 1);
  first.members = present;
  first.boots.assign(universe_.size(), 0);
  for (std::size_t r = 0; r < universe_.size(); ++r) {
    if (present & bit(r)) first.boots[r] = r == me_ ? options_.boot : read(r, cols_.boot());
  }
  first.edge.assign(cols_.edge_words, 0);
  first.layout = host_.plan_layout(first.members, 0, std::vector<std::uint64_t>(cols_.layout_words, 0));
  write_slot(1, first);
  write(cols_.commit(), ballot_ref(1, first.ballot));
  install(1, first);
  return true;
}

}  // namespace derecho::membership
