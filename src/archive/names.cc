#include "archive/names.h"

#include <string>
#include <vector>

#include "base/strings.h"

namespace wharf {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [A-Za-z0-9][A-Za-z0-9<extra>]{0,max-1}, no "..".
Status CheckName(std::string_view kind, std::string_view value, std::string_view extra,
                 size_t max, std::string_view rule) {
  bool ok = !value.empty() && value.size() <= max && IsAlnum(value[0]) &&
            value.find("..") == std::string_view::npos;
  for (char c : value) ok = ok && (IsAlnum(c) || extra.find(c) != std::string_view::npos);
  if (ok) return {};
  return Fail(ErrorCode::kInvalidArgument,
              std::string(kind) + " \"" + std::string(value) + "\" is not valid: " +
                  std::string(rule) + "; pick another");
}

// The components of a normalised relative path, or nothing when it is not one.
std::optional<std::vector<std::string>> Components(std::string_view path) {
  if (path.empty() || path.front() == '/' || path.size() > 4096 ||
      path.find('\0') != std::string_view::npos)
    return std::nullopt;
  auto parts = Split(path, '/');
  for (const auto& part : parts)
    if (part.empty() || part == "." || part == "..") return std::nullopt;
  return parts;
}

// Resolves `target` lexically against the folder `base` (components from "/"); false when
// it climbs above "/".
bool Resolve(std::vector<std::string>& base, std::string_view target) {
  for (const auto& part : Split(target, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (base.empty()) return false;
      base.pop_back();
    } else {
      base.push_back(part);
    }
  }
  return true;
}

bool HasPrefix(const std::vector<std::string>& path, const std::vector<std::string>& prefix) {
  if (path.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (path[i] != prefix[i]) return false;
  return true;
}

std::vector<std::string> PrefixParts(std::string_view prefix) {
  std::vector<std::string> parts;
  Resolve(parts, prefix);
  return parts;
}

}  // namespace

Status ValidatePackageName(std::string_view name) {
  return CheckName("package name", name, "._+-", 100,
                   "use letters, digits and . _ + - (first a letter or digit, 100 at most)");
}

Status ValidateVersion(std::string_view version) {
  return CheckName("version", version, "._+~-", 64,
                   "use letters, digits and . _ + ~ - (first a letter or digit, 64 at most)");
}

Status ValidateServiceName(std::string_view name) {
  return CheckName("service name", name, "._-", 63,
                   "use letters, digits and . _ - (first a letter or digit, 63 at most)");
}

Status ValidateInitName(std::string_view name) {
  return CheckName("init script name", name, "._-", 100,
                   "use letters, digits and . _ - (first a letter or digit, 100 at most)");
}

Status ValidateFecName(std::string_view fec) {
  if (fec == "global")
    return Fail(ErrorCode::kInvalidArgument,
                "FEC name \"global\" is reserved for shared files; pick another");
  return CheckName("FEC name", fec, "._-", 63,
                   "use letters, digits and . _ - (first a letter or digit, 63 at most)");
}

Status ValidatePrefix(std::string_view prefix) {
  auto bad = [&](const char* why) {
    return Fail(ErrorCode::kInvalidArgument, "prefix \"" + std::string(prefix) + "\" " + why +
                                                 "; give an absolute folder like /opt/fesa/MyClass");
  };
  if (prefix.size() < 2 || prefix.front() != '/') return bad("is not an absolute path below /");
  auto parts = Components(prefix.substr(1));
  if (!parts) return bad("is not normalised (empty, . or .. parts, or a trailing /)");
  for (const auto& part : *parts)
    if (!CheckName("", part, "._+~-", 255, "")) return bad("has a part with unusual characters");
  if (HasPrefix(*parts, {"var", "lib", "wharf"}) || HasPrefix({"var", "lib", "wharf"}, *parts))
    return bad("overlaps wharf's own /var/lib/wharf");
  return {};
}

Status ValidateEntryPath(std::string_view path) {
  if (Components(path)) return {};
  return Fail(ErrorCode::kUnsafe, "entry path \"" + std::string(path) +
                                      "\" is not a normalised relative path (absolute, empty, "
                                      ". or .. parts); the archive is hostile or broken");
}

bool IsUnderPrefix(std::string_view path, std::string_view prefix) {
  auto parts = Components(path);
  return parts && HasPrefix(*parts, PrefixParts(prefix));
}

bool SymlinkStaysInside(std::string_view link_path, std::string_view target,
                        std::string_view prefix) {
  auto parts = Components(link_path);
  if (!parts || target.empty() || target.find('\0') != std::string_view::npos) return false;
  // ".." after a named part would climb out of whatever that part links to, which a
  // lexical check cannot see: only leading ".." parts are allowed.
  bool named = false;
  for (const auto& part : Split(target, '/')) {
    if (part == ".." && named) return false;
    if (!part.empty() && part != "." && part != "..") named = true;
  }
  std::vector<std::string> resolved;
  if (target.front() != '/') {
    resolved = *parts;
    resolved.pop_back();  // relative to the link's folder
  }
  return Resolve(resolved, target) && HasPrefix(resolved, PrefixParts(prefix));
}

bool PrefixesOverlap(std::string_view a, std::string_view b) {
  auto pa = PrefixParts(a), pb = PrefixParts(b);
  return HasPrefix(pa, pb) || HasPrefix(pb, pa);
}

}  // namespace wharf
