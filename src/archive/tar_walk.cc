#include "archive/tar_walk.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

namespace wharf {
namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxPaxRecords = 1u << 20;

uint64_t PaddingAfter(uint64_t position) { return (kBlock - position % kBlock) % kBlock; }

// A number field of a ustar header: octal, or base-256 when its first byte has the top bit.
std::optional<uint64_t> TarNumber(const char* field, size_t size) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(field[i]); };
  uint64_t value = 0;
  if (byte(0) & 0x80) {
    for (size_t i = 0; i < size; ++i) {
      if (value >> 56) return std::nullopt;
      value = (value << 8) | (i == 0 ? byte(0) & 0x7f : byte(i));
    }
    return value;
  }
  size_t i = 0;
  while (i < size && field[i] == ' ') ++i;
  for (; i < size && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (value >> 60) return std::nullopt;
    value = value * 8 + static_cast<uint64_t>(field[i] - '0');
  }
  if (i < size && field[i] != ' ' && field[i] != '\0') return std::nullopt;
  return value;
}

// A path from the archive, fit for a one-line message: control bytes escaped, cut short.
std::string Printable(std::string_view text) {
  constexpr size_t kMost = 200;
  std::string out;
  for (unsigned char c : text.substr(0, kMost)) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    char escaped[8];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
    out += escaped;
  }
  if (text.size() > kMost) out += "...";
  return out;
}

// A field that ends at its first NUL or at its length.
std::string Text(const char* field, size_t size) { return std::string(field, strnlen(field, size)); }

}  // namespace

TarFrameWalk::TarFrameWalk(const PackageIndex& index, size_t number) : index_(index), number_(number) {
  const Frame& frame = index.frames[number];
  auto by_frame = [&](uint32_t limit) {
    return static_cast<size_t>(std::partition_point(index.files.begin(), index.files.end(),
                                                    [&](const FileEntry& e) { return e.frame < limit; }) -
                               index.files.begin());
  };
  next_entry_ = by_frame(static_cast<uint32_t>(number));
  end_entry_ = by_frame(static_cast<uint32_t>(number + 1));
  position_ = frame.raw_offset;
  // The frame may start in the bytes of a big file whose header is in an earlier frame.
  const FileEntry* before = next_entry_ > 0 ? &index.files[next_entry_ - 1] : nullptr;
  if (before && before->type == EntryType::kFile && before->data_offset <= position_ &&
      before->data_offset + before->size > position_) {
    state_ = State::kData;
    left_ = before->data_offset + before->size - position_;
  } else {
    left_ = PaddingAfter(position_);
    state_ = left_ > 0 ? State::kPadding : State::kHeader;
  }
}

std::string TarFrameWalk::Where(const std::string& path) const {
  return index_.archive + ": entry \"" + Printable(path) + "\"";
}

Status TarFrameWalk::Feed(const char* data, size_t size) {
  while (size > 0) {
    size_t n = size;
    switch (state_) {
      case State::kHeader:
        n = std::min(size, kBlock - have_);
        std::memcpy(block_ + have_, data, n);
        have_ += n;
        break;
      case State::kPax:
        n = static_cast<size_t>(std::min<uint64_t>(size, left_));
        pax_.append(data, n);
        left_ -= n;
        break;
      case State::kData:
      case State::kPadding:
        n = static_cast<size_t>(std::min<uint64_t>(size, left_));
        left_ -= n;
        break;
      case State::kEnd:
        if (std::any_of(data, data + size, [](char c) { return c != 0; }))
          return Fail(ErrorCode::kCorrupt, index_.archive + ": data after the end of the tar; republish");
        break;
    }
    data += n;
    size -= n;
    position_ += n;
    if (state_ == State::kHeader && have_ == kBlock) {
      have_ = 0;
      WHARF_TRY(Header());
    } else if ((state_ == State::kPax || state_ == State::kData) && left_ == 0) {
      left_ = PaddingAfter(position_);
      state_ = State::kPadding;
    }
    if (state_ == State::kPadding && left_ == 0) state_ = State::kHeader;
  }
  return {};
}

Status TarFrameWalk::Header() {
  if (std::all_of(block_, block_ + kBlock, [](char c) { return c == 0; })) {
    if (has_pax_) return Fail(ErrorCode::kCorrupt, index_.archive + ": a pax header before the end of the tar; republish");
    state_ = State::kEnd;
    return {};
  }
  unsigned sum = 0;
  int signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    bool field = i >= 148 && i < 156;
    sum += field ? ' ' : static_cast<unsigned char>(block_[i]);
    signed_sum += field ? ' ' : static_cast<signed char>(block_[i]);
  }
  auto declared = TarNumber(block_ + 148, 8);
  auto size = TarNumber(block_ + 124, 12);
  if (!declared || (*declared != sum && static_cast<int64_t>(*declared) != signed_sum) ||
      std::string_view(block_ + 257, 5) != "ustar" || !size)
    return Fail(ErrorCode::kCorrupt, index_.archive + " frame " + std::to_string(number_) +
                                         ": not a tar header at byte " + std::to_string(position_ - kBlock) +
                                         " of the tar stream; republish");
  char type = block_[156];
  if (type != 'x') return Entry(type, *size);
  if (has_pax_ || *size > kMaxPaxRecords)
    return Fail(ErrorCode::kCorrupt, index_.archive + ": a pax header wharf does not read; republish");
  has_pax_ = true;
  pax_.clear();
  left_ = *size;
  state_ = State::kPax;
  if (left_ == 0) state_ = State::kHeader;  // at a block boundary: no padding either
  return {};
}

