#include "archive/delta.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "archive/zstd_handles.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>

#include "archive/frame_plan.h"
#include "archive/names.h"
#include "archive/reader.h"
#include "base/file.h"
#include "base/strings.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {


// A mapping of a whole file: read-only and private (a base), or read-write and shared
// (a target written in place, whose pages are the file's).
class MappedFile {
 public:
  ~MappedFile() {
    if (data_ != nullptr && data_ != MAP_FAILED) ::munmap(data_, size_);
  }
  Status Open(const std::string& path) {
    auto fd = OpenRead(path);
    if (!fd) return std::unexpected(fd.error());
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) return IoError("inspect", path);
    // On a 32-bit FEC a base past the address space cannot be mapped: say so rather than
    // map a truncated size (wharf makes no delta from a base over kMaxDeltaFileSize).
    if (static_cast<uint64_t>(st.st_size) > std::numeric_limits<size_t>::max() / 2)
      return Fail(ErrorCode::kUnsupported, path + ": too large to map as a delta base on this machine");
    return Map(fd->get(), static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, path);
  }
  Status OpenShared(int fd, size_t size, const std::string& path) {
    return Map(fd, size, PROT_READ | PROT_WRITE, MAP_SHARED, path);
  }
  const void* data() const { return size_ ? data_ : ""; }
  char* bytes() { return static_cast<char*>(data_); }
  size_t size() const { return size_; }
  /// Lets go of this process's view of the first `upto` bytes (whole pages): the file keeps
  /// them, and a page touched again is mapped back on the spot.
  void DropPages(uint64_t upto) {
    if (size_ > 0) ::madvise(data_, std::min<uint64_t>(upto, size_) / PageSize() * PageSize(), MADV_DONTNEED);
  }

 private:
  Status Map(int fd, size_t size, int protection, int flags, const std::string& path) {
    size_ = size;
    if (size_ == 0) return {};
    data_ = ::mmap(nullptr, size_, protection, flags, fd, 0);
    if (data_ == MAP_FAILED) return IoError("map", path);
    return {};
  }

  void* data_ = nullptr;
  size_t size_ = 0;
};

unsigned WindowLogFor(uint64_t size) {
  unsigned log = 10;
  while (log < 31 && (uint64_t{1} << log) < size) ++log;
  return log;
}

uint64_t FramesCost(const PackageIndex& index, size_t file) {
  uint64_t cost = 0;
  for (uint32_t n : FramesOfFiles(index, {file})) cost += index.frames[n].size;
  return cost;
}

}  // namespace

std::string DeltaIndexToJson(const std::vector<DeltaEntry>& deltas) {
  nlohmann::ordered_json j;
  j["format"] = 1;
  j["deltas"] = nlohmann::ordered_json::array();
  for (const auto& d : deltas) {
    nlohmann::ordered_json e{{"path", d.path}, {"base_sha256", d.base_sha256}, {"target_sha256", d.target_sha256}};
    if (d.file.empty()) {
      e["data"] = Base64Encode(d.data);
    } else {
      e["file"] = d.file;
    }
    e["size"] = d.size;
    e["sha256"] = d.sha256;
    j["deltas"].push_back(std::move(e));
  }
  return j.dump(1) + "\n";
}

namespace {

// deltas.json read as a stream of events (never a tree): {"format": 1, "deltas": [{...}, ...]},
// nothing nested deeper, each entry checked and handed to `keep` before its inline patch is
// decoded. Memory is what is kept, whatever the file holds.
class DeltaIndexReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  DeltaIndexReader(const std::function<bool(const DeltaEntry&)>& keep, size_t max_kept)
      : keep_(keep), max_kept_(max_kept) {}

