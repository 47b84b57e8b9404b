#include "agent/install.h"

#include <thread>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "agent/abort_point.h"
#include "agent/drift.h"
#include "agent/progress.h"
#include "archive/delta.h"
#include "archive/frame_plan.h"
#include "archive/names.h"
#include "archive/reader.h"
#include "base/file.h"
#include "crypto/sha256.h"

namespace wharf {
namespace {

// Requests whose frames are closer than this are joined: a few wasted bytes beat a round trip.
constexpr uint64_t kRangeGap = 64 * 1024;

// Every file the FEC already holds, by sha256: from the index beside each unpacked package.
std::map<std::string, std::string> LocalFiles(const Layout& layout) {
  std::map<std::string, std::string> files;
  for (const auto& name : ListDir(layout.packages()).value_or(std::vector<std::string>{})) {
    std::string dir = JoinPath(layout.packages(), name);
    for (const auto& leaf : ListDir(dir).value_or(std::vector<std::string>{})) {
      if (leaf[0] == '.' || !leaf.ends_with(".package.json")) continue;
      std::string folder = JoinPath(dir, leaf.substr(0, leaf.size() - 13));
      auto json = ReadFile(JoinPath(dir, leaf), 256u << 20);
      if (!json || !IsDirectory(folder)) continue;
      auto index = ParsePackageIndex(*json);
      if (!index) continue;
      // A package changed by hand since its stamp was taken (drift.h) lends nothing: its
      // files would be linked unchecked. One without a stamp (older agents) still does.
      std::string stamp = JoinPath(dir, leaf.substr(0, leaf.size() - 13) + ".stamp");
      if (PathExists(stamp)) {
        auto recorded = ReadFile(stamp, 256);
        auto now = TreeStamp(folder);
        if (!recorded || !now || *recorded != *now + "\n") continue;
      }
      size_t strip = index->prefix.size();  // "/opt/x" is the entry "opt/x": same length + "/"
      for (const auto& f : index->files)
        if (f.type == EntryType::kFile && f.size > 0 && (f.mode & 0400))  // readable by the agent
          files.emplace(f.sha256, JoinPath(folder, f.path.substr(strip)));
    }
  }
  return files;
}

Status Commit(const Layout& layout, const PackageRef& ref, const std::string& staging,
              const std::string& index_json) {
  AbortPoint("unpacked:" + ref.name);
  WHARF_TRY(WriteFileAtomic(layout.package_index(ref), index_json, 0444));
  AbortPoint("index-saved:" + ref.name);
  WHARF_TRY(RenameDurable(staging, layout.package(ref)));
  AbortPoint("installed:" + ref.name);
  return {};
}

std::string Staging(const Layout& layout, const PackageRef& ref) {
  std::string final_dir = layout.package(ref);
  return JoinPath(Dirname(final_dir), "." + Basename(final_dir) + ".unpacking");
}

// Downloads the archive and unpacks it at the same time: a thread fetches it into a small
// pipe while a decoder per core (UnpackFrames) takes each frame as soon as its bytes are
// there. The archive is never written out (no working copy in tmp/, which on a diskless
// FEC would be RAM). The frames' sha256 (package.json pins them, the signed generation pins
// package.json) cover every byte of the archive, so neither the whole archive nor each file
// is hashed again (publish checked those); each frame's tar headers are still walked.
Status InstallWhole(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                    const PackageIndex& index, const std::string& index_json) {
  std::string staging = Staging(layout, ref);
  WHARF_TRY(mirrors.Try(ref.archive, [&](const std::string& url) -> Status {
    WHARF_TRY(RemoveTree(staging));
    WHARF_TRY(MakeDirs(Dirname(staging)));
    BytePipe pipe;
    Result<uint64_t> got = Fail(ErrorCode::kIo, "not fetched");
    bool reader_stopped = false;  // then the reader's error is the one to tell
    std::thread downloader([&] {
      bool announced = false;
      Progress progress(ref.name + "@" + ref.version, ref.archive_size);
      got = mirrors.fetcher().Stream(url, ref.archive_size, [&](const char* data, size_t size) -> Status {
        if (!announced) AbortPoint("downloading:" + Basename(ref.archive));
        announced = true;
        if (pipe.Write(data, size)) return {};
        reader_stopped = true;
        return Fail(ErrorCode::kCorrupt, url + ": the reader stopped");
      }, [&](uint64_t done) { progress.Update(done); });
      pipe.Close();
    });
    auto writer = TreeWriter::Create(staging, index.prefix);
    if (writer) (*writer)->Prepare(index);
    Status extracted = writer ? UnpackFrames(pipe, index, **writer, std::thread::hardware_concurrency())
                              : Status(std::unexpected(writer.error()));
    pipe.Stop();
    downloader.join();
    // The transfer's own error says most, unless the reader stopped it.
    if (!got && !reader_stopped) return std::unexpected(got.error());
    if (got && *got != ref.archive_size)
      return Fail(ErrorCode::kCorrupt, url + ": size differs from the signed generation; "
                                             "the store or a mirror was altered, republish");
    if (!extracted) return Prefix(ref.name + "@" + ref.version, extracted.error());
    if (!got) return std::unexpected(got.error());
    return (*writer)->Finish();
  }));
  AbortPoint("archive-fetched:" + ref.name);
  return Commit(layout, ref, staging, index_json);
}

// Decodes the frames of a sparse local copy of the archive, one at a time, in order.
class FrameReader {
 public:
  FrameReader(int fd, const PackageIndex& index) : fd_(fd), index_(index) {}

