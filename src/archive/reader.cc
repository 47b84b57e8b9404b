#include "archive/reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "archive/archive_handles.h"
#include "archive/names.h"
#include "archive/tar_walk.h"
#include "archive/zstd_handles.h"
#include "archive/utf8_locale.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// Hands out the archive's decoded bytes in order, each frame checked against the index
// (size, sha256, declared content size) before a byte of it is decoded. A worker thread
// reads and decodes while the caller parses and writes (two cores share the work). Frames
// are decoded straight into one of a few frame buffers, a slice of input at a time, and
// the caller gets each decoded stretch as soon as it is there: a big frame does not hold
// the writer back until all of it is decoded, and nothing is copied twice. The buffers
// hold up to kAheadBytes of small frames, or one big frame: as the writer takes a big
// frame's bytes while they are decoded, a second buffer would only cost memory.
class FrameSource {
 public:
  static constexpr uint64_t kAheadBytes = 4u << 20;
  static constexpr size_t kInputSlice = 64u << 10;  // compressed bytes per decoding step

  /// Frames are read from the archive file open as `fd`.
  FrameSource(const PackageIndex& index, int fd) : index_(index), fd_(fd), dctx_(ZSTD_createDCtx()) {
    uint64_t biggest = 1;
    for (const auto& f : index.frames) biggest = std::max(biggest, f.raw_size);
    slots_.resize(std::clamp<uint64_t>(kAheadBytes / biggest, 1, 4));
    for (auto& slot : slots_) free_.push_back(&slot);
    // Decoding writes straight into the frame's buffer: no window buffer of its own.
    ZSTD_DCtx_setParameter(dctx_.get(), ZSTD_d_stableOutBuffer, 1);
    worker_ = std::thread([this] { Work(); });
  }
  ~FrameSource() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    worker_.join();
  }

  /// The next decoded bytes; empty at the end. They stay valid until the next call.
  Result<std::string_view> Next() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return !decoding_.empty() || done_; });
      if (decoding_.empty()) return std::string_view();
      Slot& slot = *decoding_.front();
      if (slot.error) return std::unexpected(*slot.error);
      if (handed_ < slot.decoded) {
        std::string_view bytes(slot.raw.data() + handed_, slot.decoded - handed_);
        handed_ = slot.decoded;
        return bytes;
      }
      if (slot.complete) {  // all of it handed out, and the caller is done with the last part
        decoding_.pop_front();
        free_.push_back(&slot);
        handed_ = 0;
        changed_.notify_all();
        continue;
      }
      changed_.wait(lock, [&] { return slot.decoded > handed_ || slot.complete || slot.error; });
    }
  }

  /// After the tar end: takes the rest, whose frames the worker checks and walks (only
  /// zeros may follow the end). Every frame is checked against its sha256, and the frames
  /// cover the archive exactly: that checks the whole archive, byte for byte, without
  /// hashing it a second time.
  Status Finish() {
    for (;;) {
      auto bytes = Next();
      if (!bytes) return std::unexpected(bytes.error());
      if (bytes->empty()) return {};
    }
  }

  std::optional<Error> error;

 private:
  struct Slot {
    std::string raw;
    uint64_t decoded = 0;   // bytes of raw that are final
    bool complete = false;  // the whole frame is decoded and its end checked
    std::optional<Error> error;
  };

  void Work() {
    std::string compressed;
    for (size_t n = 0; n < index_.frames.size(); ++n) {
      Slot* slot;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !free_.empty() || stop_; });
        if (stop_) return;
        slot = free_.front();
        free_.pop_front();
        slot->decoded = 0;
        slot->complete = false;
        decoding_.push_back(slot);  // nothing in it for the caller until `decoded` grows
      }
      Status status = Read(n, compressed);
      if (status) {
        slot->raw.resize(index_.frames[n].raw_size);
        status = Decode(n, compressed, *slot);
      }
      {
        std::lock_guard lock(mutex_);
        if (status) {
          slot->complete = true;
        } else {
          slot->error = status.error();
          done_ = true;
        }
      }
      changed_.notify_all();
      if (!status) return;
    }
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    changed_.notify_all();
  }

  // The frame's compressed bytes, whole and checked.
  Status Read(size_t number, std::string& compressed) {
    WHARF_TRY(ReadFrameAt(fd_, index_, number, compressed));
    return CheckFrame(index_, number, compressed);
  }

  // Decodes a slice of input at a time, publishing what is final after each step.
  Status Decode(size_t number, const std::string& compressed, Slot& slot) {
    // The frame's tar entries are walked on their own too, as a sync walks them
    // (UnpackFrames): what publish accepts, every agent accepts.
    TarFrameWalk walk(index_, number);
    ZSTD_DCtx_reset(dctx_.get(), ZSTD_reset_session_only);
    ZSTD_outBuffer out{slot.raw.data(), slot.raw.size(), 0};
    ZSTD_inBuffer in{compressed.data(), 0, 0};
    size_t left = 1;
    while (left != 0) {
      size_t before_in = in.pos, before_out = out.pos;
      in.size = std::min(compressed.size(), in.size + kInputSlice);
      left = ZSTD_decompressStream(dctx_.get(), &out, &in);
      if (ZSTD_isError(left) || (left != 0 && in.pos == compressed.size() && in.pos == before_in &&
                                 out.pos == before_out))
        return FrameDecodesWrong(index_, number);
      WHARF_TRY(walk.Feed(slot.raw.data() + before_out, out.pos - before_out));
      {
        std::lock_guard lock(mutex_);
        slot.decoded = out.pos;
      }
      changed_.notify_all();
    }
    if (out.pos != slot.raw.size() || in.pos != compressed.size()) return FrameDecodesWrong(index_, number);
    return walk.Finish();
  }

  const PackageIndex& index_;
  int fd_;
  ZstdDctx dctx_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Slot> slots_;
  std::deque<Slot*> free_;      // buffers the worker may fill
  std::deque<Slot*> decoding_;  // frames in order, being decoded or handed out
  uint64_t handed_ = 0;         // bytes of the front frame handed out so far
  bool done_ = false;
  bool stop_ = false;
};

