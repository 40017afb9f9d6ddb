#pragma once
#include <chrono>
#include <map>
#include <vector>

#include "../support/eventually.hpp"
#include "transport/transport.hpp"

namespace derecho::testing {

// Takes `t`'s link events until the latest one for every peer in `peers` is an up event. A
// transport accepts writes to a peer only once the up event of the peer's current link session
// has been taken, so a test must do this before it posts. Every event taken is appended to
// `seen` when one is given.
inline bool take_up_events(transport::Transport& t, const std::vector<MemberId>& peers,
                           std::vector<transport::LinkEvent>* seen = nullptr,
                           std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::map<MemberId, bool> latest_up;
  return eventually(
      [&] {
        for (transport::LinkEvent& e : t.take_link_events()) {
          latest_up[e.peer] = e.up;
          if (seen != nullptr) seen->push_back(std::move(e));
        }
        for (MemberId peer : peers) {
          const auto it = latest_up.find(peer);
          if (it == latest_up.end() || !it->second) return false;
        }
        return true;
      },
      limit);
}

}  // namespace derecho::testing
