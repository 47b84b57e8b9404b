// For .cc files that parse outside JSON with nlohmann (which they include themselves).
#pragma once

namespace wharf {

/// True when every number in `j` is an integer. nlohmann's get<uint64_t>() casts a float
/// (1e34) to the integer asked for, undefined behaviour when it is out of range: formats
/// whose numbers are all integers refuse anything else before reading them.
template <typename Json>
bool AllNumbersIntegers(const Json& j) {
  if (j.is_number_float()) return false;
  if (j.is_structured())
    for (const auto& item : j)
      if (!AllNumbersIntegers(item)) return false;
  return true;
}

}  // namespace wharf
