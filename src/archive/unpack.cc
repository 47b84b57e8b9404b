// UnpackFrames: a whole archive into a prepared tree, several frames at once.
//
// One stream of zstd frames decodes on one core, and that core was the limit of a first
// install. The frames are independent and package.json says where every file's bytes lie
// in the decoded stream, so each thread takes the next frame off the download, checks it,
// decodes it, walks its tar headers against the index (TarFrameWalk) and writes the pieces
// of files it holds at their offsets (pwrite): no hand-over between threads, and as many
// cores as the memory bound allows.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "archive/reader.h"
#include "archive/tar_walk.h"
#include "archive/zstd_handles.h"
#include "base/file.h"

namespace wharf {
namespace {

// A compressed frame's bytes, mapped for the frame alone: what a decoder holds between
// frames is its window, and the part of a frame already decoded is given back as it goes.
class FrameBuffer {
 public:
  explicit FrameBuffer(size_t size) : size_(size) {
    void* p = ::mmap(nullptr, std::max<size_t>(size, 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~FrameBuffer() {
    if (data_) ::munmap(data_, std::max<size_t>(size_, 1));
  }
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;
  char* data() const { return data_; }
  std::string_view view() const { return {data_, size_}; }
  /// Lets the whole pages before `offset` go; returns how many bytes that gave back.
  size_t Release(size_t offset) {
    size_t upto = offset / PageSize() * PageSize();
    if (upto <= released_) return 0;
    ::madvise(data_ + released_, upto - released_, MADV_DONTNEED);
    size_t given = upto - released_;
    released_ = upto;
    return given;
  }
  size_t released() const { return released_; }

 private:
  char* data_;
  size_t size_;
  size_t released_ = 0;
};

class FrameUnpacker {
 public:
  static constexpr size_t kGiveBack = 256u << 10;  // decoded input given back at a time

  FrameUnpacker(BytePipe& pipe, const PackageIndex& index, TreeWriter& writer)
      : pipe_(pipe), index_(index), writer_(writer), left_(index.files.size()) {
    for (size_t i = 0; i < index.files.size(); ++i) {
      const FileEntry& f = index.files[i];
      left_[i] = f.type == EntryType::kFile ? f.size : 0;
      if (f.type == EntryType::kFile && f.size > 0) files_.push_back(i);
    }
  }

  Status Run(unsigned cores) {
    // Files' bytes lie in archive order: the pieces of a frame are found by one search.
    for (size_t k = 1; k < files_.size(); ++k) {
      const FileEntry& before = index_.files[files_[k - 1]];
      if (index_.files[files_[k]].data_offset < before.data_offset + before.size)
        return Fail(ErrorCode::kCorrupt, index_.archive + ": files overlap in package.json; republish");
    }
    UnpackPlan plan = PlanUnpack(index_, cores);
    pool_ = plan.in_flight;
    std::vector<std::thread> helpers;
    for (unsigned t = 1; t < plan.decoders; ++t) helpers.emplace_back([this] { Work(); });
    Work();
    for (auto& h : helpers) h.join();
    pipe_.Stop();
    if (error_) return std::unexpected(*error_);
    return writer_.WaitAllPrepared();
  }

 private:
  // Takes frames until none are left or one failed.
  void Work() {
    ZstdDctx dctx(ZSTD_createDCtx());
    // The frame's sha256 is checked before decoding: zstd's own checksum adds nothing.
    ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    if (index_.zstd_window_log != 0)  // a frame wanting more than recorded is refused
      ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, index_.zstd_window_log);
    std::string out(ZSTD_DStreamOutSize(), '\0');
    for (;;) {
      size_t number;
      std::optional<FrameBuffer> compressed;
      Status status;
      {
        // Frames come off the download in order, one reader at a time, each once there is
        // memory for it.
        std::lock_guard take(take_mutex_);
        {
          std::unique_lock lock(mutex_);
          if (failed_ || next_ == index_.frames.size()) return;
          number = next_++;
          uint64_t size = index_.frames[number].size;
          pool_changed_.wait(lock, [&] { return in_use_ + size <= pool_ || in_use_ == 0 || failed_; });
          if (failed_) return;
          in_use_ += size;
        }
        uint64_t size = index_.frames[number].size;
        compressed.emplace(size);
        if (!compressed->data())
          status = Fail(ErrorCode::kIo, index_.archive + " frame " + std::to_string(number) +
                                            ": no memory for its " + std::to_string(size) +
                                            " bytes; sync again when the FEC has memory to spare");
        else if (!pipe_.Read(compressed->data(), size))
          status = Fail(ErrorCode::kCorrupt, index_.archive + " frame " + std::to_string(number) +
                                                 ": the download ended before this frame; fetch it again");
      }
      if (status) status = CheckFrame(index_, number, compressed->view());
      if (status) status = Unpack(number, dctx.get(), *compressed, out);
      uint64_t rest = index_.frames[number].size - compressed->released();
      compressed.reset();
      std::lock_guard lock(mutex_);
      in_use_ -= rest;
      pool_changed_.notify_all();
      if (!status) {
        if (!error_) error_ = status.error();
        failed_ = true;
        pipe_.Stop();  // the others stop reading, the download stops
        return;
      }
    }
  }

  Status Unpack(size_t number, ZSTD_DCtx* dctx, FrameBuffer& buffer, std::string& out) {
    std::string_view compressed = buffer.view();
    const Frame& frame = index_.frames[number];
    // The first file whose bytes end inside or after this frame.
    auto at = std::partition_point(files_.begin(), files_.end(), [&](size_t i) {
      const FileEntry& f = index_.files[i];
      return f.data_offset + f.size <= frame.raw_offset;
    });
    UniqueFd fd;  // of file *at, once it has a piece here
    TarFrameWalk walk(index_, number);
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
    uint64_t position = frame.raw_offset;  // of out[0] in the decoded stream
    size_t left = 1;
    while (left != 0) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      left = ZSTD_decompressStream(dctx, &o, &in);
      if (ZSTD_isError(left) || (left != 0 && o.pos == 0 && in.pos == in.size) ||
          position + o.pos > frame.raw_offset + frame.raw_size)
        return FrameDecodesWrong(index_, number);
      uint64_t end = position + o.pos;
      // This frame's headers are checked before its bytes land (a big file's later pieces,
      // in later frames, may land first: in the staging folder, which a failure removes).
      WHARF_TRY(walk.Feed(out.data(), o.pos));
      while (at != files_.end()) {
        const FileEntry& f = index_.files[*at];
        uint64_t from = std::max(position, f.data_offset), to = std::min(end, f.data_offset + f.size);
        if (from >= end) break;  // starts in a later output
        if (from < to) {
          if (!fd.valid()) {
            auto taken = writer_.TakeFile(f);
            if (!taken) return std::unexpected(taken.error());
            fd = std::move(*taken);
          }
          WHARF_TRY(WriteAllAt(fd.get(), out.data() + (from - position), to - from, from - f.data_offset, f.path));
          if (left_[*at].fetch_sub(to - from) == to - from) WHARF_TRY(writer_.Filled(fd.get(), f));
        }
        if (f.data_offset + f.size > end) break;  // more of it in the next output
        fd = UniqueFd();
        ++at;
      }
      position = end;
      // The input decoded so far is not needed again: the next frame may have its memory.
      if (in.pos >= buffer.released() + kGiveBack) {
        size_t given = buffer.Release(in.pos);
        std::lock_guard lock(mutex_);
        in_use_ -= given;
        pool_changed_.notify_all();
      }
    }
    if (position != frame.raw_offset + frame.raw_size || in.pos != in.size) return FrameDecodesWrong(index_, number);
    return walk.Finish();
  }

  BytePipe& pipe_;
  const PackageIndex& index_;
  TreeWriter& writer_;
  std::vector<std::atomic<uint64_t>> left_;  // bytes of each file not written yet
  std::vector<size_t> files_;                // the files with bytes, in archive order
  std::mutex take_mutex_;  // held while a frame is read off the download
  std::mutex mutex_;       // the rest
  std::condition_variable pool_changed_;
  uint64_t pool_ = 0;    // bytes for compressed frames in flight
  uint64_t in_use_ = 0;
  size_t next_ = 0;      // the next frame to take
  bool failed_ = false;
  std::optional<Error> error_;
};

}  // namespace

UnpackPlan PlanUnpack(const PackageIndex& index, unsigned cores, uint64_t memory) {
  uint64_t biggest_raw = 0, biggest = 0;
  for (const auto& f : index.frames) {
    biggest_raw = std::max(biggest_raw, f.raw_size);
    biggest = std::max(biggest, f.size);
  }
  // A decoder's window is at most its frame (zstd keeps no more than the content size), and
  // the recorded window when there is one; plus one output block.
  uint64_t window = biggest_raw;
  if (index.zstd_window_log != 0)
    window = std::min(window, (uint64_t{1} << index.zstd_window_log) + 2 * ZSTD_BLOCKSIZE_MAX);
  uint64_t each = window + ZSTD_DStreamOutSize();
  unsigned decoders = std::max(cores, 1u);
  while (decoders > 1 && decoders * each + biggest > memory) --decoders;
  uint64_t rest = memory > decoders * each ? memory - decoders * each : 0;
  return {decoders, std::max(biggest, rest)};
}

Status UnpackFrames(BytePipe& pipe, const PackageIndex& index, TreeWriter& writer, unsigned cores) {
  FrameUnpacker unpacker(pipe, index, writer);
  Status status = unpacker.Run(cores);
  pipe.Stop();
  return status;
}

}  // namespace wharf