  Result<const std::string*> Raw(uint32_t number) {
    if (current_ == number) return &raw_;
    const Frame& frame = index_.frames[number];
    compressed_.resize(frame.size);
    if (::pread(fd_, compressed_.data(), frame.size, static_cast<off_t>(frame.offset)) !=
        static_cast<ssize_t>(frame.size))
      return Fail(ErrorCode::kIo, index_.archive + ": cannot read fetched frame " + std::to_string(number));
    WHARF_TRY(DecodeFrame(index_, number, compressed_, raw_));
    current_ = number;
    return &raw_;
  }

 private:
  int fd_;
  const PackageIndex& index_;
  std::optional<uint32_t> current_;
  std::string compressed_, raw_;
};

// The bytes of file `f`, from the frames that hold them, into the writer.
Status CopyFromFrames(const PackageIndex& index, const FileEntry& f, FrameReader& frames,
                      EntrySink& writer, Sha256& hash) {
  uint64_t begin = f.data_offset, end = f.data_offset + f.size;
  for (uint32_t n : FramesOfFiles(index, {static_cast<size_t>(&f - index.files.data())})) {
    auto raw = frames.Raw(n);
    if (!raw) return std::unexpected(raw.error());
    const Frame& frame = index.frames[n];
    uint64_t from = std::max(begin, frame.raw_offset), to = std::min(end, frame.raw_offset + frame.raw_size);
    const char* data = (*raw)->data() + (from - frame.raw_offset);
    hash.Update(data, to - from);
    WHARF_TRY(writer.FileData(data, to - from));
  }
  return {};
}

Status CopyFromLocal(const std::string& path, EntrySink& writer, Sha256& hash) {
  return ReadChunks(path, [&](const char* data, size_t size) {
    hash.Update(data, size);
    return writer.FileData(data, size);
  });
}

std::string PatchName(const DeltaEntry& d) {
  return d.file.empty() ? "an inline patch of deltas.json" : d.file;
}

struct FetchedDelta {
  DeltaEntry entry;
  std::string patch_path;  // under tmp/, checked against entry.sha256; "" when inline (entry.data)
};

// The deltas worth taking: their base is held here (or they need none), their target is
// not, and the patch is smaller than the frames the file would otherwise cost. A patch of
// a file on its own is dropped again when its frames are fetched anyway, for other files.
std::map<std::string, DeltaEntry> UsableDeltas(const std::vector<DeltaEntry>& deltas, const PackageIndex& index,
                                               const std::map<std::string, std::string>& local) {
  std::map<std::string, DeltaEntry> usable;
  if (deltas.empty()) return usable;
  for (size_t i = 0; i < index.files.size(); ++i) {
    const FileEntry& f = index.files[i];
    if (f.type != EntryType::kFile || f.size == 0 || local.count(f.sha256)) continue;
    uint64_t frames_cost = 0;
    for (uint32_t n : FramesOfFiles(index, {i})) frames_cost += index.frames[n].size;
    for (const auto& d : deltas)
      if (d.path == f.path && d.target_sha256 == f.sha256 && (d.base_sha256.empty() || local.count(d.base_sha256)) &&
          d.size < frames_cost && (!usable.count(f.sha256) || d.size < usable[f.sha256].size))
        usable[f.sha256] = d;
  }
  FetchPlan plan = PlanFetch(
      index, [&](const std::string& sha) { return local.count(sha) > 0 || usable.count(sha) > 0; }, 0);
  std::set<uint32_t> fetched(plan.frames.begin(), plan.frames.end());
  for (size_t i = 0; i < index.files.size(); ++i) {
    const FileEntry& f = index.files[i];
    auto d = f.type == EntryType::kFile ? usable.find(f.sha256) : usable.end();
    if (d == usable.end() || !d->second.base_sha256.empty()) continue;
    auto frames = FramesOfFiles(index, {i});
    if (std::all_of(frames.begin(), frames.end(), [&](uint32_t n) { return fetched.count(n) > 0; }))
      usable.erase(d);
  }
  return usable;
}

Result<std::map<std::string, FetchedDelta>> FetchDeltas(const Layout& layout, Mirrors& mirrors,
                                                        const PackageRef& ref,
                                                        const std::map<std::string, DeltaEntry>& usable) {
  std::map<std::string, FetchedDelta> fetched;
  for (const auto& [target, d] : usable) {
    if (d.file.empty()) {  // inline in deltas.json, checked when it was parsed
      fetched[target] = FetchedDelta{d, ""};
      continue;
    }
    std::string path = JoinPath(layout.tmp(), Basename(ref.archive) + ".delta-" + std::to_string(fetched.size()));
    WHARF_TRY(mirrors.Try(Dirname(ref.index) + "/" + d.file, [&](const std::string& url) -> Status {
      auto got = mirrors.fetcher().Download(url, path, d.size);
      if (!got) return std::unexpected(got.error());
      if (got->sha256 != d.sha256)
        return Fail(ErrorCode::kCorrupt, url + ": sha256 differs from deltas.json");
      return {};
    }));
    fetched[target] = FetchedDelta{d, path};
  }
  AbortPoint("deltas-fetched:" + ref.name);
  return fetched;
}

// Builds the package folder entry by entry: folders and links from the index, each file
// from a local copy with the same sha256, a delta against one, or the fetched frames;
// every file checked against its sha256.
Status Assemble(const PackageIndex& index, const std::map<std::string, std::string>& local,
                const std::map<std::string, FetchedDelta>& deltas, FrameReader& frames,
                TreeWriter& writer) {
  for (const auto& f : index.files) {
    if (f.type == EntryType::kDirectory) WHARF_TRY(writer.Directory(f));
    if (f.type == EntryType::kSymlink) WHARF_TRY(writer.Symlink(f));
    if (f.type != EntryType::kFile) continue;
    auto held = f.size > 0 ? local.find(f.sha256) : local.end();
    // An unchanged file is the held one itself: packages are read-only, so one inode can
    // serve both (it was checked when it was unpacked). Copied when it cannot be linked.
    if (held != local.end()) {
      auto linked = writer.LinkFile(f, held->second);
      if (linked) continue;
      if (linked.error().code != ErrorCode::kUnsupported) return linked;
    }
    WHARF_TRY(writer.BeginFile(f));
    Sha256 hash;
    auto delta = held == local.end() && f.size > 0 ? deltas.find(f.sha256) : deltas.end();
    if (held != local.end()) {
      WHARF_TRY(CopyFromLocal(held->second, writer, hash));
    } else if (delta != deltas.end()) {
      const FetchedDelta& fetched = delta->second;
      auto patch = fetched.patch_path.empty() ? Result<std::string>(fetched.entry.data)
                                              : ReadFile(fetched.patch_path, fetched.entry.size);
      if (!patch) return std::unexpected(patch.error());
      const std::string& base = delta->second.entry.base_sha256;
      std::string base_path = base.empty() ? "" : local.at(base);
      auto applied = ApplyDeltaToFile(base_path, *patch, f.size, writer.file(), writer.file_path(),
                                      [&](const char* data, size_t size) { hash.Update(data, size); });
      if (!applied)
        return Fail(applied.error().code, "\"" + f.path + "\" from " + PatchName(delta->second.entry) + ": " +
                                              applied.error().message +
                                              "; the store's deltas are damaged: republish, or "
                                              "remove its deltas.json");
    } else {
      WHARF_TRY(CopyFromFrames(index, f, frames, writer, hash));
    }
    if (hash.HexDigest() != f.sha256) {
      std::string why = held != local.end()
                            ? "(the local copy " + held->second + " is damaged; remove that package folder)"
                        : delta != deltas.end()
                            ? "(the store's delta " + PatchName(delta->second.entry) +
                                  " is wrong; republish, or remove its deltas.json)"
                            : "(the index lies; republish)";
      return Fail(ErrorCode::kCorrupt, index.archive + ": \"" + f.path + "\" does not match its sha256 " + why);
    }
    WHARF_TRY(writer.EndFile());
  }
  return writer.Finish();
}

}  // namespace

int ErrorSeverity(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnavailable: return 0;
    case ErrorCode::kTimedOut: return 1;
    case ErrorCode::kNotFound: return 2;
    default: return 3;
  }
}

