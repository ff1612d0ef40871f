#include "proxy/commands/report.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <tuple>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "proxy/common/address.h"
#include "proxy/common/audit_event.h"
#include "proxy/common/config.h"
#include "proxy/common/policy.h"
#include "proxy/common/json.h"
#include "proxy/common/records.h"
#include "proxy/common/text.h"
#include "proxy/common/time.h"

namespace dbward::proxy {
namespace {

constexpr char kPrefix[] = "dbward report: ";
// Audit lines are a few hundred bytes; anything this long is not one, and
// is not kept in memory.
constexpr size_t kMaxLineBytes = 1 << 20;
// Enough to see what went wrong without flooding the terminal.
constexpr size_t kMaxInvalidListed = 20;

// Lines of a file without their '\n', each capped at kMaxLineBytes.
class LineReader {
 public:
  explicit LineReader(FILE* file) : file_(file), buf_(1 << 16) {}

  // False at the end of the input or on a read error (see error()).
  bool Next(std::string* line, bool* too_long) {
    line->clear();
    *too_long = false;
    bool started = false;
    while (true) {
      if (start_ == end_) {
        size_t n = fread(buf_.data(), 1, buf_.size(), file_);
        if (n == 0) {
          if (ferror(file_)) {
            error_ = errno != 0 ? errno : EIO;
            return false;
          }
          return started;
        }
        start_ = 0;
        end_ = n;
      }
      started = true;
      const char* begin = buf_.data() + start_;
      const void* newline = memchr(begin, '\n', end_ - start_);
      size_t len = newline != nullptr ? static_cast<size_t>(static_cast<const char*>(newline) - begin) : end_ - start_;
      size_t room = kMaxLineBytes - std::min(line->size(), kMaxLineBytes);
      line->append(begin, std::min(len, room));
      if (len > room) *too_long = true;
      start_ += len;
      if (newline != nullptr) {
        start_++;
        return true;
      }
    }
  }

  int error() const { return error_; }

 private:
  FILE* file_;
  std::vector<char> buf_;
  size_t start_ = 0;
  size_t end_ = 0;
  int error_ = 0;
};

std::string Or(const std::optional<std::string>& v) { return v.value_or(""); }

struct ClientKey {
  std::string client_ip;
  std::string listener;
  std::string protocol;
  std::string application;
  std::string client_library;
  std::string user;
  auto operator<=>(const ClientKey&) const = default;
};

struct Sighting {
  int64_t ms = 0;
  std::string ts;
};

struct ClientRow {
  ClientKey key;
  std::set<std::string> encryptions;
  std::set<std::string> versions;   // client_protocol_version (TDS 7.1, 7.4, ...)
  std::set<std::string> routed_to;  // tds: where the backend routed its logins
  std::optional<bool> login7_first;  // tds: sent LOGIN7 without PRELOGIN (jTDS ssl=off)
  bool bypass = false;
  std::set<std::string> bypass_reasons;
  bool validates_true = false;
  bool validates_false = false;
  uint64_t sessions = 0;
  uint64_t bypass_sessions = 0;  // of sessions, those that bypassed trust
  uint64_t failed = 0;
  uint64_t refused = 0;
  std::optional<Sighting> first_seen;
  std::optional<Sighting> last_seen;
  // --policy: the rules its sessions matched and what they would do.
  std::set<std::string> policy_rules;
  uint64_t would_deny = 0;
  uint64_t would_warn = 0;

  // A client that validated once can be switched to strict TLS; one that
  // accepted a bad certificate cannot, until it is reconfigured.
  std::optional<bool> validates() const {
    if (validates_true) return true;
    if (validates_false) return false;
    return std::nullopt;
  }

  bool Has(BypassReason r) const { return bypass_reasons.contains(Token(r)); }
  bool AcceptedACertificate() const { return AnyAccepted(bypass_reasons); }

  template <typename Tokens>
  static bool AnyAccepted(const Tokens& tokens) {
    return std::any_of(tokens.begin(), tokens.end(), [](const auto& t) { return IsAcceptedCertificateToken(t); });
  }
};

// Connections that closed without a word: counted, never clients.
bool IsSilent(const AuditEvent& e) { return e.outcome && *e.outcome == Token(Outcome::kClientClosedSilent); }

// The policy of the event's listener, applied to what the event recorded,
// with every deny rule in force (its from date ignored: the report previews
// enforcement). Events that never reached the point where the engines ask
// (no encryption recorded, a refused canary) are not judged.
struct PolicyJudge {
  std::map<std::string, const std::vector<PolicyRule>*> by_listener;
  uint64_t unknown_listener = 0;  // events of listeners CONFIG does not have
  uint64_t judged = 0;