  bool null() override { return Scalar(); }
  bool boolean(bool) override { return Scalar(); }
  // Every number of deltas.json is a size or a version: never negative, never a fraction.
  bool number_integer(number_integer_t) override { return Refuse("has a negative number"); }
  bool number_unsigned(number_unsigned_t n) override {
    if (depth_ == 3 && key_ == "size") {
      entry_.size = n;
      seen_ |= 1u << 4;
      return true;
    }
    return Scalar();
  }
  bool number_float(number_float_t, const string_t&) override { return Refuse("has a number that is not an integer"); }
  bool binary(binary_t&) override { return Refuse("holds binary data"); }
  bool string(string_t& value) override {
    if (depth_ != 3) return Scalar();
    static const std::pair<const char*, std::string DeltaEntry::*> kFields[] = {
        {"path", &DeltaEntry::path}, {"base_sha256", &DeltaEntry::base_sha256},
        {"target_sha256", &DeltaEntry::target_sha256}, {"sha256", &DeltaEntry::sha256},
        {"file", &DeltaEntry::file}, {"data", &DeltaEntry::data}};
    for (size_t i = 0; i < std::size(kFields); ++i)
      if (key_ == kFields[i].first) {
        entry_.*kFields[i].second = std::move(value);
        seen_ |= 1u << (i < 4 ? i : i + 1);  // size is bit 4
        return true;
      }
    return true;  // a field this agent does not know
  }
  bool start_object(std::size_t) override {
    ++depth_;
    if (depth_ == 1) return true;
    if (depth_ == 3 && in_deltas_) {
      entry_ = DeltaEntry{};
      seen_ = 0;
      return true;
    }
    return Refuse("is nested in a way it never is");
  }
  bool key(string_t& key) override {
    key_ = std::move(key);
    return true;
  }
  bool end_object() override {
    --depth_;
    return depth_ == 2 ? EndEntry() : true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    if (depth_ == 2 && key_ == "deltas" && !saw_deltas_) {
      in_deltas_ = saw_deltas_ = true;
      return true;
    }
    return Refuse("is nested in a way it never is");
  }
  bool end_array() override {
    --depth_;
    in_deltas_ = false;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    return Refuse(std::string("is not valid JSON (") + e.what() + ")");
  }

  Result<std::vector<DeltaEntry>> Take() {
    if (error_) return std::unexpected(*error_);
    if (!saw_deltas_) return Fail(ErrorCode::kCorrupt, "deltas.json has no \"deltas\" list; republish");
    return std::move(kept_);
  }

 private:
  // A field at the top ("format") or in an entry this agent does not know; nowhere else.
  bool Scalar() { return depth_ == 1 || depth_ == 3 || Refuse("lists a malformed delta"); }
  bool Refuse(const std::string& why) {
    if (!error_) error_ = Error{ErrorCode::kCorrupt, "deltas.json " + why + "; republish"};
    return false;
  }
  bool EndEntry() {
    DeltaEntry& e = entry_;
    bool has_file = seen_ & (1u << 5), has_data = seen_ & (1u << 6);
    bool inline_patch = !has_file;
    // path, base, target, sha256 and size always; then a file or inline data, never both.
    if ((seen_ & 0x1f) != 0x1f || has_file == has_data) return Refuse("lists a malformed delta");
    if (!inline_patch) {
      std::string name = e.file.substr(std::min<size_t>(7, e.file.size()));
      if (!e.file.starts_with("deltas/") || !ValidateEntryPath(e.file) || name.find('/') != std::string::npos)
        return Refuse("lists a malformed delta");
    } else if (e.size > kMaxInlineDelta) {
      return Refuse("lists a malformed delta");
    }
    if ((!e.base_sha256.empty() && !IsSha256Hex(e.base_sha256)) || !IsSha256Hex(e.target_sha256) ||
        !IsSha256Hex(e.sha256) || (e.path == kIndexDeltaPath && e.base_sha256.empty()))
      return Refuse("lists a malformed delta");
    if (keep_ && !keep_(e)) return true;
    if (inline_patch) {
      auto data = Base64Decode(e.data);
      if (!data || data->size() != e.size || Sha256Hex(*data) != e.sha256) return Refuse("lists a malformed delta");
      e.data = std::move(*data);
    }
    if (kept_.size() >= max_kept_) return Refuse("lists more usable deltas than the package has files");
    kept_.push_back(std::move(e));
    return true;
  }

  const std::function<bool(const DeltaEntry&)>& keep_;
  size_t max_kept_;
  int depth_ = 0;
  bool in_deltas_ = false, saw_deltas_ = false;
  std::string key_;
  DeltaEntry entry_;
  unsigned seen_ = 0;
  std::vector<DeltaEntry> kept_;
  std::optional<Error> error_;
};

// The JSON lexer holds a whole token (a string, a number) in memory: no token of a real
// deltas.json is longer than an inline patch in base64, so a longer one is refused before
// the lexer sees it. Fed the text piece by piece.
class TokenLengthCheck {
 public:
  bool Feed(std::string_view text) {
    for (char c : text) {
      if (in_string_) {
        if (escaped_) escaped_ = false;
        else if (c == '\\') escaped_ = true;
        else if (c == '"') in_string_ = false, run_ = 0;
      } else if (c == '"') {
        in_string_ = true;
        run_ = 0;
      } else if (std::strchr(",:{}[] \t\r\n", c) != nullptr) {
        run_ = 0;
      }
      if (++run_ > kMaxToken) return false;
    }
    return true;
  }