Status Mirrors::Try(const std::string& path, const std::function<Status(const std::string&)>& attempt) {
  if (stores_.empty()) return Fail(ErrorCode::kInvalidArgument, "no store URL given: pass --store URL");
  std::optional<Error> worst;
  for (int round = 0; round <= kRetryRounds; ++round) {
    if (round > 0) fetcher_.Pause(2 << (round - 1));  // every mirror was away: 2 s, 4 s
    std::vector<std::string> order;
    if (!preferred_.empty()) order.push_back(preferred_);
    for (const auto& s : stores_)
      if (s != preferred_) order.push_back(s);
    worst.reset();
    for (const auto& store : order) {
      auto done = attempt(JoinUrl(store, path));
      if (done) {
        preferred_ = store;  // the one that answers is asked first from now on
        return done;
      }
      if (done.error().code == ErrorCode::kUnsupported) return done;
      if (!worst || ErrorSeverity(done.error().code) >= ErrorSeverity(worst->code)) worst = done.error();
    }
    // An answer, not an absence, is final; so is a mirror too slow for its deadline (asking
    // again would cost the deadline again).
    if (worst->code != ErrorCode::kUnavailable) break;
  }
  return std::unexpected(*worst);
}

Result<std::string> Mirrors::Get(const std::string& path, uint64_t max_bytes) {
  std::string body;
  WHARF_TRY(Try(path, [&](const std::string& url) -> Status {
    auto got = fetcher_.Get(url, max_bytes);
    if (!got) return std::unexpected(got.error());
    body = std::move(*got);
    return {};
  }));
  return body;
}

