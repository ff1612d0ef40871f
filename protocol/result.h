// The one result type of every decoder in protocol/: not enough bytes yet,
// a complete message, or bytes that can never become one (with the reason,
// for the log and for the peer's error message).
#pragma once

#include <string>
#include <utility>

namespace dbward::protocol {

enum class Status { kNeedMore, kOk, kMalformed };

struct Result {
  Status status = Status::kNeedMore;
  std::string error;  // kMalformed: what is wrong

  static Result NeedMore() { return {}; }
  static Result Ok() { return {Status::kOk, {}}; }
  static Result Malformed(std::string why) { return {Status::kMalformed, std::move(why)}; }
  bool ok() const { return status == Status::kOk; }
  bool need_more() const { return status == Status::kNeedMore; }
  bool malformed() const { return status == Status::kMalformed; }
};

}  // namespace dbward::protocol