la_ssize_t ReadFrame(archive* a, void* client, const void** buffer) {
  auto* source = static_cast<FrameSource*>(client);
  auto frame = source->Next();
  if (!frame) {
    source->error = frame.error();
    archive_set_error(a, EIO, "%s", frame.error().message.c_str());
    return -1;
  }
  *buffer = frame->data();
  return static_cast<la_ssize_t>(frame->size());
}

std::string Quoted(const char* text) { return "\"" + std::string(text ? text : "") + "\""; }

// Is this tar header exactly the index's next entry?
Status MatchHeader(archive_entry* entry, const FileEntry& want, const PackageIndex& index) {
  const char* name = archive_entry_pathname(entry);
  std::string path = name ? name : "";
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  auto unsafe = [&](const std::string& why) {
    return Fail(ErrorCode::kUnsafe, index.archive + ": entry " + Quoted(path.c_str()) + " " + why +
                                        "; the archive is hostile or broken, republish it");
  };
  if (path != want.path) return unsafe("is not the next entry of package.json (\"" + want.path + "\")");
  if (archive_entry_hardlink(entry) != nullptr) return unsafe("is a hard link");
  auto type = archive_entry_filetype(entry);
  EntryType got = type == AE_IFREG ? EntryType::kFile
                  : type == AE_IFDIR ? EntryType::kDirectory
                  : type == AE_IFLNK ? EntryType::kSymlink
                                     : EntryType(-1);
  if (got != want.type)
    return unsafe(type == AE_IFREG || type == AE_IFDIR || type == AE_IFLNK
                      ? std::string("has another type than package.json says")
                      : std::string("is a device, fifo or socket"));
  if ((archive_entry_perm(entry) & 07777) != want.mode) return unsafe("has another mode than package.json says");
  if (got == EntryType::kFile && archive_entry_size(entry) != static_cast<la_int64_t>(want.size))
    return Fail(ErrorCode::kCorrupt, index.archive + ": entry " + Quoted(path.c_str()) + " holds " +
                                         std::to_string(archive_entry_size(entry)) + " bytes, not the " +
                                         std::to_string(want.size) + " declared; republish");
  if (got == EntryType::kSymlink && Quoted(archive_entry_symlink(entry)) != Quoted(want.link.c_str()))
    return unsafe("links elsewhere than package.json says");
  return {};
}

Status CheckFrameOf(archive* a, const FileEntry& want, const PackageIndex& index) {
  auto position = static_cast<uint64_t>(archive_read_header_position(a));
  const Frame& frame = index.frames[want.frame];
  if (position < frame.raw_offset || position >= frame.raw_offset + frame.raw_size)
    return Fail(ErrorCode::kCorrupt, index.archive + ": entry \"" + want.path +
                                         "\" is not in the frame package.json says; republish");
  return {};
}