std::string FetchDeltaIndex(const Layout& layout, Mirrors& mirrors, const PackageRef& ref) {
  std::string path = JoinPath(layout.tmp(), Basename(ref.archive) + ".deltas.json");
  Status got = mirrors.Try(Dirname(ref.index) + "/deltas.json", [&](const std::string& url) -> Status {
    auto downloaded = mirrors.fetcher().Download(url, path, kMaxDeltaIndexBytes, {}, false);
    if (!downloaded) return std::unexpected(downloaded.error());
    return {};
  });
  if (!got) {  // a store without deltas (or with one too big to be real) works the same, with more bytes
    (void)RemoveTree(path);
    return "";
  }
  return path;
}

std::vector<DeltaEntry> IndexDeltas(const std::string& deltas_json, const PackageRef& ref) {
  if (deltas_json.empty()) return {};
  auto deltas = ReadDeltaIndex(deltas_json, [&](const DeltaEntry& d) {
    return d.path == kIndexDeltaPath && d.target_sha256 == ref.index_sha256 && d.size < ref.index_size;
  }, kMaxIndexDeltas);
  return deltas.value_or(std::vector<DeltaEntry>{});
}

std::vector<DeltaEntry> FileDeltas(const std::string& deltas_json, const PackageIndex& index) {
  if (deltas_json.empty()) return {};
  std::map<std::string, uint64_t> sizes;  // path and sha256 of each file: what a patch may target
  for (const auto& f : index.files)
    if (f.type == EntryType::kFile) sizes[f.path + '\0' + f.sha256] = f.size;
  auto deltas = ReadDeltaIndex(deltas_json, [&](const DeltaEntry& d) {
    auto file = sizes.find(d.path + '\0' + d.target_sha256);
    return file != sizes.end() && d.size <= file->second + 4096;  // a patch bigger than its file saves nothing
  }, kMaxDeltasPerFile * sizes.size() + kMaxIndexDeltas);
  return deltas.value_or(std::vector<DeltaEntry>{});
}