  void Judge(const AuditEvent& e, ClientRow* row) {
    if (!e.client_encryption || e.client_encryption->empty()) return;
    if (e.outcome && *e.outcome == Token(Outcome::kCanaryRejected)) return;
    auto it = by_listener.find(Or(e.listener));
    if (it == by_listener.end()) {
      unknown_listener++;
      return;
    }
    PolicySubject s;
    s.ip = IpOf(Or(e.client));
    s.user = Or(e.user);
    s.application = Or(e.application);
    s.library = Or(e.client_library);
    s.database = Or(e.database);
    s.identity = Or(e.client_identity);
    s.client_certificate = !s.identity.empty();
    s.encryption = ParseClientEncryption(*e.client_encryption).value_or(ClientEncryption::kNone);
    s.validates = e.validates;
    std::vector<std::string> unknown;
    const std::vector<BypassReason> reasons = BypassSet::Parse(Or(e.bypass_reason), &unknown).Reasons();
    s.accepted_bad_certificate =
        ClientRow::AnyAccepted(unknown) || std::any_of(reasons.begin(), reasons.end(), IsAcceptedCertificate);
    PolicyVerdict v = EvaluatePolicy(*it->second, s, INT64_MAX);
    judged++;
    if (v.rule == nullptr) return;
    row->policy_rules.insert(v.Label());
    if (!v.violates) return;
    if (v.rule->action == PolicyRule::Action::kDeny) {
      row->would_deny++;
    } else {
      row->would_warn++;
    }
  }
};

// Sessions and bypassing sessions over time, for the page's chart. Starts
// per minute and coarsens (hour, then day) when the file spans too long.
class Timeline {
 public:
  void Add(int64_t ms, bool bypass) {
    int64_t key = ms / step_ms_;
    auto& b = buckets_[key];
    b.first++;
    if (bypass) b.second++;
    if (buckets_.size() > 20'000 && step_ms_ < kDay) Coarsen(step_ms_ == kMinute ? kHour : kDay);
  }
  struct Bar {
    int64_t start_ms;
    uint64_t sessions, bypass;
  };
  // At most max_bars bars of equal width covering the whole span.
  std::vector<Bar> Bars(size_t max_bars) const {
    std::vector<Bar> out;
    if (buckets_.empty()) return out;
    const int64_t first = buckets_.begin()->first * step_ms_;
    const int64_t last = buckets_.rbegin()->first * step_ms_ + step_ms_;
    static const int64_t kWidths[] = {kMinute,      5 * kMinute, 15 * kMinute, kHour,   6 * kHour,
                                      kDay,         7 * kDay,    30 * kDay,    365 * kDay};
    int64_t width = kWidths[0];
    for (int64_t w : kWidths) {
      width = w;
      if (w >= step_ms_ && static_cast<size_t>((last - first + w - 1) / w) <= max_bars) break;
    }
    const int64_t origin = first / width * width;
    for (const auto& [key, counts] : buckets_) {
      int64_t start = (key * step_ms_ - origin) / width * width + origin;
      if (out.empty() || out.back().start_ms != start) out.push_back({start, 0, 0});
      out.back().sessions += counts.first;
      out.back().bypass += counts.second;
    }
    return out;
  }
 private:
  static constexpr int64_t kMinute = 60'000, kHour = 3'600'000, kDay = 86'400'000;
  void Coarsen(int64_t step) {
    std::map<int64_t, std::pair<uint64_t, uint64_t>> merged;
    for (const auto& [key, counts] : buckets_) {
      auto& m = merged[key * step_ms_ / step];
      m.first += counts.first;
      m.second += counts.second;
    }
    buckets_ = std::move(merged);
    step_ms_ = step;
  }
  int64_t step_ms_ = kMinute;
  std::map<int64_t, std::pair<uint64_t, uint64_t>> buckets_;
};

void AddEvent(const AuditEvent& e, int64_t ts_ms, std::map<ClientKey, ClientRow>* rows, PolicyJudge* judge,
              Timeline* timeline) {
  ClientKey key{IpOf(Or(e.client)), Or(e.listener), Or(e.protocol), Or(e.application), Or(e.client_library),
                Or(e.user)};
  auto [it, added] = rows->try_emplace(key);
  ClientRow& row = it->second;
  if (added) row.key = std::move(key);
  if (e.client_encryption && !e.client_encryption->empty()) row.encryptions.insert(*e.client_encryption);
  if (e.client_protocol_version && !e.client_protocol_version->empty()) row.versions.insert(*e.client_protocol_version);
  if (e.routed_to && !e.routed_to->empty()) row.routed_to.insert(*e.routed_to);
  if (e.tds_prelogin) row.login7_first = row.login7_first.value_or(false) || !*e.tds_prelogin;
  // The writer sets bypass_reason only with trust_bypass true; an older
  // event with a reason and no flag still bypassed.
  bool bypass = e.trust_bypass.value_or(!Or(e.bypass_reason).empty());
  // A session can bypass trust in more than one way (login-only encryption
  // and accepting the canary). Reasons this version does not know (a newer
  // dbward's) are listed as they are.
  bool accepted = false;
  if (bypass) {
    row.bypass = true;
    std::vector<std::string> unknown;
    for (BypassReason r : BypassSet::Parse(Or(e.bypass_reason), &unknown).Reasons()) {
      row.bypass_reasons.emplace(Token(r));
      accepted |= IsAcceptedCertificate(r);
    }
    for (std::string& u : unknown) {
      accepted |= IsAcceptedCertificateToken(u);
      row.bypass_reasons.insert(std::move(u));
    }
  }
  if (e.validates == true) row.validates_true = true;
  if (e.validates == false || accepted) row.validates_false = true;
  // Events other than these two (none today) still tell how the client connects.
  std::string event = Or(e.event);
  if (event == "refused") {
    row.refused++;
  } else if (event == "session" || event.empty()) {
    row.sessions++;
    if (bypass) row.bypass_sessions++;
    if (e.ts) timeline->Add(ts_ms, bypass);
    if (e.outcome && !e.outcome->empty() && *e.outcome != Token(Outcome::kOk)) row.failed++;
  }
  if (judge != nullptr) judge->Judge(e, &row);
  if (e.ts) {
    if (!row.first_seen || ts_ms < row.first_seen->ms) row.first_seen = Sighting{ts_ms, *e.ts};
    if (!row.last_seen || ts_ms >= row.last_seen->ms) row.last_seen = Sighting{ts_ms, *e.ts};
  }
}

// Digit runs compare as numbers, so 10.0.0.7 comes before 10.0.0.10.
int NaturalCompare(std::string_view a, std::string_view b) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      while (i < a.size() && a[i] == '0') i++;
      while (j < b.size() && b[j] == '0') j++;
      size_t ai = i;
      size_t bj = j;
      while (i < a.size() && digit(a[i])) i++;
      while (j < b.size() && digit(b[j])) j++;
      std::string_view na = a.substr(ai, i - ai);
      std::string_view nb = b.substr(bj, j - bj);
      if (na.size() != nb.size()) return na.size() < nb.size() ? -1 : 1;
      if (int c = na.compare(nb); c != 0) return c;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]) ? -1 : 1;
    i++;
    j++;
  }
  if (i < a.size() || j < b.size()) return i < a.size() ? 1 : -1;
  return a.compare(b);  // "07" and "7": any fixed order
}

