#include "archive/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive/zstd_handles.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <vector>

#include "archive/archive_handles.h"
#include "archive/names.h"
#include "archive/utf8_locale.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// One thing to pack, found by walking the tree.
struct Source {
  std::string disk_path;  // on this machine
  std::string path;       // in the archive, relative to "/"
  struct stat st;
};

Status Walk(const std::string& disk_dir, const std::string& archive_dir, std::vector<Source>& out) {
  auto names = ListDir(disk_dir);
  if (!names) return std::unexpected(names.error());
  for (const auto& name : *names) {
    Source s{JoinPath(disk_dir, name), archive_dir + "/" + name, {}};
    if (::lstat(s.disk_path.c_str(), &s.st) != 0) return IoError("inspect", s.disk_path);
    if (!S_ISREG(s.st.st_mode) && !S_ISDIR(s.st.st_mode) && !S_ISLNK(s.st.st_mode))
      return Fail(ErrorCode::kInvalidArgument,
                  s.disk_path + " is a device, fifo or socket, which a package cannot hold; "
                                "remove it from the tree (create it at boot from an init script)");
    if (!IsValidUtf8(s.path))
      return Fail(ErrorCode::kInvalidArgument, s.disk_path + ": the name is not UTF-8; rename it "
                                                             "(package indexes are JSON, UTF-8 only)");
    WHARF_TRY(ValidateEntryPath(s.path));
    bool is_dir = S_ISDIR(s.st.st_mode);
    out.push_back(std::move(s));
    if (is_dir) {
      // Copies: `out` may reallocate under a reference while the walk goes on.
      std::string sub_disk = out.back().disk_path, sub_path = out.back().path;
      WHARF_TRY(Walk(sub_disk, sub_path, out));
    }
  }
  return {};
}

// Cuts the tar stream into frames, compresses them in parallel, writes them in order.
class FrameWriter {
 public:
  FrameWriter(int fd, std::string path, const PackOptions& options, PackageIndex& index)
      : fd_(fd), path_(std::move(path)), options_(options), index_(index) {
    threads_ = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  }

  std::string& buffer() { return buffer_; }
  uint32_t frame_in_progress() const { return static_cast<uint32_t>(index_.frames.size() + pending_.size()); }
  /// Where the next byte lands in the uncompressed tar stream.
  uint64_t raw_position() const { return raw_cut_ + buffer_.size(); }

  Status Cut() {
    if (buffer_.empty()) return {};
    raw_cut_ += buffer_.size();
    pending_.push_back(std::move(buffer_));
    buffer_.clear();
    if (pending_.size() >= 2 * threads_) return Flush();
    return {};
  }

  Status Flush() {
    std::vector<std::string> compressed(pending_.size());
    std::vector<std::thread> workers;
    std::vector<std::string> errors(threads_);
    for (unsigned t = 0; t < threads_; ++t)
      workers.emplace_back([&, t] {
        ZstdCctx cctx(ZSTD_createCCtx());
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, options_.level);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_windowLog, kPackWindowLog);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
        for (size_t i = t; i < pending_.size(); i += threads_) {
          std::string& out = compressed[i];
          out.resize(ZSTD_compressBound(pending_[i].size()));
          size_t n = ZSTD_compress2(cctx.get(), out.data(), out.size(), pending_[i].data(),
                                    pending_[i].size());
          if (ZSTD_isError(n)) errors[t] = ZSTD_getErrorName(n);
          else out.resize(n);
        }
      });
    for (auto& w : workers) w.join();
    for (const auto& e : errors)
      if (!e.empty()) return Fail(ErrorCode::kIo, "zstd compression failed: " + e);
    for (size_t i = 0; i < pending_.size(); ++i) {
      Frame frame{archive_size_, compressed[i].size(), raw_size_, pending_[i].size(),
                  Sha256Hex(compressed[i])};
      WHARF_TRY(WriteAll(fd_, compressed[i].data(), compressed[i].size(), path_));
      archive_hash_.Update(compressed[i]);
      archive_size_ += frame.size;
      raw_size_ += frame.raw_size;
      index_.frames.push_back(std::move(frame));
      if (options_.progress) options_.progress(raw_size_, total_);
    }
    pending_.clear();
    return {};
  }

  void set_total(uint64_t total) { total_ = total; }
  void Finish() {
    index_.archive_size = archive_size_;
    index_.raw_size = raw_size_;
    index_.archive_sha256 = archive_hash_.HexDigest();
  }

 private:
  int fd_;
  std::string path_;
  const PackOptions& options_;
  PackageIndex& index_;
  unsigned threads_ = 1;
  std::string buffer_;
  std::vector<std::string> pending_;
  uint64_t archive_size_ = 0, raw_size_ = 0, raw_cut_ = 0, total_ = 0;
  Sha256 archive_hash_;
};

