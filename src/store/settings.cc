#include "store/settings.h"

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/strings.h"

namespace wharf {

namespace {
constexpr const char* kFile = "store.json";
}

Result<StoreSettings> ReadStoreSettings(const std::string& root) {
  std::string path = JoinPath(root, kFile);
  StoreSettings settings;
  if (!PathExists(path)) return settings;
  auto text = ReadFile(path, 64 << 10);
  if (!text) return std::unexpected(text.error());
  try {
    auto j = nlohmann::json::parse(*text);
    settings.offline = j.at("offline").get<bool>();
    settings.offline_lifetime = j.at("offline_lifetime_seconds").get<int64_t>();
    auto changed = ParseTime(j.at("changed").get<std::string>());
    if (!changed) throw std::runtime_error("changed is not a UTC time");
    settings.changed = *changed;
    if (j.contains("retention")) {
      const auto& r = j.at("retention");
      settings.keep_versions = r.at("keep").get<int>();
      settings.keep_generations = r.at("generations").get<int>();
      settings.prune_on_release = r.at("prune_on_release").get<bool>();
    }
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kCorrupt, path + ": not the store's settings (" + e.what() +
                                         "); set them again with `wharf store offline` or `wharf store online`");
  }
  if (settings.offline_lifetime < 1)
    return Fail(ErrorCode::kCorrupt, path + ": offline_lifetime_seconds must be positive");
  if (settings.keep_versions < 1 || settings.keep_generations < 1)
    return Fail(ErrorCode::kCorrupt, path + ": retention keep and generations must be at least 1; "
                                            "set them again with `wharf retention`");
  return settings;
}

Status WriteStoreSettings(const std::string& root, const StoreSettings& settings) {
  nlohmann::ordered_json j{{"offline", settings.offline},
                           {"offline_lifetime_seconds", settings.offline_lifetime},
                           {"changed", FormatTime(settings.changed)},
                           {"retention", {{"keep", settings.keep_versions},
                                          {"generations", settings.keep_generations},
                                          {"prune_on_release", settings.prune_on_release}}}};
  return WriteFileAtomic(JoinPath(root, kFile), j.dump(2) + "\n", 0644);
}

int64_t GenerationLifetime(const StoreSettings& settings, int64_t asked) {
  return settings.offline ? settings.offline_lifetime : asked;
}

}  // namespace wharf