// Bypassers first, then the rest; the busiest first within each, then by
// client, listener, protocol, application, library and user.
// With a policy, the clients it would deny come first, then those it warns.
std::vector<const ClientRow*> SortedRows(const std::map<ClientKey, ClientRow>& rows, bool policy) {
  std::vector<const ClientRow*> sorted;
  sorted.reserve(rows.size());
  for (const auto& [key, row] : rows) sorted.push_back(&row);
  std::sort(sorted.begin(), sorted.end(), [policy](const ClientRow* a, const ClientRow* b) {
    if (policy && (a->would_deny > 0) != (b->would_deny > 0)) return a->would_deny > 0;
    if (policy && (a->would_warn > 0) != (b->would_warn > 0)) return a->would_warn > 0;
    if (a->bypass != b->bypass) return a->bypass;
    if (a->sessions != b->sessions) return a->sessions > b->sessions;
    const ClientKey& x = a->key;
    const ClientKey& y = b->key;
    for (auto field : {&ClientKey::client_ip, &ClientKey::listener, &ClientKey::protocol, &ClientKey::application,
                       &ClientKey::client_library, &ClientKey::user}) {
      if (int c = NaturalCompare(x.*field, y.*field); c != 0) return c < 0;
    }
    return false;
  });
  return sorted;
}

// One cell before formatting. Empty text, an empty list and an unknown flag
// are "absent": "-" in the table, null in JSON, empty in CSV.
struct Cell {
  enum class Kind { kText, kList, kFlag, kCount };
  Kind kind = Kind::kText;
  std::string text;
  std::vector<std::string> list;
  std::optional<bool> flag;
  uint64_t count = 0;
  bool absent_means_na = false;  // an unknown flag that does not apply: "-", not "unknown"
};

Cell Text(const std::string& s) { return Cell{Cell::Kind::kText, s, {}, {}, 0}; }
Cell List(const std::set<std::string>& s) { return Cell{Cell::Kind::kList, {}, {s.begin(), s.end()}, {}, 0}; }
Cell Flag(std::optional<bool> b) { return Cell{Cell::Kind::kFlag, {}, {}, b, 0}; }
Cell Count(uint64_t n) { return Cell{Cell::Kind::kCount, {}, {}, {}, n}; }
Cell FlagIfApplies(std::optional<bool> b) { return Cell{Cell::Kind::kFlag, {}, {}, b, 0, true}; }
Cell Seen(const std::optional<Sighting>& s) { return Text(s ? s->ts : std::string()); }

// The report's columns, in output order, for all three formats.
struct Column {
  const char* key;    // JSON key and CSV header
  const char* title;  // table header
  Cell (*get)(const ClientRow&);
};
constexpr Column kColumns[] = {
    {"client", "CLIENT", [](const ClientRow& r) { return Text(r.key.client_ip); }},
    {"listener", "LISTENER", [](const ClientRow& r) { return Text(r.key.listener); }},
    {"protocol", "PROTOCOL", [](const ClientRow& r) { return Text(r.key.protocol); }},
    {"application", "APPLICATION", [](const ClientRow& r) { return Text(r.key.application); }},
    {"client_library", "LIBRARY", [](const ClientRow& r) { return Text(r.key.client_library); }},
    {"user", "USER", [](const ClientRow& r) { return Text(r.key.user); }},
    {"client_protocol_version", "VERSION", [](const ClientRow& r) { return List(r.versions); }},
    {"client_encryption", "ENCRYPTION", [](const ClientRow& r) { return List(r.encryptions); }},
    {"login7_first", "LOGIN7_FIRST", [](const ClientRow& r) { return FlagIfApplies(r.login7_first); }},
    {"trust_bypass", "BYPASS", [](const ClientRow& r) { return Flag(r.bypass); }},
    {"bypass_reasons", "BYPASS_REASONS", [](const ClientRow& r) { return List(r.bypass_reasons); }},
    {"validates", "VALIDATES", [](const ClientRow& r) { return Flag(r.validates()); }},
    {"sessions", "SESSIONS", [](const ClientRow& r) { return Count(r.sessions); }},
    {"failed", "FAILED", [](const ClientRow& r) { return Count(r.failed); }},
    {"refused", "REFUSED", [](const ClientRow& r) { return Count(r.refused); }},
    {"routed_to", "ROUTED_TO", [](const ClientRow& r) { return List(r.routed_to); }},
    {"first_seen", "FIRST_SEEN", [](const ClientRow& r) { return Seen(r.first_seen); }},
    {"last_seen", "LAST_SEEN", [](const ClientRow& r) { return Seen(r.last_seen); }},
};
// --policy adds these.
constexpr Column kPolicyColumns[] = {
    {"policy_rules", "POLICY", [](const ClientRow& r) { return List(r.policy_rules); }},
    {"would_deny", "WOULD_DENY", [](const ClientRow& r) { return Count(r.would_deny); }},
    {"would_warn", "WOULD_WARN", [](const ClientRow& r) { return Count(r.would_warn); }},
};

