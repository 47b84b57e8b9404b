#include "archive/package_index.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <zstd.h>

#include "archive/names.h"
#include "base/json_integers.h"
#include "base/strings.h"

namespace wharf {
namespace {

using nlohmann::ordered_json;

Result<EntryType> ParseEntryType(const std::string& text) {
  if (text == "file") return EntryType::kFile;
  if (text == "dir") return EntryType::kDirectory;
  if (text == "symlink") return EntryType::kSymlink;
  return Fail(ErrorCode::kUnsafe, "entry type \"" + text + "\" is not allowed (only file, dir, "
                                                           "symlink); the index is hostile or broken");
}

std::unexpected<Error> Bad(const PackageIndex& index, const std::string& what) {
  return Fail(ErrorCode::kCorrupt, index.name + "-" + index.version + " package.json: " + what +
                                       "; repack and republish");
}

Status ValidateFrames(const PackageIndex& index) {
  uint64_t offset = 0, raw_offset = 0;
  for (size_t i = 0; i < index.frames.size(); ++i) {
    const Frame& f = index.frames[i];
    if (f.offset != offset || f.raw_offset != raw_offset)
      return Bad(index, "frame " + std::to_string(i) + " is not contiguous with the one before");
    // zstd never needs more than its bound: a bigger frame would only cost a reader memory.
    if (f.size == 0 || f.raw_size == 0 || f.raw_size > kMaxFrameRawSize || f.size > ZSTD_COMPRESSBOUND(f.raw_size))
      return Bad(index, "frame " + std::to_string(i) + " has an empty or oversized extent");
    if (!IsSha256Hex(f.sha256)) return Bad(index, "frame " + std::to_string(i) + " sha256 is malformed");
    offset += f.size;
    raw_offset += f.raw_size;
  }
  if (index.frames.empty() || offset != index.archive_size || raw_offset != index.raw_size)
    return Bad(index, "frames do not cover the archive (" + std::to_string(offset) + " of " +
                          std::to_string(index.archive_size) + " bytes)");
  return {};
}

Status ValidateEntry(const PackageIndex& index, const FileEntry& e) {
  auto unsafe = [&](const std::string& why) {
    return Fail(ErrorCode::kUnsafe, index.name + "-" + index.version + " package.json: entry \"" +
                                        e.path + "\" " + why +
                                        "; the package is hostile or broken, do not install it");
  };
  if (!ValidateEntryPath(e.path)) return unsafe("is not a normalised relative path");
  if (!IsUnderPrefix(e.path, index.prefix)) return unsafe("is outside the prefix " + index.prefix);
  if (e.mode > 07777) return unsafe("has a mode beyond 07777");
  if (e.frame >= index.frames.size()) return unsafe("names a frame that does not exist");
  switch (e.type) {
    case EntryType::kFile:
      if (!IsSha256Hex(e.sha256)) return unsafe("has a malformed sha256");
      if (!e.link.empty()) return unsafe("is a file with a link target");
      if (e.data_offset > index.raw_size || e.size > index.raw_size - e.data_offset)
        return unsafe("has its data outside the tar stream");
      break;
    case EntryType::kDirectory:
      if (e.size != 0 || !e.link.empty()) return unsafe("is a folder with a size or link target");
      break;
    case EntryType::kSymlink:
      if (e.size != 0) return unsafe("is a symlink with a size");
      if (!SymlinkStaysInside(e.path, e.link, index.prefix))
        return unsafe("links to \"" + e.link + "\", outside the prefix " + index.prefix);
      break;
  }
  return {};
}

}  // namespace

const char* EntryTypeName(EntryType type) {
  switch (type) {
    case EntryType::kFile: return "file";
    case EntryType::kDirectory: return "dir";
    case EntryType::kSymlink: return "symlink";
  }
  return "?";
}

std::string StoreArea(bool configuration, const std::string& fec) {
  if (!configuration) return "software";
  return fec.empty() ? "configuration" : "fecs/" + fec + "/configuration";
}

std::string StoreFolder(const PackageIndex& index) {
  return StoreArea(index.configuration, index.fec) + "/" + index.name + "/" + index.version;
}

std::string PackageIndexToJson(const PackageIndex& index) {
  ordered_json j;
  j["format"] = index.format;
  j["name"] = index.name;
  j["version"] = index.version;
  j["prefix"] = index.prefix;
  j["archive"] = index.archive;
  j["archive_size"] = index.archive_size;
  j["archive_sha256"] = index.archive_sha256;
  j["zstd_level"] = index.zstd_level;
  if (index.zstd_window_log != 0) j["zstd_window_log"] = index.zstd_window_log;
  j["raw_size"] = index.raw_size;
  j["frames"] = ordered_json::array();
  for (const auto& f : index.frames)
    j["frames"].push_back({{"offset", f.offset}, {"size", f.size}, {"raw_offset", f.raw_offset},
                           {"raw_size", f.raw_size}, {"sha256", f.sha256}});
  j["files"] = ordered_json::array();
  for (const auto& e : index.files) {
    ordered_json file{{"path", e.path}, {"type", EntryTypeName(e.type)}, {"mode", e.mode}};
    if (e.type == EntryType::kFile) {
      file["size"] = e.size;
      file["sha256"] = e.sha256;
      file["data_offset"] = e.data_offset;
    }
    if (e.type == EntryType::kSymlink) file["link"] = e.link;
    file["frame"] = e.frame;
    j["files"].push_back(std::move(file));
  }
  if (!index.services.empty()) j["services"] = ordered_json::parse(index.services);
  // Software indexes keep the bytes they had before configuration packages existed.
  if (index.configuration) j["kind"] = "configuration";
  if (!index.fec.empty()) j["fec"] = index.fec;
  if (!index.matches.empty()) {
    j["matches"] = ordered_json::array();
    for (const auto& m : index.matches) j["matches"].push_back({{"name", m.name}, {"version", m.version}});
  }
  return j.dump(1) + "\n";
}

Result<PackageIndex> ParsePackageIndex(std::string_view json) {
  PackageIndex index;
  try {
    auto j = ordered_json::parse(json);
    if (!AllNumbersIntegers(j))
      return Fail(ErrorCode::kCorrupt, "package.json has a number that is not an integer; repack with `wharf pack`");
    index.format = j.at("format").get<int>();
    if (index.format != kPackageFormat)
      return Fail(ErrorCode::kCorrupt, "package.json format " + std::to_string(index.format) +
                                           " is not known to this wharf; upgrade wharf");
    index.name = j.at("name").get<std::string>();
    index.version = j.at("version").get<std::string>();
    index.prefix = j.at("prefix").get<std::string>();
    index.archive = j.at("archive").get<std::string>();
    index.archive_size = j.at("archive_size").get<uint64_t>();
    index.archive_sha256 = j.at("archive_sha256").get<std::string>();
    index.zstd_level = j.at("zstd_level").get<int>();
    index.zstd_window_log = j.value("zstd_window_log", 0);
    index.raw_size = j.at("raw_size").get<uint64_t>();
    for (const auto& f : j.at("frames"))
      index.frames.push_back({f.at("offset").get<uint64_t>(), f.at("size").get<uint64_t>(),
                              f.at("raw_offset").get<uint64_t>(), f.at("raw_size").get<uint64_t>(),
                              f.at("sha256").get<std::string>()});
    if (j.contains("services")) {
      if (!j["services"].is_array()) return Fail(ErrorCode::kCorrupt, "package.json: services must be a list");
      index.services = j["services"].dump();
    }
    std::string kind = j.value("kind", std::string("software"));
    if (kind != "software" && kind != "configuration")
      return Fail(ErrorCode::kCorrupt, "package.json: kind \"" + kind + "\" is not software or configuration");
    index.configuration = kind == "configuration";
    index.fec = j.value("fec", std::string());
    if (j.contains("matches"))
      for (const auto& m : j.at("matches"))
        index.matches.push_back({m.at("name").get<std::string>(), m.at("version").get<std::string>()});
    for (const auto& f : j.at("files")) {
      FileEntry e;
      e.path = f.at("path").get<std::string>();
      auto type = ParseEntryType(f.at("type").get<std::string>());
      if (!type) return std::unexpected(type.error());
      e.type = *type;
      e.mode = f.at("mode").get<uint32_t>();
      e.size = f.value("size", uint64_t{0});
      e.sha256 = f.value("sha256", std::string());
      e.link = f.value("link", std::string());
      e.data_offset = f.value("data_offset", uint64_t{0});
      e.frame = f.at("frame").get<uint32_t>();
      index.files.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return Fail(ErrorCode::kCorrupt,
                std::string("package.json is not valid JSON of the expected shape (") + e.what() +
                    "); repack with `wharf pack`");
  }
  WHARF_TRY(ValidatePackageIndex(index));
  return index;
}

Status ValidatePackageIndex(const PackageIndex& index) {
  WHARF_TRY(ValidatePackageName(index.name));
  WHARF_TRY(ValidateVersion(index.version));
  WHARF_TRY(ValidatePrefix(index.prefix));
  if (index.archive != index.name + "-" + index.version + ".tar.zst")
    return Bad(index, "archive is named \"" + index.archive + "\", not " + index.name + "-" +
                          index.version + ".tar.zst");
  if (!IsSha256Hex(index.archive_sha256)) return Bad(index, "archive_sha256 is malformed");
  if (!index.configuration && (!index.fec.empty() || !index.matches.empty()))
    return Bad(index, "only a configuration package names a FEC or the software it matches");
  if (!index.fec.empty()) WHARF_TRY(ValidateFecName(index.fec));
  for (const auto& m : index.matches) {
    WHARF_TRY(ValidatePackageName(m.name));
    WHARF_TRY(ValidateVersion(m.version));
    if (m.name == index.name) return Bad(index, "a configuration cannot match itself");
  }
  if (index.zstd_window_log != 0 &&
      (index.zstd_window_log < kMinWindowLog || index.zstd_window_log > kMaxWindowLog))
    return Bad(index, "zstd_window_log " + std::to_string(index.zstd_window_log) + " is not " +
                          std::to_string(kMinWindowLog) + " to " + std::to_string(kMaxWindowLog));
  WHARF_TRY(ValidateFrames(index));
  std::set<std::string> seen;
  uint32_t last_frame = 0;
  for (const auto& e : index.files) {
    WHARF_TRY(ValidateEntry(index, e));
    if (!seen.insert(e.path).second) return Bad(index, "entry \"" + e.path + "\" is listed twice");
    if (e.frame < last_frame) return Bad(index, "entries are not in archive order");
    last_frame = e.frame;
  }
  return {};
}

}  // namespace wharf