 private:
  static constexpr size_t kMaxToken = 4 * kMaxInlineDelta;  // base64 of the largest inline patch, with room
  bool in_string_ = false, escaped_ = false;
  size_t run_ = 0;
};

std::unexpected<Error> TokenTooLong() {
  return Fail(ErrorCode::kCorrupt, "deltas.json holds a string or number longer than any it ever has; republish");
}

}  // namespace

Result<std::vector<DeltaEntry>> ParseDeltaIndex(std::string_view json, const std::function<bool(const DeltaEntry&)>& keep,
                                                size_t max_kept) {
  if (json.size() > kMaxDeltaIndexBytes || !TokenLengthCheck().Feed(json)) return TokenTooLong();
  DeltaIndexReader reader(keep, max_kept);
  nlohmann::json::sax_parse(json, &reader);
  return reader.Take();
}

Result<std::vector<DeltaEntry>> ReadDeltaIndex(const std::string& path, const std::function<bool(const DeltaEntry&)>& keep,
                                               size_t max_kept) {
  {
    TokenLengthCheck check;
    bool fits = true;
    uint64_t total = 0;
    WHARF_TRY(ReadChunks(path, [&](const char* data, size_t size) -> Status {
      total += size;
      fits = fits && total <= kMaxDeltaIndexBytes && check.Feed({data, size});
      return {};
    }));
    if (!fits) return TokenTooLong();
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return IoError("open", path);
  DeltaIndexReader reader(keep, max_kept);
  nlohmann::json::sax_parse(file.get(), &reader);
  return reader.Take();
}

Result<std::string> ReadFileFromArchive(const std::string& archive_path, const PackageIndex& index,
                                        const FileEntry& entry) {
  auto fd = OpenRead(archive_path);
  if (!fd) return std::unexpected(fd.error());
  std::string out, compressed, raw;
  out.reserve(entry.size);
  size_t number = static_cast<size_t>(&entry - index.files.data());
  for (uint32_t n : FramesOfFiles(index, {number})) {
    const Frame& frame = index.frames[n];
    WHARF_TRY(ReadFrameAt(fd->get(), index, n, compressed));
    WHARF_TRY(DecodeFrame(index, n, compressed, raw));
    uint64_t from = std::max(entry.data_offset, frame.raw_offset);
    uint64_t to = std::min(entry.data_offset + entry.size, frame.raw_offset + frame.raw_size);
    out.append(raw, from - frame.raw_offset, to - from);
  }
  if (out.size() != entry.size || Sha256Hex(out) != entry.sha256)
    return Fail(ErrorCode::kCorrupt, archive_path + ": \"" + entry.path + "\" does not match its sha256");
  return out;
}

Result<std::string> MakeDelta(std::string_view base, std::string_view target, int level) {
  ZstdCctx cctx(ZSTD_createCCtx());
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_windowLog, WindowLogFor(base.size() + target.size()));
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_enableLongDistanceMatching, 1);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_refPrefix(cctx.get(), base.data(), base.size());
  std::string out(ZSTD_compressBound(target.size()), '\0');
  size_t n = ZSTD_compress2(cctx.get(), out.data(), out.size(), target.data(), target.size());
  if (ZSTD_isError(n)) return Fail(ErrorCode::kIo, std::string("zstd patch failed: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

namespace {

// A decoder of patches against `base` (mapped; may be empty) for targets up to `target_size`.
ZstdDctx PatchDecoder(const MappedFile& base, uint64_t target_size) {
  ZstdDctx dctx(ZSTD_createDCtx());
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, WindowLogFor(base.size() + target_size));
  ZSTD_DCtx_refPrefix(dctx.get(), base.data(), base.size());
  return dctx;
}

// The target rebuilt into the reserved and mapped file: bounded memory, but each page is
// faulted in (and zeroed) before it is written. kUnsupported, before a byte is written,
// where the file cannot be reserved or mapped.
Status ApplyDeltaInPlace(MappedFile& base, std::string_view delta, uint64_t size, int fd,
                         const std::string& path, const std::function<void(const char*, size_t)>& seen) {
  // Patch input is handed over this much at a time, so that each step decodes a few blocks
  // (at most 32 RLE blocks of 128 KiB), and the mappings are let go every kKeepMapped.
  constexpr size_t kSlice = 128;
  constexpr uint64_t kKeepMapped = 1u << 20;
  // Reserved first: a full disk is an error here, not a SIGBUS while writing the mapping.
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOSYS) return Fail(ErrorCode::kUnsupported, path + ": no fallocate here");
    return IoError("reserve space for", path);
  }
  // At most kMaxDeltaFileSize (the caller checks), so it fits a size_t on a 32-bit FEC too.
  if (size > kMaxDeltaFileSize) return Fail(ErrorCode::kUnsupported, path + ": too large to patch in place");
  const size_t mapped = static_cast<size_t>(size);
  MappedFile target;
  if (!target.OpenShared(fd, mapped, path)) return Fail(ErrorCode::kUnsupported, path + ": cannot be mapped");
  ZstdDctx dctx = PatchDecoder(base, size);
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_stableOutBuffer, 1);
  ZSTD_outBuffer out{target.bytes(), mapped, 0};
  ZSTD_inBuffer in{delta.data(), 0, 0};
  uint64_t dropped = 0;
  size_t left = 1;
  while (left != 0) {
    size_t before_in = in.pos, before_out = out.pos;
    in.size = std::min(delta.size(), in.size + kSlice);
    left = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(left))
      return Fail(ErrorCode::kCorrupt, ZSTD_getErrorCode(left) == ZSTD_error_dstSize_tooSmall
                                           ? std::string("delta produces more than the file's declared size")
                                           : std::string("delta does not apply: ") + ZSTD_getErrorName(left));
    if (left != 0 && in.pos == delta.size() && in.pos == before_in && out.pos == before_out)
      return Fail(ErrorCode::kCorrupt, "delta is truncated");
    seen(target.bytes() + before_out, out.pos - before_out);
    // Both files stay in the page cache; only this process's view of them is let go.
    if (out.pos - dropped >= kKeepMapped) {
      target.DropPages(out.pos);
      base.DropPages(base.size());
      dropped = out.pos;
    }
  }
  if (out.pos != size) return Fail(ErrorCode::kCorrupt, "delta produces fewer bytes than the file's declared size");
  return {};
}