Status ReadFileData(archive* a, const FileEntry& want, const PackageIndex& index, EntrySink& sink,
                    FileHashes files) {
  WHARF_TRY(sink.BeginFile(want));
  bool check = files == FileHashes::kCheck;
  Sha256 hash;
  uint64_t total = 0;
  const void* block;
  size_t size;
  la_int64_t offset;
  int r;
  while ((r = archive_read_data_block(a, &block, &size, &offset)) == ARCHIVE_OK) {
    if (static_cast<uint64_t>(offset) != total || total + size > want.size)
      return Fail(ErrorCode::kCorrupt, index.archive + ": entry \"" + want.path +
                                           "\" holds more or other data than declared; republish");
    if (check) hash.Update(block, size);
    WHARF_TRY(sink.FileData(block, size));
    total += size;
  }
  if (r != ARCHIVE_EOF)
    return Fail(ErrorCode::kCorrupt, index.archive + ": entry \"" + want.path + "\": " +
                                         (archive_error_string(a) ? archive_error_string(a) : "unreadable"));
  if (total != want.size || (check && hash.HexDigest() != want.sha256))
    return Fail(ErrorCode::kCorrupt, index.archive + ": entry \"" + want.path +
                                         "\" sha256 differs from package.json; republish");
  return sink.EndFile();
}

class DiscardSink : public EntrySink {
 public:
  Status Directory(const FileEntry&) override { return {}; }
  Status Symlink(const FileEntry&) override { return {}; }
  Status BeginFile(const FileEntry&) override { return {}; }
  Status FileData(const void*, size_t) override { return {}; }
  Status EndFile() override { return {}; }
};

}  // namespace

Status CheckFrame(const PackageIndex& index, size_t number, std::string_view compressed) {
  const Frame& frame = index.frames[number];
  std::string what = index.archive + " frame " + std::to_string(number);
  if (compressed.size() != frame.size || Sha256Hex(compressed) != frame.sha256)
    return Fail(ErrorCode::kCorrupt, what + ": sha256 differs from package.json (a flipped byte?); "
                                            "fetch or republish the archive");
  unsigned long long declared = ZSTD_getFrameContentSize(compressed.data(), compressed.size());
  if (declared != frame.raw_size ||
      ZSTD_findFrameCompressedSize(compressed.data(), compressed.size()) != frame.size)
    return Fail(ErrorCode::kCorrupt, what + ": not one zstd frame of the declared sizes; republish");
  ZSTD_frameHeader header;
  if (index.zstd_window_log != 0 &&
      (ZSTD_getFrameHeader(&header, compressed.data(), compressed.size()) != 0 ||
       header.windowSize > (uint64_t{1} << index.zstd_window_log)))
    return Fail(ErrorCode::kCorrupt, what + ": needs a wider zstd window than package.json's zstd_window_log " +
                                         std::to_string(index.zstd_window_log) + "; republish");
  return {};
}

Status ReadFrameAt(int fd, const PackageIndex& index, size_t number, std::string& compressed) {
  const Frame& frame = index.frames[number];
  compressed.resize(frame.size);
  if (::pread(fd, compressed.data(), frame.size, static_cast<off_t>(frame.offset)) != static_cast<ssize_t>(frame.size))
    return Fail(ErrorCode::kCorrupt, index.archive + " frame " + std::to_string(number) +
                                         ": archive is shorter than its index says; fetch it again");
  return {};
}

Status FrameDecodesWrong(const PackageIndex& index, size_t number) {
  return Fail(ErrorCode::kCorrupt, index.archive + " frame " + std::to_string(number) +
                                       ": does not decompress to its declared size; republish");
}

Status DecodeFrame(const PackageIndex& index, size_t number, std::string_view compressed,
                   std::string& raw) {
  WHARF_TRY(CheckFrame(index, number, compressed));
  raw.resize(index.frames[number].raw_size);
  size_t got = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(got) || got != raw.size()) return FrameDecodesWrong(index, number);
  return {};
}

Result<std::unique_ptr<TreeWriter>> TreeWriter::Create(const std::string& dest, const std::string& prefix) {
  if (::mkdir(dest.c_str(), 0700) != 0) return IoError("create folder", dest);
  UniqueFd fd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return IoError("open", dest);
  return std::unique_ptr<TreeWriter>(new TreeWriter(std::move(fd), dest, prefix));
}

