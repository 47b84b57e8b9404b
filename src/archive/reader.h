// Reads a wharf archive and proves it matches its package.json, frame by frame and entry
// by entry, with bounded memory (one frame at a time). Both `wharf publish` (checking an
// upload) and the agent (unpacking) go through here, so the checks live in one place.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "archive/package_index.h"
#include "base/error.h"
#include "base/file.h"

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

/// Writes entries below a new folder: the entry "opt/demo/bin/x" of prefix "/opt/demo"
/// becomes "<dest>/bin/x". Never writes outside `dest`: every component is opened without
/// following symlinks, files are created exclusively. Files get their mode less write
/// permission. Finish() makes folders read-only (deepest first) and syncs the file system.
/// Entries must come parents first, as in an archive.
class TreeWriter : public EntrySink {
 public:
  /// Creates `dest` (which must not exist).
  static Result<std::unique_ptr<TreeWriter>> Create(const std::string& dest, const std::string& prefix);
  ~TreeWriter() override;

  Status Directory(const FileEntry& entry) override;
  Status Symlink(const FileEntry& entry) override;
  Status BeginFile(const FileEntry& entry) override;
  Status FileData(const void* data, size_t size) override;
  Status EndFile() override;
  /// Puts file `entry` in place as a hard link to `source`, an unpacked file of another
  /// package that has the same content (by sha256) and the mode this writer would give it:
  /// no bytes copied. kUnsupported when that cannot be (another mode, another file system,
  /// too many links): the caller copies instead.
  Status LinkFile(const FileEntry& entry, const std::string& source);
  /// Creates the folders, links and empty files of `index` ahead, on a thread of its own,
  /// while the caller writes the data: making inodes is much of the cost of unpacking many
  /// files, and it no longer waits for the data. Then every Directory/Symlink/BeginFile call
  /// must be for the next entry of `index.files` (its own element), in order, as an archive
  /// reader makes them; LinkFile cannot be used.
  void Prepare(const PackageIndex& index);
  /// The file between BeginFile and EndFile (open read-write, empty), for writing it in place.
  int file() const { return file_.get(); }
  const std::string& file_path() const { return file_path_; }
  Status Finish();

 private:
  TreeWriter(UniqueFd dest, std::string dest_path, const std::string& prefix);
  std::string Relative(const std::string& path) const;
  std::string Where(const std::string& rel) const;
  Result<UniqueFd> OpenParent(const std::string& rel);

  // The folder, link or empty file (open, for a file), on its own; Created drops the fd.
  Result<UniqueFd> Create(const FileEntry& entry);
  Status Created(const FileEntry& entry);
  Status WaitPrepared(const FileEntry& entry);
  void StopPreparing();

  UniqueFd dest_;
  std::string dest_path_;
  std::string prefix_;  // without the leading "/"
  // Prepare(): a thread creating the index's entries ahead of the writer.
  const PackageIndex* plan_ = nullptr;
  std::thread preparer_;
  std::mutex prepare_mutex_;
  std::condition_variable prepared_changed_;
  size_t prepared_ = 0;  // entries of plan_ created so far
  bool prepare_stop_ = false;
  std::optional<Error> prepare_error_;
  UniqueFd file_;
  std::string file_path_;
  unsigned file_mode_ = 0;
  std::vector<std::pair<std::string, uint32_t>> folders_;
};

/// Checks frame `number` of `index`: its compressed bytes have the declared size and
/// sha256, and are one zstd frame of the declared content size.
Status CheckFrame(const PackageIndex& index, size_t number, std::string_view compressed);

/// CheckFrame, then decompresses the frame into `raw`.
Status DecodeFrame(const PackageIndex& index, size_t number, std::string_view compressed,
                   std::string& raw);

/// Bytes handed from one thread (a download) to another (the reader), in order, through a
/// small ring: the writer waits while it is full, the reader while it is empty. Memory stays
/// at the ring's size whatever the archive's.
class BytePipe {
 public:
  explicit BytePipe(size_t capacity = 256u << 10);
  /// False when the reader stopped: the writer should give up.
  bool Write(const char* data, size_t size);
  /// The writer is done (all written, or failed).
  void Close();
  /// Exactly `size` bytes; false when the writer closed first or the reader stopped.
  bool Read(char* out, size_t size);
  /// The reader is done: writers and readers waiting return false.
  void Stop();

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<char> ring_;
  size_t start_ = 0, used_ = 0;
  bool closed_ = false, stopped_ = false;
};

/// Reads `archive_path` against `index` (already validated): each frame's size and sha256,
/// its decompressed size, then every tar entry, which must be exactly the next entry of
/// the index (no extra, missing, reordered, hard-link, device or oversize entry; no
/// trailing bytes). Stops at the first mismatch with kCorrupt or kUnsafe naming the entry.
/// kFileHashesPinned skips each file's own sha256: for an index that `wharf publish`
/// checked entry by entry and a signed generation pins, the frames' sha256 (always checked)
/// already fix every byte, so hashing the files again only costs time.
enum class FileHashes { kCheck, kPinned };
Status ReadArchive(const std::string& archive_path, const PackageIndex& index, EntrySink& sink,
                   FileHashes files = FileHashes::kCheck);
/// The same for an archive arriving through `pipe` (a download: fetching and unpacking
/// overlap, and the archive is never written out). Stops the pipe when it returns.
Status ReadArchive(BytePipe& pipe, const PackageIndex& index, EntrySink& sink, FileHashes files);

/// Unpacks the archive into `dest` (which must not exist) through a TreeWriter.
Status ExtractArchive(const std::string& archive_path, const PackageIndex& index,
                      const std::string& dest, FileHashes files = FileHashes::kCheck);

/// Reads the whole archive against the index without writing anything.
Status VerifyArchive(const std::string& archive_path, const PackageIndex& index);

}  // namespace wharf
