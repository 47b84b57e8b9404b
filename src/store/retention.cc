#include "store/retention.h"

#include <algorithm>

#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

constexpr const char* kSettingFile = ".wharf/retention";

std::string Trimmed(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r");
  if (begin == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(" \t\r");
  return std::string(text.substr(begin, end - begin + 1));
}

}  // namespace

std::string RetentionToText(const Retention& r) {
  return "# wharf store retention (docs/cli.md, `wharf retention`)\n"
         "keep = " + std::to_string(r.keep_versions) + "\n" +
         "generations = " + std::to_string(r.keep_generations) + "\n" +
         "prune_on_release = " + (r.prune_on_release ? "true" : "false") + "\n";
}

Result<Retention> ParseRetention(const std::string& text, const std::string& where) {
  Retention r;
  int line_number = 0;
  for (const auto& raw : Split(text, '\n')) {
    ++line_number;
    std::string line = Trimmed(raw);
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const std::string& why) {
      return Fail(ErrorCode::kCorrupt, where + ":" + std::to_string(line_number) + ": " + why +
                                           "; rewrite it with `wharf retention`");
    };
    auto eq = line.find('=');
    if (eq == std::string::npos) return bad("expected KEY = VALUE");
    std::string key = Trimmed(line.substr(0, eq));
    std::string value = Trimmed(line.substr(eq + 1));
    if (key == "prune_on_release") {
      if (value != "true" && value != "false") return bad("prune_on_release: expected true or false");
      r.prune_on_release = value == "true";
      continue;
    }
    if (key != "keep" && key != "generations") return bad("unknown setting \"" + key + "\"");
    if (value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(value) < 1)
      return bad(key + ": expected a number from 1");
    (key == "keep" ? r.keep_versions : r.keep_generations) = std::stoi(value);
  }
  return r;
}

Result<Retention> ReadRetention(const Store& store) {
  std::string path = JoinPath(store.root(), kSettingFile);
  auto text = ReadFile(path, 64 << 10);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound) return Retention{};
    return std::unexpected(text.error());
  }
  return ParseRetention(*text, path);
}

Status WriteRetention(const Store& store, const Retention& retention) {
  if (retention.keep_versions < 1 || retention.keep_generations < 1)
    return Fail(ErrorCode::kInvalidArgument, "retention: --keep and --generations must be at least 1");
  auto lock = store.Lock();
  if (!lock) return std::unexpected(lock.error());
  return WriteFileAtomic(JoinPath(store.root(), kSettingFile), RetentionToText(retention), 0644);
}

size_t RetentionStart(const std::vector<Generation>& history, int releases) {
  std::vector<const std::vector<PackageRef>*> seen;  // different package sets, newest first
  size_t start = history.size();
  for (size_t i = history.size(); i-- > 0;) {
    const auto& packages = history[i].packages;
    if (std::none_of(seen.begin(), seen.end(), [&](const auto* s) { return *s == packages; })) {
      if (static_cast<int>(seen.size()) >= releases) break;
      seen.push_back(&packages);
    }
    start = i;
  }
  return start;
}

std::vector<std::string> MissingVersions(const Store& store, const std::vector<PackageRef>& packages,
                                         std::map<std::string, std::string>* cache) {
  std::map<std::string, std::string> local;
  if (!cache) cache = &local;
  std::vector<std::string> missing;
  for (const auto& p : packages) {
    auto [it, added] = cache->try_emplace(p.index);
    if (added) {
      auto digest = Sha256File(JoinPath(store.root(), p.index));
      // The archive is checked by its presence: its bytes are pinned by the index's hash,
      // and a published version is immutable.
      if (digest && PathExists(JoinPath(store.root(), p.archive))) it->second = digest->sha256;
    }
    if (it->second != p.index_sha256) missing.push_back(p.name + "@" + p.version);
  }
  return missing;
}

}  // namespace wharf
