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
  /// Creates the folders, links and files of `index` ahead, on a thread of its own, for
  /// callers that fill the files out of order, from several threads (UnpackFrames): making
  /// inodes is much of the cost of unpacking many files, and it no longer waits for the
  /// data. Files wait for TakeFile (a bounded number of them open); an empty one is
  /// complete as made. The entry calls (Directory, Symlink, BeginFile, LinkFile) then refuse.
  void Prepare(const PackageIndex& index);
  /// File `e` (an element of the prepared index's files) once it is made, open for writing
  /// at any offset: the preparer's descriptor, or a new one when that was taken already
  /// (a big file filled in pieces by several callers).
  Result<UniqueFd> TakeFile(const FileEntry& e);
  /// File `e` (open as `fd`) holds all its bytes: gives it its mode, starts its writeback.
  Status Filled(int fd, const FileEntry& e);
  /// Waits until the preparer has made every entry (or failed).
  Status WaitAllPrepared();
  /// The file between BeginFile and EndFile (open read-write, empty), for writing it in place.
  int file() const { return file_.get(); }
  const std::string& file_path() const { return file_path_; }
  Status Finish();

 private:
  TreeWriter(UniqueFd dest, std::string dest_path, const std::string& prefix);
  std::string Relative(const std::string& path) const;
  std::string Where(const std::string& rel) const;
  Result<UniqueFd> OpenParent(const std::string& rel);

  // The folder an entry was last made in: consecutive entries mostly share it.
  struct ParentDir {
    std::string rel;
    UniqueFd fd;
  };
  // The folder, link or empty file (open, for a file), in `parent` (opened again when the
  // entry is in another folder); Created drops the fd.
  Result<UniqueFd> Create(const FileEntry& entry, ParentDir& parent);
  Status Created(const FileEntry& entry);
  // A file holds all its bytes: its mode less write bits, and its writeback started.
  static Status Seal(int fd, uint32_t mode, const std::string& path);
  void StopPreparing();

  // Files the preparer keeps open for TakeFile (so they need no second lookup), and no more
  // than a quarter of the process's descriptor limit; it closes the ones it makes beyond.
  static constexpr size_t kOpenAhead = 256;
  UniqueFd dest_;
  std::string dest_path_;
  std::string prefix_;  // without the leading "/"
  // Prepare(): a thread creating the index's entries ahead of the writers.
  const PackageIndex* plan_ = nullptr;
  std::thread preparer_;
  std::mutex prepare_mutex_;
  std::condition_variable prepared_changed_;
  size_t prepared_ = 0;  // entries of plan_ created so far
  std::vector<UniqueFd> open_;  // by entry: files made, not taken yet
  size_t open_ahead_ = 0;
  size_t open_most_ = kOpenAhead;
  bool prepare_stop_ = false;
  std::optional<Error> prepare_error_;
  ParentDir parent_;  // for the entry calls (the preparer has its own)
  UniqueFd file_;
  std::string file_path_;
  uint32_t file_mode_ = 0;
  std::vector<std::pair<std::string, uint32_t>> folders_;
};

/// Checks frame `number` of `index`: its compressed bytes have the declared size and
/// sha256, and are one zstd frame of the declared content size.
Status CheckFrame(const PackageIndex& index, size_t number, std::string_view compressed);

/// Frame `number`'s compressed bytes, read from the archive file open as `fd`.
Status ReadFrameAt(int fd, const PackageIndex& index, size_t number, std::string& compressed);

/// The refusal of frame `number` when it does not decompress to its declared size.
Status FrameDecodesWrong(const PackageIndex& index, size_t number);

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

/// The memory UnpackFrames decodes in: the decoders' windows and the compressed frames in
/// flight. With the 4 MiB windows of `wharf pack`, two decoders and their frames fit.
inline constexpr uint64_t kUnpackMemory = 13u << 20;

struct UnpackPlan {
  unsigned decoders = 1;
  uint64_t in_flight = 0;  // bytes of compressed frames held at once (never below the biggest)
};
/// How many decoders (at most `cores`) the frames of `index` allow within `memory`.
UnpackPlan PlanUnpack(const PackageIndex& index, unsigned cores, uint64_t memory = kUnpackMemory);

/// Unpacks an archive arriving through `pipe` into `writer`, prepared with `index`, on
/// PlanUnpack's decoders at once: each takes the next frame off the pipe, checks it against
/// the index (size, sha256) before decoding it, checks the frame's tar entries against the
/// index as they pass (TarFrameWalk: the checks of ReadArchive), and writes the bytes of
/// files where data_offset says. Files are not hashed (as FileHashes::kPinned): for an index
/// a signed generation pins, the frames' sha256 fix every byte. Stops the pipe when done.
Status UnpackFrames(BytePipe& pipe, const PackageIndex& index, TreeWriter& writer, unsigned cores);

/// Unpacks the archive into `dest` (which must not exist) through a TreeWriter.
Status ExtractArchive(const std::string& archive_path, const PackageIndex& index,
                      const std::string& dest, FileHashes files = FileHashes::kCheck);

/// Reads the whole archive against the index without writing anything.
Status VerifyArchive(const std::string& archive_path, const PackageIndex& index);

}  // namespace wharf
