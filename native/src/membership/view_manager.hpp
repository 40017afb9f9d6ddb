#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/types.hpp"
#include "membership/membership_columns.hpp"
#include "membership/view.hpp"
#include "sst/sst.hpp"
#include "transport/transport.hpp"

namespace derecho::membership {

// Virtual synchrony over the SST (docs/membership.md): heartbeats and broken links raise
// suspicion, suspicion spreads through the rows, everyone wedges, the leader (first unsuspected
// member) runs a ballot-numbered decision on the next view and its ragged edge that needs a
// majority of the current view, members deliver exactly up to the edge and install the view.
// Joins go through the leader; the first configured member bootstraps view 1.
//
// Runs on the predicate thread (or the simulator's), one step() per pass. Time comes from the
// clock it is given so the simulator can drive it.
class ViewManager {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  struct Options {
    std::chrono::milliseconds heartbeat_interval{50};
    std::chrono::milliseconds suspect_after{1000};
    std::uint64_t boot = 0;  // this incarnation's nonce, nonzero, below 2^40
    bool suspect_on_link_down = true;
    // The first `initial_members` configured members must all be there for the first member to
    // create the group (0: all configured members).
    std::size_t initial_members = 0;
    // Columns a member waiting for its state changes as the transfer progresses; it is given up
    // only once they stand still for suspect_after.
    std::vector<std::size_t> progress_columns;
  };

  // What the member around it does at each point of the protocol.
  struct Host {
    std::function<void()> wedge;  // stop sending, receiving and delivering; received counts final
    std::function<std::vector<std::uint64_t>(std::span<const MemberId> survivors)> ragged_edge;
    std::function<void(std::span<const std::uint64_t> edge)> finish_view;  // deliver to the edge, requeue the rest
    // We were removed. With the decided edge: requeue our messages beyond it; without (the
    // decision is no longer readable): drop what we sent or queued, returning how many.
    std::function<std::uint64_t(std::span<const std::uint64_t> edge)> removed;
    // The shard layout of a proposed view with these members (bit per configured rank), of
    // which `carried_on` were in the current view with its state, given the current view's
    // layout (all zero before the first view); MembershipColumns::layout_words long.
    std::function<std::vector<std::uint64_t>(std::uint64_t members, std::uint64_t carried_on,
                                             std::span<const std::uint64_t> current)>
        plan_layout;
    // Enter the new view with the decided layout, closed for sending.
    std::function<void(const View&, std::span<const std::uint64_t> layout)> install;
    std::function<void()> open;                // every member installed it: sending may start
    // Whether this member may announce the installed view (a joiner: once its state arrived).
    std::function<bool()> ready_to_announce;
    std::function<void(MembershipEvent, const std::string& why)> event;
  };

  ViewManager(sst::Sst& sst, transport::Transport& transport, const MembershipColumns& columns,
              std::vector<MemberId> universe, Options options, Host host, Clock clock);

  bool step();
  void on_link_event(const transport::LinkEvent& event);
  // Any thread: leave the group gracefully; MembershipEvent::left once a view without us is
  // decided. Messages not delivered by then are dropped.
  void leave() { leave_requested_.store(true); }

  std::optional<View> view() const { return view_; }
  bool wedged() const { return wedged_; }

 private:
  enum class Phase { joining, member, left };
  // A slot of row `rank` for next_vid, if it holds one whole proposal of `ballot` (any ballot
  // when 0): members, boots and edge, untagged.
  struct Proposal {
    std::uint64_t ballot = 0;
    std::uint64_t members = 0;
    std::uint64_t previous = 0;
    std::vector<std::uint64_t> boots;
    std::vector<std::uint64_t> edge;
    std::vector<std::uint64_t> layout;
  };

  bool heartbeat(std::chrono::steady_clock::time_point now);
  bool step_joining(std::chrono::steady_clock::time_point now);
  bool try_bootstrap(std::chrono::steady_clock::time_point now);
  bool watch_members(std::chrono::steady_clock::time_point now);
  bool check_removed();
  bool admit_joiners(std::chrono::steady_clock::time_point now);
  bool learn_commit();
  bool follow();
  bool lead(std::chrono::steady_clock::time_point now);
  void start_round(std::uint64_t round, std::chrono::steady_clock::time_point now);
  bool open_when_installed();

  void suspect(std::size_t rank, const std::string& why);
  void wedge(const std::string& why);
  void install(std::uint64_t vid, const Proposal& decided);
  void rejoin(const std::string& why);

  std::uint64_t read(std::size_t rank, std::size_t column) const { return sst_.read(rank, column); }
  void write(std::size_t column, std::uint64_t value) { sst_.write_own(column, value); }
  std::optional<Proposal> read_slot(std::size_t rank, std::uint64_t next_vid, std::uint64_t ballot) const;
  void write_slot(std::uint64_t next_vid, const Proposal& p);
  std::optional<std::size_t> leader_rank() const;
  // The members the leader proposes to keep: not suspected by it, nor by any member it keeps,
  // taken in rank order so that of two members that suspect each other the later one goes.
  std::uint64_t survivors() const;
  std::uint64_t progress_of(std::size_t rank) const;
  // The installed view's members, a bit per configured rank; read on every pass.
  std::uint64_t view_bits() const { return view_bits_; }
  std::size_t rank_of(MemberId id) const;
  std::vector<MemberId> ids_of(std::uint64_t bits) const;

  sst::Sst& sst_;
  transport::Transport& transport_;
  MembershipColumns cols_;
  std::vector<MemberId> universe_;
  std::size_t me_;
  Options options_;
  Host host_;
  Clock clock_;

  Phase phase_ = Phase::joining;
  std::optional<View> view_;
  std::uint64_t view_bits_ = 0;
  std::vector<std::uint64_t> view_boots_;
  std::chrono::steady_clock::time_point started_;
  std::vector<std::uint64_t> layout_;  // the installed view's decided layout
  std::chrono::steady_clock::time_point last_beat_{};
  std::uint64_t beats_ = 0;
  std::vector<std::uint64_t> seen_beat_;
  std::vector<std::chrono::steady_clock::time_point> beat_changed_;
  std::vector<std::uint64_t> seen_progress_;
  std::vector<std::chrono::steady_clock::time_point> progress_changed_;
  std::uint64_t reach_ = 0;  // what our reach column says
  bool reach_changed_ = false;
  void update_reach();
  std::chrono::steady_clock::time_point installed_at_{};
  std::uint64_t suspected_ = 0;
  // Suspicion rounds: a change that makes no progress for suspect_after starts a new round
  // with suspicions from current evidence only (docs/membership.md).
  std::uint64_t round_ = 0;
  std::chrono::steady_clock::time_point round_started_{};
  std::chrono::steady_clock::time_point last_prepare_{};
  std::uint64_t links_lost_ = 0;  // peers whose link went down and has not come back
  std::vector<std::string> lost_because_;
  bool wedged_ = false;
  bool opened_ = false;
  bool announced_ = false;        // our vid column shows the installed view
  std::uint64_t seniors_ = 0;     // view members that were in the previous view too
  std::uint64_t joiners_ = 0;
  // The highest view id known to be installed somewhere: a joiner never takes an older decision.
  std::uint64_t floor_ = 0;
  // Leader state for the transition to vid+1.
  std::uint64_t ballot_ = 0;
  std::uint64_t ballot_survivors_ = 0;
  bool proposed_ = false;
  bool minority_reported_ = false;
  std::atomic<bool> leave_requested_{false};
};

}  // namespace derecho::membership
