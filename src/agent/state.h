// The agent's memory across boots: the floor it has accepted (state.json) and the
// generation it runs (current/.generation.json).
#pragma once

#include <optional>
#include <string>

#include "agent/layout.h"
#include "base/error.h"
#include "generation/generation.h"

namespace wharf {

struct ActiveGeneration {
  Generation generation;
  std::string json;
};

/// The generation `current` points at, or nothing on a FEC that never synced.
Result<std::optional<ActiveGeneration>> ReadActive(const Layout& layout);
/// The recorded floor, raised to the active generation (a crash may have come between
/// the switch and the floor's write).
Result<AcceptedFloor> ReadFloor(const Layout& layout, const std::optional<ActiveGeneration>& active);
Status WriteFloor(const Layout& layout, const AcceptedFloor& floor);

}  // namespace wharf