std::vector<Column> Columns(bool policy) {
  std::vector<Column> out(std::begin(kColumns), std::end(kColumns));
  if (policy) out.insert(out.end(), std::begin(kPolicyColumns), std::end(kPolicyColumns));
  return out;
}

// Table and CSV text of a cell; "" when absent.
std::string PlainText(const Cell& c) {
  switch (c.kind) {
    case Cell::Kind::kText: return c.text;
    case Cell::Kind::kList: return Join(c.list, ",");
    case Cell::Kind::kFlag: return c.flag ? (*c.flag ? "true" : "false") : c.absent_means_na ? "" : "unknown";
    case Cell::Kind::kCount: return std::to_string(c.count);
  }
  return "";
}

// User and application names come from unauthenticated clients: C0 and C1
// controls (terminal escapes) are shown as \u00XX, never sent to a terminal.
// Input is valid UTF-8 (the parser checked it).
std::string ForTerminal(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    unsigned int cp = static_cast<unsigned char>(s[i]);
    // U+0080..U+009F are C2 80..C2 9F in UTF-8.
    if (cp == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9F) {
      cp = static_cast<unsigned char>(s[++i]);
    }
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      out += "\\u00";
      out.push_back(kHex[cp >> 4]);
      out.push_back(kHex[cp & 15]);
    } else {
      out.push_back(static_cast<char>(cp));
    }
  }
  return out;
}

