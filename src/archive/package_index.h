// package.json: the metadata, frame index and file index of one package archive.
//
// The archive is a plain tar (entries relative to "/", all under the prefix) compressed as
// a series of independent zstd frames. Each frame holds whole tar entries, or a fixed-size
// piece of one big file, so that a reader can fetch, check and decompress any frame alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace wharf {

inline constexpr int kPackageFormat = 1;
/// No frame may decompress to more than this: bounds a reader's memory.
inline constexpr uint64_t kMaxFrameRawSize = 16u << 20;
/// zstd's window sizes (2^10 to 2^27 bytes) a package.json may record.
inline constexpr int kMinWindowLog = 10, kMaxWindowLog = 27;

struct Frame {
  uint64_t offset = 0;      // in the archive file
  uint64_t size = 0;        // compressed bytes
  uint64_t raw_offset = 0;  // in the uncompressed tar stream
  uint64_t raw_size = 0;
  std::string sha256;       // of the compressed bytes
};

enum class EntryType { kFile, kDirectory, kSymlink };

struct FileEntry {
  std::string path;    // relative to "/", e.g. "opt/demo/bin/ioc"
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;   // permission bits (07777 at most)
  uint64_t size = 0;   // files only
  std::string sha256;  // files only
  uint32_t frame = 0;  // the frame holding the entry's tar header
  std::string link;    // symlinks only: the target as stored
  uint64_t data_offset = 0;  // files only: where the content starts in the tar stream, so
                             // that a reader holding the right frames can take a file's
                             // bytes without parsing tar (they are checked by sha256)
};

/// What a configuration package was made for: the version of a software package (a FESA
/// class's binary) its files describe. `wharf assign` refuses a generation where they differ.
struct PackageMatch {
  std::string name;
  std::string version;
  bool operator==(const PackageMatch&) const = default;
};

struct PackageIndex {
  int format = kPackageFormat;
  std::string name;
  std::string version;
  std::string prefix;          // absolute: "/opt/demo"
  std::string archive;         // file name beside package.json: "<name>-<version>.tar.zst"
  uint64_t archive_size = 0;
  std::string archive_sha256;
  int zstd_level = 0;
  /// The largest window of any frame, as a power of two (a decoder needs that much memory,
  /// or the frame's size when smaller); 0: not recorded (archives packed before it was).
  int zstd_window_log = 0;
  uint64_t raw_size = 0;       // the uncompressed tar stream
  std::vector<Frame> frames;   // in archive order, contiguous
  std::vector<FileEntry> files;  // in archive order (sorted by path)
  /// The services the package defines, as a JSON array (empty: none); their fields are
  /// checked by the service library (src/service/definition.h) when packed and when run.
  std::string services;
  /// Software (the default) or configuration: FESA instance files, IOC databases, settings.
  bool configuration = false;
  /// A configuration of one FEC only (published under fecs/<fec>/configuration/); empty:
  /// shared by any FEC that is assigned it.
  std::string fec;
  std::vector<PackageMatch> matches;  // configuration only
};

const char* EntryTypeName(EntryType type);

/// The store folder of a version, relative to the store: software/<name>/<version>,
/// configuration/<name>/<version> or fecs/<fec>/configuration/<name>/<version>.
std::string StoreFolder(const PackageIndex& index);
/// The folder that holds every version of a package of this kind (StoreFolder less the
/// version): "software", "configuration" or "fecs/<fec>/configuration".
std::string StoreArea(bool configuration, const std::string& fec);

/// Serialises deterministically (same index, same bytes).
std::string PackageIndexToJson(const PackageIndex& index);
/// package.json as the store also keeps it for the wire (package.json.zst beside it, about
/// a fifth of the size): one zstd frame. The agent fetches it first and falls back to
/// package.json; either way the JSON must have the size and sha256 the generation pins.
std::string CompressIndex(std::string_view json);
/// The JSON in a package.json.zst, which must be one zstd frame of exactly `size` bytes.
Result<std::string> DecompressIndex(std::string_view compressed, uint64_t size);

/// Parses and validates (see ValidatePackageIndex): the result is safe to act on.
Result<PackageIndex> ParsePackageIndex(std::string_view json);
/// Pure checks: names and prefix valid, archive name "<name>-<version>.tar.zst", frames
/// contiguous from 0 covering archive_size and raw_size, each frame's raw size within
/// kMaxFrameRawSize, every path valid, unique and under the prefix, every symlink staying
/// inside the prefix, file frames in range, modes within 07777.
Status ValidatePackageIndex(const PackageIndex& index);

}  // namespace wharf
