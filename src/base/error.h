// Errors as values: every fallible call returns Result<T>, an std::expected whose error
// has a kind that callers and exit codes act on, and one line for a human that names the
// object, says what went wrong and what to do.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace wharf {

enum class ErrorCode {
  kInvalidArgument,  // the user gave something malformed: a bad name, flag or file
  kNotFound,         // a file, version, generation or key that is not there
  kAlreadyExists,    // refusing to overwrite something that must stay
  kCorrupt,          // bytes that do not match what was signed or declared
  kRejected,         // a generation refused by policy: key, FEC, replay, expiry
  kUnsafe,           // an archive or index that would write outside its folder
  kUnavailable,      // no store, mirror or server answered
  kIo,               // the local system failed: disk full, permission, ...
  kUnsupported,      // the other side cannot do this (a server ignoring Range): fall back
  kTimedOut,         // a transfer not done within its deadline: the next mirror, no retry
};

struct Error {
  ErrorCode code;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

/// "what: message", keeping the code: adds the object a lower layer did not know.
inline std::unexpected<Error> Prefix(const std::string& what, Error error) {
  return std::unexpected<Error>(Error{error.code, what + ": " + error.message});
}

/// Returns early from the enclosing function when `expr` (a Result or Status) failed.
#define WHARF_TRY(expr)                                          \
  do {                                                           \
    if (auto wharf_try_result_ = (expr); !wharf_try_result_)     \
      return std::unexpected(std::move(wharf_try_result_.error())); \
  } while (0)

}  // namespace wharf