Result<std::string> FetchPackageIndex(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                      const std::vector<DeltaEntry>& deltas, bool& patched) {
  patched = false;
  auto matches = [&](const std::string& json) {
    return json.size() == ref.index_size && Sha256Hex(json) == ref.index_sha256;
  };
  std::string dir = JoinPath(layout.packages(), ref.name);
  for (const auto& leaf : ListDir(dir).value_or(std::vector<std::string>{})) {
    if (leaf[0] == '.' || !leaf.ends_with(".package.json")) continue;
    std::string held = JoinPath(dir, leaf);
    auto digest = Sha256File(held);
    if (!digest) continue;
    for (const auto& d : deltas) {
      if (d.path != kIndexDeltaPath || d.base_sha256 != digest->sha256 || d.target_sha256 != ref.index_sha256)
        continue;
      std::string patch = d.data;
      if (!d.file.empty()) {
        auto got = mirrors.Get(Dirname(ref.index) + "/" + d.file, d.size);
        if (!got || Sha256Hex(*got) != d.sha256) break;  // fetch it whole instead
        patch = std::move(*got);
      }
      std::string json;
      auto applied = ApplyDelta(held, patch, ref.index_size, [&](const char* data, size_t size) -> Status {
        json.append(data, size);
        return {};
      });
      if (applied && matches(json)) {
        patched = true;
        return json;
      }
    }
  }
  // A fifth of the bytes where the store has it (publish writes it); else package.json.
  // No store answering is final here: waiting for them twice would not help.
  auto packed = mirrors.Get(ref.index + ".zst", ref.index_size);
  if (!packed && (packed.error().code == ErrorCode::kUnavailable || packed.error().code == ErrorCode::kTimedOut))
    return std::unexpected(packed.error());
  if (packed)
    if (auto json = DecompressIndex(*packed, ref.index_size); json && matches(*json)) return *json;
  auto json = mirrors.Get(ref.index, ref.index_size);
  if (!json) return std::unexpected(json.error());
  if (!matches(*json))
    return Fail(ErrorCode::kCorrupt, ref.index + ": sha256 differs from the signed generation; "
                                                 "the store or a mirror was altered, republish");
  return json;
}

