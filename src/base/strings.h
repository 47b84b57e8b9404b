// Small text helpers shared by every layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace wharf {

std::string HexEncode(std::string_view bytes);
std::string Base64Encode(std::string_view bytes);
std::optional<std::string> Base64Decode(std::string_view text);
std::vector<std::string> Split(std::string_view text, char separator);
/// 64 lowercase hex digits: the only form wharf writes a sha256 in.
bool IsSha256Hex(std::string_view text);
/// Well-formed UTF-8 (no overlong forms, no surrogates).
bool IsValidUtf8(std::string_view text);
/// `text` made safe to print on a terminal: control characters (C0 but newline when
/// `keep_newlines`, DEL, C1 as U+0080..U+009F), bidirectional overrides and bytes that are
/// not UTF-8 become visible escapes ("\x1b", "\u009b", "\u202e", "\xff"). For human
/// output of anything from a FEC, a store or a user; JSON output stays exact.
std::string EscapeForTerminal(std::string_view text, bool keep_newlines = false);
/// Whether the JSON text `text` nests containers at most `max_depth` deep and holds at most
/// about `max_values` values (commas and containers, outside strings). A scan with no
/// memory: what a parser that builds a tree of unverified JSON asks first, so that a
/// hostile document costs no more than its bytes.
bool JsonShapeWithin(std::string_view text, int max_depth, size_t max_values);
/// Where `text` has its first byte beyond ASCII, or nullopt.
std::optional<size_t> FirstNonAscii(std::string_view text);
/// A TOML file's text for toml::parse (at most 1 MiB). wharf's TOML files are ASCII, strings
/// and comments too: toml++ 3.3 (Debian 12) reaches __builtin_unreachable on characters of
/// several ranges beyond it, wherever it takes them for possible whitespace.
Result<std::string> ReadTomlText(const std::string& path);
/// "12.3 MB", "512 B": sizes for people.
std::string HumanBytes(uint64_t bytes);

/// Seconds since the epoch as "2026-11-24T01:02:03Z".
std::string FormatTime(int64_t epoch_seconds);
/// The inverse of FormatTime; only that exact UTC form is accepted.
std::optional<int64_t> ParseTime(std::string_view text);

}  // namespace wharf
