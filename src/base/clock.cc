#include "base/clock.h"

#include <ctime>

namespace wharf {

int64_t SystemClock::Now() const { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace wharf
