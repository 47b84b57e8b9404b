// Reads a wharf archive and proves it matches its package.json, frame by frame and entry
// by entry, with bounded memory (one frame at a time). Both `wharf publish` (checking an
// upload) and the agent (unpacking) go through here, so the checks live in one place.
#pragma once

#include <cstddef>
#include <string>

#include "archive/package_index.h"
#include "base/error.h"

namespace wharf {

/// Receives the entries of an archive in order, after each one was matched against the
/// index (path, type, mode, size, link target). File data arrives in pieces; the sha256
/// of the whole file is checked by the reader before EndFile returns to it.
class EntrySink {
 public:
  virtual ~EntrySink() = default;
  virtual Status Directory(const FileEntry& entry) = 0;
  virtual Status Symlink(const FileEntry& entry) = 0;
  virtual Status BeginFile(const FileEntry& entry) = 0;
  virtual Status FileData(const void* data, size_t size) = 0;
  /// Called once the file's bytes are all delivered and its sha256 matched.
  virtual Status EndFile() = 0;
};

/// Reads `archive_path` against `index` (already validated): each frame's size and sha256,
/// its decompressed size, then every tar entry, which must be exactly the next entry of
/// the index (no extra, missing, reordered, hard-link, device or oversize entry; no
/// trailing bytes). Stops at the first mismatch with kCorrupt or kUnsafe naming the entry.
Status ReadArchive(const std::string& archive_path, const PackageIndex& index, EntrySink& sink);

/// Unpacks into `dest` (a new, empty folder) the contents of the prefix: the entry
/// "opt/demo/bin/x" of prefix "/opt/demo" becomes "<dest>/bin/x". Never writes outside
/// `dest`: every component is opened without following symlinks. Files get their mode
/// less write permission; file data is fsynced; folders are made read-only last.
Status ExtractArchive(const std::string& archive_path, const PackageIndex& index,
                      const std::string& dest);

/// Reads the whole archive against the index without writing anything.
Status VerifyArchive(const std::string& archive_path, const PackageIndex& index);

}  // namespace wharf