Status TarFrameWalk::Entry(char type, uint64_t size) {
  std::string name = Text(block_, 100), prefix = Text(block_ + 345, 155);
  std::string path = prefix.empty() ? name : prefix + "/" + name;
  std::string link = Text(block_ + 157, 100);
  // pax records ("<length> <key>=<value>\n") override the ustar fields.
  for (std::string_view records = pax_; has_pax_ && !records.empty();) {
    size_t space = records.find(' ');
    uint64_t length = 0;
    bool number = space != std::string_view::npos && space > 0 && space < 20;
    for (size_t i = 0; number && i < space; ++i) {
      number = records[i] >= '0' && records[i] <= '9';
      length = length * 10 + static_cast<uint64_t>(records[i] - '0');
    }
    if (!number || length <= space + 1 || length > records.size() || records[length - 1] != '\n')
      return Fail(ErrorCode::kCorrupt, Where(path) + ": a broken pax header before it; republish");
    std::string_view record = records.substr(space + 1, length - space - 2);
    records.remove_prefix(length);
    size_t equals = record.find('=');
    if (equals == std::string_view::npos)
      return Fail(ErrorCode::kCorrupt, Where(path) + ": a broken pax header before it; republish");
    std::string_view key = record.substr(0, equals), value = record.substr(equals + 1);
    if (key == "path") {
      path = value;
    } else if (key == "linkpath") {
      link = value;
    } else if (key == "size") {
      size = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || size > (uint64_t{1} << 56))
          return Fail(ErrorCode::kCorrupt, Where(path) + ": a broken pax size; republish");
        size = size * 10 + static_cast<uint64_t>(c - '0');
      }
    }
  }
  has_pax_ = false;
  while (path.size() > 1 && path.back() == '/') path.pop_back();

  auto unsafe = [&](const std::string& why) {
    return Fail(ErrorCode::kUnsafe, Where(path) + " " + why + "; the archive is hostile or broken, republish it");
  };
  if (next_entry_ == end_entry_) {
    if (end_entry_ < index_.files.size() && index_.files[end_entry_].path == path)
      return Fail(ErrorCode::kCorrupt, Where(path) + " is not in the frame package.json says; republish");
    return unsafe("is not in package.json");
  }
  const FileEntry& want = index_.files[next_entry_];
  if (path != want.path) return unsafe("is not the next entry of package.json (\"" + want.path + "\")");
  if (type == '1') return unsafe("is a hard link");
  EntryType got;
  switch (type) {
    case '0':
    case '\0': got = EntryType::kFile; break;
    case '5': got = EntryType::kDirectory; break;
    case '2': got = EntryType::kSymlink; break;
    case '3':
    case '4':
    case '6': return unsafe("is a device, fifo or socket");
    default: return unsafe("has a tar type wharf does not unpack");
  }
  if (got != want.type) return unsafe("has another type than package.json says");
  auto mode = TarNumber(block_ + 100, 8);
  if (!mode || (*mode & 07777) != want.mode) return unsafe("has another mode than package.json says");
  if (got == EntryType::kSymlink && link != want.link) return unsafe("links elsewhere than package.json says");
  if (got == EntryType::kFile) {
    if (size != want.size)
      return Fail(ErrorCode::kCorrupt, Where(path) + " holds " + std::to_string(size) + " bytes, not the " +
                                           std::to_string(want.size) + " declared; republish");
    if (want.data_offset != position_)
      return Fail(ErrorCode::kCorrupt, Where(path) + ": its bytes are not where package.json says; republish");
  } else if (size != 0) {
    return unsafe("carries data");
  }
  ++next_entry_;
  left_ = got == EntryType::kFile ? size : 0;
  state_ = left_ > 0 ? State::kData : State::kHeader;
  return {};
}

Status TarFrameWalk::Finish() {
  if ((state_ == State::kHeader && have_ > 0) || state_ == State::kPax || has_pax_)
    return Fail(ErrorCode::kCorrupt, index_.archive + " frame " + std::to_string(number_) +
                                         " ends inside a tar header; republish");
  if (state_ == State::kEnd && number_ + 1 != index_.frames.size())
    return Fail(ErrorCode::kCorrupt, index_.archive + ": frames after the end of the tar (it ends in frame " +
                                         std::to_string(number_) + "); republish");
  if (next_entry_ != end_entry_)
    return Fail(ErrorCode::kCorrupt, index_.archive + ": ends before entry \"" + index_.files[next_entry_].path +
                                         "\" of package.json; republish");
  return {};
}

}  // namespace wharf