TreeWriter::TreeWriter(UniqueFd dest, std::string dest_path, const std::string& prefix)
    : dest_(std::move(dest)), dest_path_(std::move(dest_path)), prefix_(prefix.substr(1)) {}

TreeWriter::~TreeWriter() { StopPreparing(); }

void TreeWriter::Prepare(const PackageIndex& index) {
  plan_ = &index;
  open_.resize(index.files.size());
  struct rlimit files;  // a quarter of the descriptors this process may have, at most
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY)
    open_most_ = std::min<size_t>(kOpenAhead, static_cast<size_t>(files.rlim_cur / 4));
  preparer_ = std::thread([this] {
    ParentDir parent;
    for (size_t i = 0; i < plan_->files.size(); ++i) {
      const FileEntry& e = plan_->files[i];
      auto made = Create(e, parent);
      // An empty file is complete as made; the others wait open for their bytes.
      if (made && made->valid() && e.size == 0) {
        if (auto sealed = Filled(made->get(), e); !sealed) made = std::unexpected(sealed.error());
        else *made = UniqueFd();
      }
      std::lock_guard lock(prepare_mutex_);
      if (!made) prepare_error_ = made.error();
      if (!made || prepare_stop_) break;
      if (made->valid() && open_ahead_ < open_most_) {  // else closed, and opened again when taken
        open_[i] = std::move(*made);
        ++open_ahead_;
      }
      ++prepared_;
      prepared_changed_.notify_all();
    }
    std::lock_guard lock(prepare_mutex_);
    prepare_stop_ = true;
    prepared_changed_.notify_all();
  });
}

void TreeWriter::StopPreparing() {
  if (!preparer_.joinable()) return;
  {
    std::lock_guard lock(prepare_mutex_);
    prepare_stop_ = true;
  }
  prepared_changed_.notify_all();
  preparer_.join();
}

