// The naming rules of wharf, pure and shared by the packer, the store and the agent.
//
//   package name  [A-Za-z0-9][A-Za-z0-9._+-]*, at most 100 characters, no ".."
//   version       [A-Za-z0-9][A-Za-z0-9._+~-]*, at most 64 characters, no ".."
//                 ("dev" is a version of its own, never kept for rollback)
//   FEC name      [A-Za-z0-9][A-Za-z0-9._-]*, at most 63 characters; "global" is reserved
//   prefix        an absolute, normalised path of such components ("/opt/fesa/MyClass"),
//                 not "/" and not inside /var/lib/wharf
//   entry path    relative to "/", normalised: no "", "." or ".." component, no NUL,
//                 at most 4096 bytes
#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace wharf {

Status ValidatePackageName(std::string_view name);
Status ValidateVersion(std::string_view version);
Status ValidateFecName(std::string_view fec);
/// Service names (also the names of their sockets and status files): like FEC names.
Status ValidateServiceName(std::string_view name);
/// Boot script names: [A-Za-z0-9][A-Za-z0-9._-]*, 100 at most; their order is byte order.
Status ValidateInitName(std::string_view name);
Status ValidatePrefix(std::string_view prefix);
Status ValidateEntryPath(std::string_view path);

/// True when `path` (relative to "/") is the prefix folder itself or inside it.
/// `prefix` is absolute ("/opt/x"), `path` relative ("opt/x/bin/y").
bool IsUnderPrefix(std::string_view path, std::string_view prefix);

/// True when the symlink at `link_path` (relative to "/") pointing at `target` resolves,
/// lexically, to the prefix folder or inside it. Absolute targets are resolved from "/".
bool SymlinkStaysInside(std::string_view link_path, std::string_view target,
                        std::string_view prefix);

/// Whether two prefixes overlap (equal, or one inside the other).
bool PrefixesOverlap(std::string_view a, std::string_view b);

}  // namespace wharf
