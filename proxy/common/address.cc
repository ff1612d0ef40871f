#include "proxy/common/address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace dbward::proxy {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// inet_pton into buf; the family, or 0.
int ParseIp(std::string_view ip, uint8_t buf[16]) {
  if (ip.size() >= INET6_ADDRSTRLEN) return 0;
  char text[INET6_ADDRSTRLEN];
  memcpy(text, ip.data(), ip.size());
  text[ip.size()] = '\0';
  if (inet_pton(AF_INET, text, buf) == 1) return AF_INET;
  if (inet_pton(AF_INET6, text, buf) == 1) return AF_INET6;
  return 0;
}

}  // namespace

bool SplitHostPort(const std::string& text, std::string* host, uint16_t* port) {
  std::string h, p;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (h.empty() || p.size() > 5 || !AllDigits(p)) return false;
  uint32_t v = 0;
  for (char c : p) v = v * 10 + static_cast<uint32_t>(c - '0');
  if (v > 65535) return false;
  *host = h;
  *port = static_cast<uint16_t>(v);
  return true;
}

std::string JoinHostPort(const std::string& host, uint16_t port) {
  std::string p = std::to_string(port);
  return host.find(':') != std::string::npos ? "[" + host + "]:" + p : host + ":" + p;
}

std::string IpOf(std::string_view address) {
  if (address.starts_with('[')) {
    size_t close = address.find(']');
    if (close != std::string_view::npos && address.substr(close + 1).starts_with(':') &&
        AllDigits(address.substr(close + 2))) {
      return std::string(address.substr(1, close - 1));
    }
    return std::string(address);
  }
  size_t colon = address.find(':');
  if (colon != std::string_view::npos && address.rfind(':') == colon && AllDigits(address.substr(colon + 1))) {
    return std::string(address.substr(0, colon));
  }
  return std::string(address);
}

std::optional<Cidr> Cidr::Parse(std::string_view text) {
  Cidr c;
  size_t slash = text.find('/');
  c.family_ = ParseIp(text.substr(0, slash), c.addr_);
  if (c.family_ == 0) return std::nullopt;
  int max = c.family_ == AF_INET ? 32 : 128;
  c.prefix_ = max;
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    if (!AllDigits(bits) || bits.size() > 3) return std::nullopt;
    int v = 0;
    for (char ch : bits) v = v * 10 + (ch - '0');
    if (v > max) return std::nullopt;
    c.prefix_ = v;
  }
  return c;
}

bool Cidr::Contains(std::string_view ip) const {
  uint8_t a[16];
  int family = ParseIp(ip, a);
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: an IPv4
  // block still covers them.
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (family == AF_INET6 && family_ == AF_INET && memcmp(a, kMapped, 12) == 0) {
    memmove(a, a + 12, 4);
    family = AF_INET;
  }
  if (family != family_) return false;
  int full = prefix_ / 8, rest = prefix_ % 8;
  if (memcmp(a, addr_, static_cast<size_t>(full)) != 0) return false;
  if (rest != 0) {
    auto mask = static_cast<uint8_t>(0xff << (8 - rest));
    if ((a[full] & mask) != (addr_[full] & mask)) return false;
  }
  return true;
}

namespace {

std::string LowerNoDot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

bool ValidHostPattern(std::string_view pattern) {
  std::string_view rest = pattern;
  if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
  if (rest.empty() || rest.front() == '.' || rest.find("..") != std::string_view::npos) return false;
  for (char c : rest) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_' && c != ':') return false;
  }
  return true;
}

bool HostMatchesPattern(std::string_view pattern, std::string_view host) {
  std::string p = LowerNoDot(pattern), h = LowerNoDot(host);
  if (p.rfind("*.", 0) == 0) {
    std::string suffix = p.substr(1);  // ".worker.database.windows.net"
    return h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return p == h;
}

}  // namespace dbward::proxy