Result<UniqueFd> TreeWriter::TakeFile(const FileEntry& e) {
  if (!plan_) return Fail(ErrorCode::kInvalidArgument, e.path + ": the tree is not prepared");
  const FileEntry* first = plan_->files.data();
  std::less<const FileEntry*> before;
  if (before(&e, first) || !before(&e, first + plan_->files.size()) || e.type != EntryType::kFile)
    return Fail(ErrorCode::kInvalidArgument, e.path + ": not a file of the prepared index");
  size_t i = static_cast<size_t>(&e - first);
  {
    std::unique_lock lock(prepare_mutex_);
    prepared_changed_.wait(lock, [&] { return prepared_ > i || prepare_stop_; });
    if (prepared_ <= i) {
      if (prepare_error_) return std::unexpected(*prepare_error_);
      return Fail(ErrorCode::kIo, Where(Relative(e.path)) + " was not created");
    }
    if (open_[i].valid()) {
      --open_ahead_;
      return std::move(open_[i]);
    }
  }
  // Closed by the preparer, or taken already for another piece: opened again (in this
  // private folder, O_NOFOLLOW all the same).
  std::string rel = Relative(e.path);
  auto parent = OpenParent(rel);
  if (!parent) return std::unexpected(parent.error());
  UniqueFd fd(::openat(parent->get(), Basename(rel).c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return IoError("open", Where(rel));
  return fd;
}

Status TreeWriter::Filled(int fd, const FileEntry& e) { return Seal(fd, e.mode, Where(Relative(e.path))); }

Status TreeWriter::Seal(int fd, uint32_t mode, const std::string& path) {
  if (::fchmod(fd, mode & 0555) != 0) return IoError("chmod", path);
  // The disk starts on this file now, while the next ones are decoded: the sync before the
  // switch then waits for little. A hint only; a file system without it syncs it all later.
  ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  return {};
}

Status TreeWriter::WaitAllPrepared() {
  if (!plan_) return {};
  std::unique_lock lock(prepare_mutex_);
  prepared_changed_.wait(lock, [&] { return prepared_ == plan_->files.size() || prepare_stop_; });
  if (prepared_ == plan_->files.size()) return {};
  if (prepare_error_) return std::unexpected(*prepare_error_);
  return Fail(ErrorCode::kIo, dest_path_ + ": not all entries were created");
}

Result<UniqueFd> TreeWriter::Create(const FileEntry& e, ParentDir& parent) {
  std::string rel = Relative(e.path);
  if (rel.empty()) return UniqueFd();  // dest itself
  std::string dir = Dirname(rel);
  if (!parent.fd.valid() || parent.rel != dir) {
    auto opened = OpenParent(rel);
    if (!opened) return std::unexpected(opened.error());
    parent = {dir, std::move(*opened)};
  }
  int parent_fd = parent.fd.get();
  std::string name = Basename(rel);
  switch (e.type) {
    case EntryType::kDirectory:
      if (::mkdirat(parent_fd, name.c_str(), 0700) != 0) return IoError("create folder", Where(rel));
      return UniqueFd();
    case EntryType::kSymlink:
      if (::symlinkat(e.link.c_str(), parent_fd, name.c_str()) != 0) return IoError("create link", Where(rel));
      return UniqueFd();
    case EntryType::kFile: {
      UniqueFd fd(::openat(parent_fd, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd.valid()) return IoError("create", Where(rel));
      return fd;
    }
  }
  return UniqueFd();
}

Status TreeWriter::Directory(const FileEntry& e) {
  WHARF_TRY(Created(e));
  folders_.push_back({Relative(e.path), e.mode});
  return {};
}

Status TreeWriter::Symlink(const FileEntry& e) { return Created(e); }

Status TreeWriter::Created(const FileEntry& e) {
  if (plan_) return Fail(ErrorCode::kInvalidArgument, e.path + ": a prepared tree makes its own entries");
  auto made = Create(e, parent_);
  if (!made) return std::unexpected(made.error());
  return {};
}

Status TreeWriter::BeginFile(const FileEntry& e) {
  if (plan_) return Fail(ErrorCode::kInvalidArgument, e.path + ": a prepared tree makes its own entries");
  auto made = Create(e, parent_);
  if (!made) return std::unexpected(made.error());
  file_ = std::move(*made);
  file_path_ = Where(Relative(e.path));
  file_mode_ = e.mode;
  return {};
}

Status TreeWriter::FileData(const void* data, size_t size) {
  return WriteAll(file_.get(), data, size, file_path_);
}

Status TreeWriter::EndFile() {
  WHARF_TRY(Seal(file_.get(), file_mode_, file_path_));
  file_ = UniqueFd();
  return {};
}

Status TreeWriter::LinkFile(const FileEntry& e, const std::string& source) {
  if (plan_) return Fail(ErrorCode::kInvalidArgument, e.path + ": a prepared tree is not linked into");
  struct stat st;
  if (::lstat(source.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 07777) != (e.mode & 0555) ||
      static_cast<uint64_t>(st.st_size) != e.size)
    return Fail(ErrorCode::kUnsupported, source + ": not linkable here");
  std::string rel = Relative(e.path);
  auto parent = OpenParent(rel);
  if (!parent) return std::unexpected(parent.error());
  if (::linkat(AT_FDCWD, source.c_str(), parent->get(), Basename(rel).c_str(), 0) != 0) {
    if (errno == EXDEV || errno == EMLINK || errno == EPERM || errno == ENOTSUP)
      return Fail(ErrorCode::kUnsupported, source + ": cannot be linked here");
    return IoError("link", Where(rel));
  }
  return {};
}

Status TreeWriter::Finish() {
  StopPreparing();
  if (plan_)
    for (const auto& e : plan_->files)
      if (e.type == EntryType::kDirectory) folders_.push_back({Relative(e.path), e.mode});
  std::sort(folders_.begin(), folders_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [rel, mode] : folders_) {
    unsigned m = (mode & 0555) | 0500;
    int r = rel.empty() ? ::fchmod(dest_.get(), m) : ::fchmodat(dest_.get(), rel.c_str(), m, 0);
    if (r != 0) return IoError("chmod", Where(rel));
  }
  if (::syncfs(dest_.get()) != 0) return IoError("sync", dest_path_);
  return {};
}

std::string TreeWriter::Relative(const std::string& path) const {
  return path.size() == prefix_.size() ? "" : path.substr(prefix_.size() + 1);
}

std::string TreeWriter::Where(const std::string& rel) const { return JoinPath(dest_path_, rel); }

Result<UniqueFd> TreeWriter::OpenParent(const std::string& rel) {
  return OpenParentNoFollow(dest_.get(), rel, dest_path_);
}

namespace {

// The tar stream of the source's frames, entry by entry against the index, into the sink.
Status ReadTar(FrameSource& source, const PackageIndex& index, EntrySink& sink, FileHashes files);

// ReadTar, with the frame source's own error (a frame's check or walk) when it has one:
// libarchive only passes on its words.
Status ReadEntries(FrameSource& source, const PackageIndex& index, EntrySink& sink, FileHashes files) {
  Status status = ReadTar(source, index, sink, files);
  if (!status && source.error) return std::unexpected(*source.error);
  return status;
}

Status ReadTar(FrameSource& source, const PackageIndex& index, EntrySink& sink, FileHashes files) {
  ScopedUtf8Locale utf8;
  ArchiveReader tar(archive_read_new());
  archive_read_support_format_tar(tar.get());
  if (archive_read_open(tar.get(), &source, nullptr, ReadFrame, nullptr) != ARCHIVE_OK)
    return Fail(ErrorCode::kCorrupt, index.archive + ": not a tar stream; republish");
  size_t next = 0;
  archive_entry* entry;
  int r;
  while ((r = archive_read_next_header(tar.get(), &entry)) == ARCHIVE_OK) {
    if (next == index.files.size())
      return Fail(ErrorCode::kUnsafe, index.archive + ": entry " + Quoted(archive_entry_pathname(entry)) +
                                          " is not in package.json; the archive is hostile or broken");
    const FileEntry& want = index.files[next++];
    WHARF_TRY(MatchHeader(entry, want, index));
    WHARF_TRY(CheckFrameOf(tar.get(), want, index));
    switch (want.type) {
      case EntryType::kDirectory: WHARF_TRY(sink.Directory(want)); break;
      case EntryType::kSymlink: WHARF_TRY(sink.Symlink(want)); break;
      case EntryType::kFile: WHARF_TRY(ReadFileData(tar.get(), want, index, sink, files)); break;
    }
  }
  if (r != ARCHIVE_EOF)
    return Fail(ErrorCode::kCorrupt, index.archive + ": " +
                                         (archive_error_string(tar.get()) ? archive_error_string(tar.get())
                                                                          : "unreadable tar") + "; republish");
  if (next != index.files.size())
    return Fail(ErrorCode::kCorrupt, index.archive + ": ends before entry \"" + index.files[next].path +
                                         "\" of package.json; republish");
  // libarchive stops at the end marker; the frames after it are still checked.
  return source.Finish();
}

}  // namespace

Status ReadArchive(const std::string& archive_path, const PackageIndex& index, EntrySink& sink,
                   FileHashes files) {
  auto fd = OpenRead(archive_path);
  if (!fd) return std::unexpected(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return IoError("inspect", archive_path);
  if (static_cast<uint64_t>(st.st_size) != index.archive_size)
    return Fail(ErrorCode::kCorrupt, archive_path + " is " + std::to_string(st.st_size) +
                                         " bytes, package.json says " + std::to_string(index.archive_size) +
                                         "; fetch or republish it");
  FrameSource source(index, fd->get());
  return ReadEntries(source, index, sink, files);
}

Status VerifyArchive(const std::string& archive_path, const PackageIndex& index) {
  DiscardSink sink;
  return ReadArchive(archive_path, index, sink);
}

Status ExtractArchive(const std::string& archive_path, const PackageIndex& index,
                      const std::string& dest, FileHashes files) {
  auto writer = TreeWriter::Create(dest, index.prefix);
  if (!writer) return std::unexpected(writer.error());
  WHARF_TRY(ReadArchive(archive_path, index, **writer, files));
  return (*writer)->Finish();
}

BytePipe::BytePipe(size_t capacity) : ring_(capacity) {}

bool BytePipe::Write(const char* data, size_t size) {
  std::unique_lock lock(mutex_);
  while (size > 0) {
    changed_.wait(lock, [&] { return stopped_ || used_ < ring_.size(); });
    if (stopped_) return false;
    size_t at = (start_ + used_) % ring_.size();
    size_t n = std::min({size, ring_.size() - used_, ring_.size() - at});
    std::memcpy(ring_.data() + at, data, n);
    used_ += n;
    data += n;
    size -= n;
    changed_.notify_all();
  }
  return true;
}

void BytePipe::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

bool BytePipe::Read(char* out, size_t size) {
  std::unique_lock lock(mutex_);
  while (size > 0) {
    changed_.wait(lock, [&] { return stopped_ || closed_ || used_ > 0; });
    if (stopped_ || used_ == 0) return false;
    size_t n = std::min({size, used_, ring_.size() - start_});
    std::memcpy(out, ring_.data() + start_, n);
    start_ = (start_ + n) % ring_.size();
    used_ -= n;
    out += n;
    size -= n;
    changed_.notify_all();
  }
  return true;
}

void BytePipe::Stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  changed_.notify_all();
}

}  // namespace wharf