// The target rebuilt in memory, in pieces: its window takes up to the file's size.
Status ApplyDeltaStreaming(const MappedFile& base, std::string_view delta, uint64_t max_size,
                           const std::function<Status(const char*, size_t)>& out) {
  ZstdDctx dctx = PatchDecoder(base, max_size);
  ZSTD_inBuffer in{delta.data(), delta.size(), 0};
  std::string buffer(ZSTD_DStreamOutSize(), '\0');
  uint64_t produced = 0;
  size_t left = 1;
  while (left != 0) {
    ZSTD_outBuffer piece{buffer.data(), buffer.size(), 0};
    left = ZSTD_decompressStream(dctx.get(), &piece, &in);
    if (ZSTD_isError(left)) return Fail(ErrorCode::kCorrupt, std::string("delta does not apply: ") + ZSTD_getErrorName(left));
    produced += piece.pos;
    if (produced > max_size) return Fail(ErrorCode::kCorrupt, "delta produces more than the file's declared size");
    if (piece.pos > 0) WHARF_TRY(out(buffer.data(), piece.pos));
    if (left != 0 && in.pos == in.size && piece.pos == 0)
      return Fail(ErrorCode::kCorrupt, "delta is truncated");
  }
  return {};
}

}  // namespace

Status ApplyDelta(const std::string& base_path, std::string_view delta, uint64_t max_size,
                  const std::function<Status(const char*, size_t)>& out) {
  MappedFile base;
  if (!base_path.empty()) WHARF_TRY(base.Open(base_path));
  return ApplyDeltaStreaming(base, delta, max_size, out);
}

Status ApplyDeltaToFile(const std::string& base_path, std::string_view delta, uint64_t size, int fd,
                        const std::string& path, const std::function<void(const char*, size_t)>& seen) {
  MappedFile base;
  if (!base_path.empty()) WHARF_TRY(base.Open(base_path));
  if (size > kPatchInPlaceSize && size <= kMaxDeltaFileSize) {
    Status in_place = ApplyDeltaInPlace(base, delta, size, fd, path, seen);
    if (in_place || in_place.error().code != ErrorCode::kUnsupported) return in_place;
  }
  uint64_t written = 0;
  WHARF_TRY(ApplyDeltaStreaming(base, delta, size, [&](const char* data, size_t n) -> Status {
    seen(data, n);
    written += n;
    return WriteAll(fd, data, n, path);
  }));
  if (written != size) return Fail(ErrorCode::kCorrupt, "delta produces fewer bytes than the file's declared size");
  return {};
}

