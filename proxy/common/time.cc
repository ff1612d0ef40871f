#include "proxy/common/time.h"

#include <fmt/format.h>
#include <sys/time.h>

#include <ctime>

namespace dbward::proxy {
namespace {

// Fixed-width digit fields and single separators.
class TimeCursor {
 public:
  explicit TimeCursor(std::string_view text) : text_(text) {}

  bool Digits(size_t n, int* out) {
    if (text_.size() - pos_ < n) return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
      char c = text_[pos_ + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    pos_ += n;
    *out = v;
    return true;
  }

  bool Consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    pos_++;
    return true;
  }

  bool AtEnd() const { return pos_ == text_.size(); }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::string Format(time_t t, int millis) {
  struct tm tm;
  gmtime_r(&t, &tm);
  if (millis < 0) {
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

}  // namespace

std::string NowIso() { return Format(time(nullptr), -1); }

std::string NowIsoMillis() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return Format(tv.tv_sec, static_cast<int>(tv.tv_usec / 1000));
}

std::optional<int64_t> ParseIsoTime(std::string_view text) {
  TimeCursor c(text);
  int year, month, day;
  if (!c.Digits(4, &year) || !c.Consume('-') || !c.Digits(2, &month) || !c.Consume('-') || !c.Digits(2, &day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return std::nullopt;
  int hour = 0, minute = 0, second = 0, millis = 0, offset_minutes = 0;
  if (!c.AtEnd()) {
    if (!c.Consume('T') && !c.Consume('t') && !c.Consume(' ')) return std::nullopt;
    if (!c.Digits(2, &hour) || !c.Consume(':') || !c.Digits(2, &minute)) return std::nullopt;
    if (c.Consume(':')) {
      if (!c.Digits(2, &second)) return std::nullopt;
      if (c.Consume('.') || c.Consume(',')) {
        int digit;
        int scale = 100;
        if (!c.Digits(1, &digit)) return std::nullopt;
        do {
          millis += digit * scale;
          scale /= 10;
        } while (c.Digits(1, &digit));
      }
    }
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
    if (c.Consume('Z') || c.Consume('z')) {
      // UTC.
    } else if (bool plus = c.Consume('+'); plus || c.Consume('-')) {
      int oh, om = 0;
      if (!c.Digits(2, &oh)) return std::nullopt;
      if (c.Consume(':')) {
        if (!c.Digits(2, &om)) return std::nullopt;
      } else if (!c.AtEnd() && !c.Digits(2, &om)) {
        return std::nullopt;
      }
      if (oh > 23 || om > 59) return std::nullopt;
      offset_minutes = (plus ? 1 : -1) * (oh * 60 + om);
    }
  }
  if (!c.AtEnd()) return std::nullopt;
  int64_t minutes = DaysFromCivil(year, month, day) * 1440 + hour * 60 + minute - offset_minutes;
  return (minutes * 60 + second) * 1000 + millis;
}

}  // namespace dbward::proxy