// Display width in code points: close enough for names and addresses.
size_t Width(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string Summary(const std::vector<const ClientRow*>& rows, uint64_t silent) {
  size_t bypass = 0, plaintext = 0, login_only = 0, accepts = 0, login7_first = 0, routed = 0;
  for (const ClientRow* r : rows) {
    if (r->bypass) bypass++;
    if (r->Has(BypassReason::kPlaintext)) plaintext++;
    if (r->Has(BypassReason::kLoginOnly)) login_only++;
    if (r->AcceptedACertificate()) accepts++;
    if (r->login7_first == true) login7_first++;
    if (!r->routed_to.empty()) routed++;
  }
  std::string out = std::to_string(rows.size()) + " clients, " + std::to_string(bypass) + " bypass trust: " +
                    std::to_string(plaintext) + " plaintext, " + std::to_string(login_only) + " login-only, " +
                    std::to_string(accepts) + " accept untrusted certificates\n";
  if (silent > 0) {
    out += std::to_string(silent) +
           " silent connections (connected and closed without a word: health checks, port scans), not counted above\n";
  }
  if (login7_first > 0 || routed > 0) {
    out += "tds: " + std::to_string(login7_first) + " send LOGIN7 without PRELOGIN (they cannot negotiate "
           "encryption; jTDS: ssl=require), " + std::to_string(routed) + " routed by the server (dbward followed)\n";
  }
  return out;
}

std::string FormatTable(const std::vector<const ClientRow*>& rows, uint64_t silent, const std::vector<Column>& columns,
                        const std::string& policy_summary) {
  const size_t kCols = columns.size();
  std::vector<std::vector<std::string>> cells;
  cells.emplace_back();
  for (const auto& col : columns) cells.back().emplace_back(col.title);
  for (const ClientRow* r : rows) {
    cells.emplace_back();
    for (const auto& col : columns) {
      std::string text = ForTerminal(PlainText(col.get(*r)));
      cells.back().push_back(text.empty() ? "-" : text);
    }
  }
  std::vector<size_t> width(kCols, 0);
  std::vector<bool> right(kCols, false);  // counts line up on their last digit
  for (size_t i = 0; i < kCols; i++) right[i] = columns[i].get(ClientRow{}).kind == Cell::Kind::kCount;
  for (const auto& line : cells) {
    for (size_t i = 0; i < kCols; i++) width[i] = std::max(width[i], Width(line[i]));
  }
  std::string out;
  for (const auto& line : cells) {
    for (size_t i = 0; i < kCols; i++) {
      size_t pad = width[i] - Width(line[i]);
      if (right[i]) out.append(pad, ' ');
      out += line[i];
      if (i + 1 == kCols) break;
      if (!right[i]) out.append(pad, ' ');
      out += "  ";
    }
    out.push_back('\n');
  }
  return out + Summary(rows, silent) + policy_summary;
}

// One object per line inside the array, so the output reads and diffs well.
std::string FormatJson(const std::vector<const ClientRow*>& rows, const std::vector<Column>& columns) {
  if (rows.empty()) return "[]\n";
  std::string out = "[\n";
  for (size_t n = 0; n < rows.size(); n++) {
    JsonObject row;
    for (const auto& col : columns) {
      Cell c = col.get(*rows[n]);
      switch (c.kind) {
        case Cell::Kind::kText: row.StrOrNull(col.key, c.text); break;
        case Cell::Kind::kList: row.Raw(col.key, JsonArray::Strings(c.list)); break;
        case Cell::Kind::kFlag:
          if (c.flag) {
            row.Bool(col.key, *c.flag);
          } else {
            row.Null(col.key);
          }
          break;
        case Cell::Kind::kCount: row.Int(col.key, static_cast<int64_t>(c.count)); break;
      }
    }
    out += "  " + row.Finish() + (n + 1 < rows.size() ? ",\n" : "\n");
  }
  return out + "]\n";
}

// RFC 4180: CRLF line ends; fields with a comma, quote, CR or LF are quoted
// and their quotes doubled.
void AppendCsvField(std::string* out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out->append(s);
    return;
  }
  out->push_back('"');
  for (char c : s) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

std::string FormatCsv(const std::vector<const ClientRow*>& rows, const std::vector<Column>& columns) {
  std::string out;
  for (const auto& col : columns) {
    if (&col != &columns[0]) out.push_back(',');
    AppendCsvField(&out, col.key);
  }
  out += "\r\n";
  for (const ClientRow* r : rows) {
    for (const auto& col : columns) {
      if (&col != &columns[0]) out.push_back(',');
      AppendCsvField(&out, PlainText(col.get(*r)));
    }
    out += "\r\n";
  }
  return out;
}

// "policy CONFIG: 2 clients would be denied (7 sessions), 1 warned (3 sessions)"
// and, for deny rules with a date, when they start.
std::string PolicySummary(const std::vector<const ClientRow*>& rows, const PolicyJudge& judge, const Config& config) {
  size_t deny_clients = 0, warn_clients = 0;
  uint64_t deny_sessions = 0, warn_sessions = 0;
  for (const ClientRow* r : rows) {
    if (r->would_deny > 0) deny_clients++;
    if (r->would_warn > 0) warn_clients++;
    deny_sessions += r->would_deny;
    warn_sessions += r->would_warn;
  }
  std::string out = "policy " + config.path + " (every deny rule in force): " + std::to_string(deny_clients) +
                    " clients would be denied (" + std::to_string(deny_sessions) + " sessions), " +
                    std::to_string(warn_clients) + " warned (" + std::to_string(warn_sessions) + " sessions), of " +
                    std::to_string(judge.judged) + " sessions judged\n";
  for (const ListenerConfig& l : config.listeners) {
    for (size_t i = 0; i < l.policy.size(); i++) {
      const PolicyRule& r = l.policy[i];
      if (r.from_ms) {
        PolicyVerdict v;
        v.rule = &r;
        v.index = i + 1;
        out += "  listener " + l.name + ": " + v.Label() + " warns until " + r.from_text + ", then denies\n";
      }
    }
  }
  if (judge.unknown_listener > 0) {
    out += "  " + std::to_string(judge.unknown_listener) + " sessions of listeners that " + config.path +
           " does not have were not judged\n";
  }
  return out;
}

// Text for HTML, in an element or a quoted attribute. Client-supplied names
// never become markup; control characters are shown as \u00XX.
std::string Html(std::string_view s) {
  std::string in = ForTerminal(s);
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// What a client must change to stop bypassing trust, in its own driver's
// words. The library name (from LOGIN7, MySQL connection attributes) picks
// the driver where it is known.
std::string WhatToChange(const std::string& protocol, const std::string& library, const std::set<std::string>& reasons,
                         bool login7_first) {
  auto has = [&](BypassReason r) { return reasons.contains(Token(r)); };
  bool accepts = ClientRow::AnyAccepted(reasons);
  std::string lib = library;
  std::transform(lib.begin(), lib.end(), lib.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::vector<std::string> fixes;
  if (protocol == "postgres") {
    if (has(BypassReason::kPlaintext)) {
      fixes.push_back("connect with TLS: sslmode=verify-full and sslrootcert=<the CA of dbward's certificate> (libpq, "
                      "psql, JDBC); node-postgres: ssl: {ca, rejectUnauthorized: true}");
    }
    if (accepts) {
      fixes.push_back("validate dbward's certificate: sslmode=require and verify-ca do not check the name, sslmode=prefer "
                      "checks nothing; use sslmode=verify-full with sslrootcert=<dbward's CA>");
    }
  } else if (protocol == "mysql") {
    if (has(BypassReason::kPlaintext)) {
      fixes.push_back("connect with TLS: ssl-mode=VERIFY_IDENTITY and ssl-ca=<dbward's CA> (mysql client, Connector/J "
                      "sslMode=VERIFY_IDENTITY); MariaDB client: --ssl --ssl-verify-server-cert; mysql2: ssl: {ca}");
    }
    if (accepts) {
      fixes.push_back("validate dbward's certificate: ssl-mode=REQUIRED checks nothing; use VERIFY_IDENTITY with "
                      "ssl-ca=<dbward's CA> (MariaDB: --ssl-verify-server-cert)");
    }
  } else if (protocol == "tds") {
    const bool jtds = lib.find("jtds") != std::string::npos;
    const bool tedious = lib.find("tedious") != std::string::npos;
    // FreeTDS names itself "TDS-Library" in LOGIN7 (tsql, ODBC, DB-Library).
    const bool freetds = lib.find("freetds") != std::string::npos || lib.find("tds-library") != std::string::npos ||
                         lib.find("db-library") != std::string::npos;
    if (has(BypassReason::kPlaintext) || login7_first) {
      fixes.push_back(jtds ? "jTDS: ssl=authenticate (ssl=off sends LOGIN7 in plaintext; ssl=request and ssl=require do "
                             "not validate)"
                      : tedious ? "tedious: encrypt: true, trustServerCertificate: false"
                      : freetds ? "FreeTDS: encryption = require (freetds.conf) with ca file = <dbward's CA>"
                                : "Encrypt=True (ODBC Encrypt=yes, JDBC encrypt=true, SqlClient Encrypt=True) with "
                                  "TrustServerCertificate=False");
    }
    if (has(BypassReason::kLoginOnly)) {
      fixes.push_back(jtds ? "jTDS: ssl=authenticate (ssl=request encrypts only the login)"
                      : tedious ? "tedious: encrypt: true (encrypt: false encrypts only the login)"
                      : freetds ? "FreeTDS: encryption = require (request encrypts only the login)"
                                : "Encrypt=True (Encrypt=False encrypts only the login packet; the queries and rows go "
                                  "in plaintext)");
    }
    if (accepts) {
      fixes.push_back(jtds ? "jTDS: ssl=authenticate validates; ssl=require accepts any certificate"
                      : tedious ? "tedious: trustServerCertificate: false, with dbward's CA in cryptoCredentialsDetails"
                                : "TrustServerCertificate=False (JDBC trustServerCertificate=false), with dbward's CA "
                                  "trusted by the client");
    }
  } else if (has(BypassReason::kPlaintext)) {
    fixes.push_back("a tcp listener relays bytes: give this client a protocol listener (postgres, mysql, tds) so that "
                    "it can negotiate TLS with dbward");
  }
  return Join(fixes, "; ");
}

std::string DateOf(int64_t ms, bool with_time) {
  time_t t = static_cast<time_t>(ms / 1000);
  tm parts{};
  gmtime_r(&t, &parts);
  char buf[32];
  strftime(buf, sizeof buf, with_time ? "%Y-%m-%d %H:%M" : "%Y-%m-%d", &parts);
  return buf;
}

// An inline SVG bar chart of the bypassing share per period (no script,
// no external resource).
std::string BypassChart(const Timeline& timeline) {
  std::vector<Timeline::Bar> bars = timeline.Bars(60);
  if (bars.empty()) return "<p>No timed events.</p>\n";
  const int w = 900, h = 180, left = 40, bottom = 24;
  const double slot = static_cast<double>(w - left) / static_cast<double>(bars.size());
  std::string out = fmt::format(
      "<svg class=\"chart\" role=\"img\" aria-label=\"Share of sessions that bypass trust over time\" "
      "viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\">\n",
      w, h, w, h);
  for (int pct : {0, 50, 100}) {
    double y = (h - bottom) - (h - bottom - 10) * pct / 100.0;
    out += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"0\" y=\"{:.1f}\" "
                       "class=\"axis\">{}%</text>\n",
                       left, w, y, y, y + 4, pct);
  }
  const bool with_time = bars.size() > 1 && bars[1].start_ms - bars[0].start_ms < 86'400'000;
  for (size_t i = 0; i < bars.size(); i++) {
    const auto& b = bars[i];
    double share = b.sessions == 0 ? 0 : static_cast<double>(b.bypass) / static_cast<double>(b.sessions);
    double bh = (h - bottom - 10) * share;
    double x = left + slot * static_cast<double>(i) + 1;
    out += fmt::format(
        "<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"><title>{}: {} of {} sessions "
        "bypass trust ({:.0f}%)</title></rect>\n",
        x, (h - bottom) - bh, std::max(slot - 2, 1.0), std::max(bh, share > 0 ? 1.0 : 0.0),
        DateOf(b.start_ms, with_time), b.bypass, b.sessions, share * 100);
  }
  out += fmt::format("<text x=\"{}\" y=\"{}\" class=\"axis\">{}</text>", left, h - 6, DateOf(bars.front().start_ms, with_time));
  out += fmt::format("<text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">{}</text>\n</svg>\n", w, h - 6,
                     DateOf(bars.back().start_ms, with_time));
  return out;
}

// Bypassing clients of one listener, grouped by application and library.
struct Group {
  std::string listener, protocol, application, library;
  std::set<std::string> encryptions, reasons, clients, users;
  bool login7_first = false;
  uint64_t sessions = 0, bypass_sessions = 0, failed = 0, refused = 0;
  std::optional<Sighting> first_seen, last_seen;
};

std::string FormatHtml(const std::vector<const ClientRow*>& rows, uint64_t silent, const Timeline& timeline,
                       const std::string& source) {
  std::map<std::string, std::vector<Group>> by_listener;  // listener -> groups
  std::map<std::string, std::pair<size_t, size_t>> per_listener;  // listener -> (clients, bypassing)
  std::map<std::tuple<std::string, std::string, std::string>, size_t> index;
  uint64_t sessions = 0, bypass_sessions = 0;
  size_t bypass_clients = 0;
  for (const ClientRow* r : rows) {
    auto& counts = per_listener[r->key.listener];
    counts.first++;
    sessions += r->sessions;
    bypass_sessions += r->bypass_sessions;
    if (!r->bypass) continue;
    counts.second++;
    bypass_clients++;
    auto key = std::make_tuple(r->key.listener, r->key.application, r->key.client_library);
    auto& groups = by_listener[r->key.listener];
    auto [it, added] = index.try_emplace(key, groups.size());
    if (added) {
      Group g;
      g.listener = r->key.listener;
      g.protocol = r->key.protocol;
      g.application = r->key.application;
      g.library = r->key.client_library;
      groups.push_back(std::move(g));
    }
    Group& g = groups[it->second];
    g.encryptions.insert(r->encryptions.begin(), r->encryptions.end());
    g.reasons.insert(r->bypass_reasons.begin(), r->bypass_reasons.end());
    g.clients.insert(r->key.client_ip);
    if (!r->key.user.empty()) g.users.insert(r->key.user);
    g.login7_first |= r->login7_first == true;
    g.sessions += r->sessions;
    g.bypass_sessions += r->bypass_sessions;
    g.failed += r->failed;
    g.refused += r->refused;
    if (r->first_seen && (!g.first_seen || r->first_seen->ms < g.first_seen->ms)) g.first_seen = r->first_seen;
    if (r->last_seen && (!g.last_seen || r->last_seen->ms >= g.last_seen->ms)) g.last_seen = r->last_seen;
  }

  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>dbward migration report</title>\n<style>\n"
      "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;max-width:1400px}\n"
      "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}\n"
      ".meta{color:#57606a;margin:0 0 16px}.summary{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}\n"
      ".card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:120px}\n"
      ".card b{display:block;font-size:22px}.bad b{color:#cf222e}\n"
      "table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border-bottom:1px solid #d8dee4;padding:5px 8px;"
      "text-align:left;vertical-align:top}th{background:#f6f8fa;font-weight:600}td.n{text-align:right;"
      "font-variant-numeric:tabular-nums}\n"
      ".reason{display:inline-block;background:#ffebe9;color:#a40e26;border-radius:10px;padding:0 7px;margin:1px;"
      "font-size:12px}.fix{color:#0a3069}code{font-size:12px}\n"
      ".chart .bar{fill:#cf222e}.chart .grid{stroke:#d8dee4}.chart .axis{font-size:11px;fill:#57606a}\n"
      "details summary{cursor:pointer;color:#0969da}\n</style>\n</head>\n<body>\n"
      "<h1>dbward migration report</h1>\n";
  out += "<p class=\"meta\">From " + Html(source) + ", made " + Html(NowIso()) +
         ". Clients that bypass trust, grouped by listener, application and library, and what each must change.</p>\n";
  out += "<div class=\"summary\">";
  out += fmt::format("<div class=\"card\"><b id=\"clients\">{}</b>clients</div>", rows.size());
  out += fmt::format("<div class=\"card bad\"><b id=\"bypass-clients\">{}</b>bypass trust</div>", bypass_clients);
  out += fmt::format("<div class=\"card\"><b id=\"sessions\">{}</b>sessions</div>", sessions);
  out += fmt::format("<div class=\"card bad\"><b id=\"bypass-sessions\">{}</b>bypassing sessions</div>", bypass_sessions);
  if (silent > 0) {
    out += fmt::format("<div class=\"card\"><b id=\"silent\">{}</b>silent connections (not clients)</div>", silent);
  }
  out += "</div>\n<h2>Share of sessions that bypass trust</h2>\n" + BypassChart(timeline);
  for (const auto& [listener, counts] : per_listener) {
    out += "<h2>Listener " + Html(listener) + "</h2>\n";
    auto it = by_listener.find(listener);
    if (it == by_listener.end()) {
      out += fmt::format("<p>All {} clients validate or use TLS without bypassing trust.</p>\n", counts.first);
      continue;
    }
    std::vector<Group>& groups = it->second;
    std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
      if (a.sessions != b.sessions) return a.sessions > b.sessions;
      return std::tie(a.application, a.library) < std::tie(b.application, b.library);
    });
    out += fmt::format("<p>{} of {} clients bypass trust.</p>\n", counts.second, counts.first);
    out += "<table>\n<thead><tr><th>Application</th><th>Library</th><th>Connects with</th><th>Bypass</th>"
           "<th>What to change</th><th>Sessions (bypassing)</th><th>Failed</th><th>Clients</th><th>First seen</th>"
           "<th>Last seen</th></tr></thead>\n<tbody>\n";
    for (const Group& g : groups) {
      std::string reasons;
      for (const std::string& r : g.reasons) reasons += "<span class=\"reason\">" + Html(r) + "</span>";
      std::vector<std::string> who(g.clients.begin(), g.clients.end());
      std::string clients = "<details><summary>" + std::to_string(g.clients.size()) + "</summary>" +
                            Html(Join(who, ", ")) +
                            (g.users.empty() ? "" : "<br>users: " + Html(Join({g.users.begin(), g.users.end()}, ", "))) +
                            "</details>";
      out += "<tr class=\"group\" data-listener=\"" + Html(g.listener) + "\" data-application=\"" + Html(g.application) +
             "\" data-library=\"" + Html(g.library) + "\" data-sessions=\"" + std::to_string(g.sessions) +
             "\" data-bypass-sessions=\"" + std::to_string(g.bypass_sessions) + "\">";
      out += "<td>" + (g.application.empty() ? "<i>none given</i>" : Html(g.application)) + "</td>";
      out += "<td>" + (g.library.empty() ? "<i>unknown</i>" : Html(g.library)) + "</td>";
      out += "<td>" + Html(g.protocol) + " " + Html(Join({g.encryptions.begin(), g.encryptions.end()}, ", ")) + "</td>";
      out += "<td>" + reasons + "</td>";
      out += "<td class=\"fix\">" + Html(WhatToChange(g.protocol, g.library, g.reasons, g.login7_first)) + "</td>";
      out += fmt::format("<td class=\"n\">{} ({})</td><td class=\"n\">{}</td>", g.sessions, g.bypass_sessions,
                         g.failed + g.refused);
      out += "<td>" + clients + "</td>";
      out += "<td>" + Html(g.first_seen ? g.first_seen->ts : "") + "</td><td>" + Html(g.last_seen ? g.last_seen->ts : "") +
             "</td></tr>\n";
    }
    out += "</tbody>\n</table>\n";
  }
  if (rows.empty()) out += "<p>No client sessions in this audit file.</p>\n";
  out += "</body>\n</html>\n";
  return out;
}