Status WriteDeltas(const std::string& dir, const std::string& archive_path, const PackageIndex& index,
                   const std::string& index_json,
                   const std::vector<std::pair<std::string, PackageIndex>>& older, int level) {
  std::vector<DeltaEntry> deltas;
  auto add = [&](const std::string& path, const std::string& base_sha256, const std::string& target_sha256,
                 std::string patch) -> Status {
    DeltaEntry e{path, base_sha256, target_sha256, "", patch.size(), Sha256Hex(patch), ""};
    if (patch.size() <= kMaxInlineDelta) {
      e.data = std::move(patch);
    } else {
      e.file = "deltas/" + std::to_string(deltas.size()) + ".zst";
      WHARF_TRY(MakeDirs(JoinPath(dir, "deltas")));
      WHARF_TRY(WriteFileAtomic(JoinPath(dir, e.file), patch));
    }
    deltas.push_back(std::move(e));
    return {};
  };
  std::set<std::string> held;  // contents an agent on an older version reuses as they are
  for (const auto& [old_archive, old_index] : older)
    for (const auto& e : old_index.files)
      if (e.type == EntryType::kFile) held.insert(e.sha256);
  for (size_t i = 0; i < index.files.size(); ++i) {
    const FileEntry& f = index.files[i];
    if (f.type != EntryType::kFile || f.size == 0 || f.size > kMaxDeltaFileSize || held.count(f.sha256)) continue;
    uint64_t frames_cost = FramesCost(index, i);
    std::optional<std::string> target;
    auto target_bytes = [&]() -> Result<std::string*> {
      if (!target) {
        auto bytes = ReadFileFromArchive(archive_path, index, f);
        if (!bytes) return std::unexpected(bytes.error());
        target = std::move(*bytes);
      }
      return &*target;
    };
    for (const auto& [old_archive, old_index] : older) {
      auto base = std::find_if(old_index.files.begin(), old_index.files.end(),
                               [&](const FileEntry& e) { return e.path == f.path; });
      if (base == old_index.files.end() || base->type != EntryType::kFile || base->size > kMaxDeltaFileSize)
        continue;
      bool seen = std::any_of(deltas.begin(), deltas.end(), [&](const DeltaEntry& d) {
        return d.path == f.path && d.base_sha256 == base->sha256;
      });
      if (seen) continue;  // two older versions with the same content: one patch serves both
      auto bytes = target_bytes();
      if (!bytes) return std::unexpected(bytes.error());
      auto base_bytes = ReadFileFromArchive(old_archive, old_index, *base);
      if (!base_bytes) return std::unexpected(base_bytes.error());
      auto patch = MakeDelta(*base_bytes, **bytes, level);
      if (!patch) return std::unexpected(patch.error());
      if (patch->size() >= frames_cost) continue;  // no cheaper than the frames
      WHARF_TRY(add(f.path, base->sha256, f.sha256, std::move(*patch)));
    }
    // A new or changed small file shares a frame with files the agent holds already: on
    // its own, it costs its compressed size, not the whole frame.
    if (older.empty() || f.size * 2 > frames_cost * 3) continue;
    auto bytes = target_bytes();
    if (!bytes) return std::unexpected(bytes.error());
    auto alone = MakeDelta("", **bytes, level);
    if (!alone) return std::unexpected(alone.error());
    if (alone->size() * 2 < frames_cost) WHARF_TRY(add(f.path, "", f.sha256, std::move(*alone)));
  }
  // package.json changes little from one version to the next, and every update fetches it.
  std::string index_sha256 = Sha256Hex(index_json);
  for (const auto& [old_archive, old_index] : older) {
    auto old_json = ReadFile(JoinPath(Dirname(old_archive), "package.json"), 256u << 20);
    if (!old_json) continue;
    std::string base_sha256 = Sha256Hex(*old_json);
    bool seen = std::any_of(deltas.begin(), deltas.end(), [&](const DeltaEntry& d) {
      return d.path == kIndexDeltaPath && d.base_sha256 == base_sha256;
    });
    if (seen || base_sha256 == index_sha256) continue;
    auto patch = MakeDelta(*old_json, index_json, level);
    if (!patch) return std::unexpected(patch.error());
    if (patch->size() * 2 < index_json.size())
      WHARF_TRY(add(std::string(kIndexDeltaPath), base_sha256, index_sha256, std::move(*patch)));
  }
  if (deltas.empty()) return {};
  return WriteFileAtomic(JoinPath(dir, "deltas.json"), DeltaIndexToJson(deltas));
}

}  // namespace wharf