la_ssize_t AppendToFrame(archive*, void* client, const void* data, size_t size) {
  static_cast<FrameWriter*>(client)->buffer().append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

class Packer {
 public:
  Packer(const PackOptions& options, FrameWriter& frames, PackageIndex& index)
      : options_(options), frames_(frames), index_(index), tar_(archive_write_new()) {}

  Status Open() {
    archive_write_set_format_pax_restricted(tar_.get());
    // No blocking: bytes reach AppendToFrame as they are produced, so frames can be cut
    // exactly at entry boundaries. The end-of-archive blocks are not padded further.
    archive_write_set_bytes_per_block(tar_.get(), 0);
    archive_write_set_bytes_in_last_block(tar_.get(), 1);
    if (archive_write_open(tar_.get(), &frames_, nullptr, AppendToFrame, nullptr) != ARCHIVE_OK)
      return TarError("open");
    return {};
  }

  Status Add(const Source& s) {
    FileEntry entry;
    entry.path = s.path;
    entry.mode = s.st.st_mode & 07777;
    ArchiveEntry e(archive_entry_new());
    archive_entry_set_pathname(e.get(), s.path.c_str());
    archive_entry_set_perm(e.get(), entry.mode);
    archive_entry_set_mtime(e.get(), options_.keep_mtimes ? s.st.st_mtime : 0, 0);
    if (options_.keep_owners) {
      archive_entry_set_uid(e.get(), s.st.st_uid);
      archive_entry_set_gid(e.get(), s.st.st_gid);
    }
    bool big = S_ISREG(s.st.st_mode) && static_cast<uint64_t>(s.st.st_size) > options_.frame_size;
    // A big file starts its own frames; a small one starts a new frame rather than make
    // the current one overflow its target.
    uint64_t size = S_ISREG(s.st.st_mode) ? s.st.st_size : 0;
    if (big || frames_.buffer().size() + size + 1024 > options_.frame_size) WHARF_TRY(frames_.Cut());
    if (S_ISDIR(s.st.st_mode)) {
      entry.type = EntryType::kDirectory;
      archive_entry_set_filetype(e.get(), AE_IFDIR);
    } else if (S_ISLNK(s.st.st_mode)) {
      entry.type = EntryType::kSymlink;
      auto target = ReadLink(s.disk_path);
      if (!target) return std::unexpected(target.error());
      entry.link = *target;
      if (!IsValidUtf8(entry.link) || !SymlinkStaysInside(s.path, entry.link, options_.prefix))
        return Fail(ErrorCode::kInvalidArgument,
                    s.disk_path + " links to \"" + entry.link + "\", outside the package (prefix " +
                        options_.prefix + "); a FEC refuses such links: make it point inside the "
                        "tree, or create it at boot from an init script");
      archive_entry_set_filetype(e.get(), AE_IFLNK);
      archive_entry_set_symlink(e.get(), entry.link.c_str());
    } else {
      entry.type = EntryType::kFile;
      entry.size = s.st.st_size;
      archive_entry_set_filetype(e.get(), AE_IFREG);
      archive_entry_set_size(e.get(), s.st.st_size);
    }
    entry.frame = frames_.frame_in_progress();
    if (archive_write_header(tar_.get(), e.get()) != ARCHIVE_OK) return TarError(s.path);
    if (entry.type == EntryType::kFile) {
      entry.data_offset = frames_.raw_position();
      WHARF_TRY(CopyData(s, entry, big));
    }
    if (archive_write_finish_entry(tar_.get()) != ARCHIVE_OK) return TarError(s.path);
    index_.files.push_back(std::move(entry));
    if (big || frames_.buffer().size() >= options_.frame_size) WHARF_TRY(frames_.Cut());
    return {};
  }

  Status Close() {
    if (archive_write_close(tar_.get()) != ARCHIVE_OK) return TarError("close");
    WHARF_TRY(frames_.Cut());
    return frames_.Flush();
  }

 private:
  // Streams the file's bytes; a big file is cut every frame_size bytes of its data, so an
  // in-place change of it costs one frame.
  Status CopyData(const Source& s, FileEntry& entry, bool big) {
    auto fd = OpenRead(s.disk_path);
    if (!fd) return std::unexpected(fd.error());
    Sha256 hash;
    std::string chunk(std::min<uint64_t>(options_.frame_size, 1u << 20), '\0');
    uint64_t done = 0, in_frame = 0;
    for (;;) {
      size_t want = chunk.size();
      if (big) want = std::min<uint64_t>(want, options_.frame_size - in_frame);
      ssize_t n = ::read(fd->get(), chunk.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return IoError("read", s.disk_path);
      if (n == 0) break;
      if (done + n > entry.size) break;  // grew while packing: caught below
      hash.Update(chunk.data(), n);
      if (archive_write_data(tar_.get(), chunk.data(), n) != n) return TarError(s.path);
      done += n;
      in_frame += n;
      if (big && in_frame == options_.frame_size && done < entry.size) {
        WHARF_TRY(frames_.Cut());
        in_frame = 0;
      }
    }
    if (done != entry.size)
      return Fail(ErrorCode::kIo, s.disk_path + " changed size while it was packed; pack again "
                                                "once the build has finished");
    entry.sha256 = hash.HexDigest();
    return {};
  }

  std::unexpected<Error> TarError(const std::string& what) {
    const char* text = archive_error_string(tar_.get());
    return Fail(ErrorCode::kIo, "writing tar entry " + what + ": " + (text ? text : "unknown error"));
  }

  const PackOptions& options_;
  FrameWriter& frames_;
  PackageIndex& index_;
  ArchiveWriter tar_;
};

Status CheckOptions(const std::string& dir, const PackOptions& options) {
  WHARF_TRY(ValidatePackageName(options.name));
  WHARF_TRY(ValidateVersion(options.version));
  WHARF_TRY(ValidatePrefix(options.prefix));
  if (options.level < 1 || options.level > 22)
    return Fail(ErrorCode::kInvalidArgument, "zstd level must be 1 to 22");
  if (options.frame_size < 4096 || options.frame_size > kMaxFrameRawSize * 3 / 4)
    return Fail(ErrorCode::kInvalidArgument, "frame size must be 4 KiB to 12 MiB");
  if (!IsDirectory(dir))
    return Fail(ErrorCode::kNotFound, dir + " is not a folder; pack the folder whose contents "
                                            "install under the prefix");
  return {};
}

}  // namespace

Result<PackResult> PackTree(const std::string& dir, const PackOptions& options) {
  WHARF_TRY(CheckOptions(dir, options));
  ScopedUtf8Locale utf8;
  std::string root_path = options.prefix.substr(1);
  std::vector<Source> sources{{dir, root_path, {}}};
  if (::stat(dir.c_str(), &sources[0].st) != 0) return IoError("inspect", dir);
  WHARF_TRY(Walk(dir, root_path, sources));

  PackResult result;
  PackageIndex& index = result.index;
  index.name = options.name;
  index.version = options.version;
  index.prefix = options.prefix;
  index.archive = options.name + "-" + options.version + ".tar.zst";
  index.zstd_level = options.level;
  index.zstd_window_log = kPackWindowLog;
  index.services = options.services;
  index.configuration = options.configuration;
  index.fec = options.fec;
  index.matches = options.matches;
  WHARF_TRY(MakeDirs(options.out_dir));
  result.archive_path = JoinPath(options.out_dir, index.archive);
  result.index_path = JoinPath(options.out_dir, options.name + "-" + options.version + ".package.json");
  std::string temp = TempSibling(result.archive_path);
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return IoError("create", temp);

  FrameWriter frames(fd.get(), temp, options, index);
  uint64_t total = 0;
  for (const auto& s : sources) total += S_ISREG(s.st.st_mode) ? s.st.st_size : 0;
  frames.set_total(total);
  Packer packer(options, frames, index);
  Status packed = packer.Open();
  for (size_t i = 0; packed && i < sources.size(); ++i) packed = packer.Add(sources[i]);
  if (packed) packed = packer.Close();
  if (packed && ::fsync(fd.get()) != 0) packed = IoError("fsync", temp);
  if (!packed) {
    ::unlink(temp.c_str());
    return std::unexpected(packed.error());
  }
  frames.Finish();
  if (auto valid = ValidatePackageIndex(index); !valid) {
    ::unlink(temp.c_str());
    return std::unexpected(valid.error());
  }
  WHARF_TRY(RenameDurable(temp, result.archive_path));
  WHARF_TRY(WriteFileAtomic(result.index_path, PackageIndexToJson(index)));
  return result;
}

}  // namespace wharf