struct FileCloser {
  void operator()(FILE* f) const { fclose(f); }
};

}  // namespace

int RunReport(const ReportOptions& options, std::string* out, std::string* err) {
  Config policy_config;
  std::unique_ptr<PolicyJudge> judge;
  if (!options.policy_config.empty()) {
    ConfigError cerr;
    if (!LoadConfig(options.policy_config, &policy_config, &cerr)) {
      *err += kPrefix + cerr.ToString() + "\n";
      return 2;
    }
    judge = std::make_unique<PolicyJudge>();
    for (const ListenerConfig& l : policy_config.listeners) judge->by_listener[l.name] = &l.policy;
  }
  std::unique_ptr<FILE, FileCloser> file(fopen(options.path.c_str(), "rb"));
  if (!file) {
    *err += kPrefix + std::string("cannot read ") + options.path + ": " + strerror(errno) + "\n";
    return 1;
  }
  LineReader reader(file.get());
  std::map<ClientKey, ClientRow> rows;
  std::string line;
  bool too_long = false;
  size_t line_no = 0;
  size_t invalid = 0;
  uint64_t silent = 0;
  Timeline timeline;
  while (reader.Next(&line, &too_long)) {
    line_no++;
    std::string reason;
    AuditEvent event;
    int64_t ts_ms = 0;
    if (too_long) {
      reason = "longer than " + std::to_string(kMaxLineBytes) + " bytes";
    } else if (line.find_first_not_of(" \t\r") == std::string::npos) {
      continue;  // blank lines carry nothing, e.g. between concatenated files
    } else {
      auto parsed = ParseAuditLine(line);
      if (const auto* e = std::get_if<AuditLineError>(&parsed)) {
        reason = e->column != 0 ? "column " + std::to_string(e->column) + ": " + e->reason : e->reason;
      } else {
        event = std::move(std::get<AuditEvent>(parsed));
        if (event.ts) {
          std::optional<int64_t> t = ParseIsoTime(*event.ts);
          if (t) {
            ts_ms = *t;
          } else {
            reason = "field \"ts\" is not an ISO 8601 time";
          }
        }
      }
    }
    if (!reason.empty()) {
      if (invalid++ < kMaxInvalidListed) {
        *err += kPrefix + options.path + ":" + std::to_string(line_no) + ": invalid audit line: " + reason + "\n";
      }
      continue;
    }
    // An event without a time cannot be shown to be recent.
    if (options.since_ms && (!event.ts || ts_ms < *options.since_ms)) continue;
    if (IsSilent(event)) {
      silent++;
      continue;
    }
    AddEvent(event, ts_ms, &rows, judge.get(), &timeline);
  }
  if (reader.error() != 0) {
    *err += kPrefix + std::string("cannot read ") + options.path + ": " + strerror(reader.error()) + "\n";
    return 1;
  }
  if (invalid > kMaxInvalidListed) {
    *err += kPrefix + std::to_string(invalid - kMaxInvalidListed) + " more invalid lines not listed\n";
  }
  if (invalid > 0) {
    *err += kPrefix + std::to_string(invalid) + " of " + std::to_string(line_no) + " lines skipped as invalid\n";
  }

  const bool policy = judge != nullptr;
  std::vector<const ClientRow*> sorted = SortedRows(rows, policy);
  std::vector<Column> columns = Columns(policy);
  std::string policy_summary;
  if (policy) policy_summary = PolicySummary(sorted, *judge, policy_config);
  switch (options.format) {
    case ReportFormat::kTable: *out += FormatTable(sorted, silent, columns, policy_summary); break;
    case ReportFormat::kJson: *out += FormatJson(sorted, columns); break;
    case ReportFormat::kCsv: *out += FormatCsv(sorted, columns); break;
    case ReportFormat::kHtml: *out += FormatHtml(sorted, silent, timeline, options.path); break;
  }
  return 0;
}

}  // namespace dbward::proxy
