#include "agent/state.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "crypto/sha256.h"

namespace wharf {

Result<std::optional<ActiveGeneration>> ReadActive(const Layout& layout) {
  auto json = ReadFile(JoinPath(layout.current(), ".generation.json"), 16u << 20);
  if (!json) {
    if (json.error().code == ErrorCode::kNotFound) return std::optional<ActiveGeneration>();
    return std::unexpected(json.error());
  }
  auto generation = ParseGeneration(*json);
  if (!generation) return Prefix("active generation " + layout.current(), generation.error());
  return ActiveGeneration{std::move(*generation), std::move(*json)};
}

Result<AcceptedFloor> ReadFloor(const Layout& layout, const std::optional<ActiveGeneration>& active) {
  AcceptedFloor floor;
  auto text = ReadFile(layout.state(), 1 << 16);
  if (text) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object()) {
      floor.number = j.value("number", uint64_t{0});
      floor.created = j.value("created", int64_t{0});
      floor.sha256 = j.value("sha256", std::string());
    }
  } else if (text.error().code != ErrorCode::kNotFound) {
    return std::unexpected(text.error());
  }
  if (active) {
    if (active->generation.number > floor.number ||
        (active->generation.number == floor.number && floor.sha256.empty()))
      floor.sha256 = Sha256Hex(active->json);
    floor.number = std::max(floor.number, active->generation.number);
    floor.created = std::max(floor.created, active->generation.created);
  }
  if (floor.sha256.empty() && floor.number > 0) {
    // An older state file under a local rollback: the floor's profile, when still kept.
    if (auto json = ReadFile(JoinPath(layout.profile(floor.number), ".generation.json"), 16u << 20))
      floor.sha256 = Sha256Hex(*json);
  }
  return floor;
}

Status WriteFloor(const Layout& layout, const AcceptedFloor& floor) {
  nlohmann::ordered_json j;
  j["number"] = floor.number;
  j["created"] = floor.created;
  if (!floor.sha256.empty()) j["sha256"] = floor.sha256;
  return WriteFileAtomic(layout.state(), j.dump(2) + "\n");
}

}  // namespace wharf
