// Addresses as configuration, audit events and the command line spell them:
// HOST:PORT with brackets around IPv6 literals, CIDR blocks, and the IP part
// of a peer address.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dbward::proxy {

// "host:port", "[v6]:port". Leaves the outputs alone on failure.
bool SplitHostPort(const std::string& text, std::string* host, uint16_t* port);
// The inverse: "[::1]:5432" for an IPv6 literal, "db:5432" otherwise.
std::string JoinHostPort(const std::string& host, uint16_t port);
// "10.0.0.7:51234" -> "10.0.0.7", "[::1]:51234" -> "::1"; anything else
// ("unix", "?") is returned as it is.
std::string IpOf(std::string_view address);

// Host name patterns (routing.allow): "db1.example.net" names one host,
// "*.worker.database.windows.net" any name below that domain (one label or
// more). Case-insensitive; a trailing dot on the host is ignored.
bool ValidHostPattern(std::string_view pattern);
bool HostMatchesPattern(std::string_view pattern, std::string_view host);

// "10.0.0.0/8", "fd00::/8", or a single address (a /32 or /128).
class Cidr {
 public:
  static std::optional<Cidr> Parse(std::string_view text);
  // ip: a literal without port; false for anything that is not an address.
  bool Contains(std::string_view ip) const;

 private:
  int family_ = 0;
  uint8_t addr_[16] = {};
  int prefix_ = 0;
};

}  // namespace dbward::proxy