Result<InstallStats> InstallPackage(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                                    const PackageIndex& index, const std::string& index_json,
                                    const std::vector<DeltaEntry>& deltas) {
  InstallStats stats;
  auto local = LocalFiles(layout);
  std::map<std::string, DeltaEntry> usable;
  if (!local.empty()) usable = UsableDeltas(deltas, index, local);
  FetchPlan plan = PlanFetch(
      index, [&](const std::string& sha) { return local.count(sha) > 0 || usable.count(sha) > 0; },
      kRangeGap);
  uint64_t delta_bytes = 0;  // inline patches came with deltas.json
  for (const auto& [target, d] : usable) delta_bytes += d.file.empty() ? 0 : d.size;
  // Worth it only when it saves most of the archive; else one plain download is simpler.
  if (local.empty() || (plan.bytes + delta_bytes) * 2 > ref.archive_size) {
    WHARF_TRY(InstallWhole(layout, mirrors, ref, index, index_json));
    stats.fetched_bytes = ref.archive_size;
    stats.fetched_frames = index.frames.size();
    return stats;
  }
  std::string sparse = JoinPath(layout.tmp(), Basename(ref.archive) + ".frames");
  UniqueFd fd(::open(sparse.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return IoError("create", sparse);
  for (const auto& range : plan.ranges) {
    auto fetched = mirrors.Try(ref.archive, [&](const std::string& url) {
      return mirrors.fetcher().FetchRange(url, fd.get(), sparse, range.offset, range.size);
    });
    if (!fetched && fetched.error().code == ErrorCode::kUnsupported) {
      WHARF_TRY(InstallWhole(layout, mirrors, ref, index, index_json));
      stats.fetched_bytes = ref.archive_size;
      return stats;
    }
    if (!fetched) return std::unexpected(fetched.error());
    AbortPoint("range-fetched:" + ref.name);
  }
  auto patches = FetchDeltas(layout, mirrors, ref, usable);
  if (!patches) return std::unexpected(patches.error());
  std::string staging = Staging(layout, ref);
  WHARF_TRY(RemoveTree(staging));
  WHARF_TRY(MakeDirs(Dirname(staging)));
  auto writer = TreeWriter::Create(staging, index.prefix);
  if (!writer) return std::unexpected(writer.error());
  FrameReader frames(fd.get(), index);
  if (auto built = Assemble(index, local, *patches, frames, **writer); !built)
    return Prefix(ref.name + "@" + ref.version, built.error());
  WHARF_TRY(Commit(layout, ref, staging, index_json));
  stats.incremental = true;
  stats.fetched_frames = plan.frames.size();
  stats.fetched_bytes = plan.bytes + delta_bytes;
  stats.deltas = patches->size();
  for (const auto& f : index.files)
    if (f.type == EntryType::kFile && f.size > 0 && local.count(f.sha256)) ++stats.reused_files;
  WHARF_TRY(RemoveTree(sparse));
  for (const auto& [target, d] : *patches)
    if (!d.patch_path.empty()) WHARF_TRY(RemoveTree(d.patch_path));
  return stats;
}

Result<uint64_t> FetchFiles(const Layout& layout, Mirrors& mirrors, const PackageRef& ref,
                            const PackageIndex& index, const std::vector<size_t>& files, EntrySink& sink) {
  if (files.empty()) return uint64_t{0};
  std::vector<uint32_t> needed = FramesOfFiles(index, files);
  std::vector<ByteRange> ranges = CoalesceFrames(index, needed, kRangeGap);
  WHARF_TRY(MakeDirs(layout.tmp()));
  std::string sparse = JoinPath(layout.tmp(), Basename(ref.archive) + ".repair-frames");
  struct Removed {
    const std::string& path;
    ~Removed() { (void)RemoveTree(path); }
  } removed{sparse};
  UniqueFd fd(::open(sparse.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return IoError("create", sparse);
  uint64_t fetched = 0;
  for (const auto& range : ranges) {
    auto got = mirrors.Try(ref.archive, [&](const std::string& url) {
      return mirrors.fetcher().FetchRange(url, fd.get(), sparse, range.offset, range.size);
    });
    if (!got && got.error().code == ErrorCode::kUnsupported) {
      // A store without Range: the whole archive, written at its offsets like the ranges.
      uint64_t at = 0;
      WHARF_TRY(mirrors.Try(ref.archive, [&](const std::string& url) -> Status {
        at = 0;
        auto streamed = mirrors.fetcher().Stream(url, ref.archive_size, [&](const char* data, size_t size) -> Status {
          WHARF_TRY(WriteAllAt(fd.get(), data, size, at, sparse));
          at += size;
          return {};
        });
        if (!streamed) return std::unexpected(streamed.error());
        if (*streamed != ref.archive_size)
          return Fail(ErrorCode::kCorrupt, url + ": size differs from the signed generation; "
                                                 "the store or a mirror was altered, republish");
        return {};
      }));
      fetched = ref.archive_size;
      break;
    }
    if (!got) return std::unexpected(got.error());
    fetched += range.size;
  }
  FrameReader frames(fd.get(), index);
  for (size_t i : files) {
    const FileEntry& f = index.files[i];
    WHARF_TRY(sink.BeginFile(f));
    Sha256 hash;
    WHARF_TRY(CopyFromFrames(index, f, frames, sink, hash));
    if (hash.HexDigest() != f.sha256)
      return Fail(ErrorCode::kCorrupt, index.archive + ": \"" + f.path + "\" does not match its sha256 "
                                                       "(the index lies; republish)");
    WHARF_TRY(sink.EndFile());
  }
  return fetched;
}

}  // namespace wharf
