#include "membership/view.hpp"

#include <algorithm>

namespace derecho::membership {

bool View::contains(MemberId id) const { return std::find(members.begin(), members.end(), id) != members.end(); }

MemberId View::leader() const {
  for (MemberId id : members) {
    if (std::find(joined.begin(), joined.end(), id) == joined.end()) return id;
  }
  return members.front();
}

std::string describe(const View& view) {
  const auto list = [](const std::vector<MemberId>& ids) {
    std::string s;
    for (MemberId id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
    return "[" + s + "]";
  };
  std::string s = "view " + std::to_string(view.vid) + " members " + list(view.members) + " leader " +
                  std::to_string(view.leader());
  if (!view.joined.empty()) s += " joined " + list(view.joined);
  if (!view.departed.empty()) s += " departed " + list(view.departed);
  return s;
}

}  // namespace derecho::membership
