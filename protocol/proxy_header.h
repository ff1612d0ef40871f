// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): the
// header a load balancer puts in front of a connection to say who the
// client really is, and that dbward puts in front of its own backend
// connections. Addresses travel as raw bytes (4 or 16) in both versions;
// the text form of version 1 is parsed here, strictly, so the caller never
// sees a string it would have to trust.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::proxy_header {

using protocol::Result;

constexpr size_t kV1MaxLine = 107;    // the longest line the specification allows, CRLF included
constexpr size_t kV2Fixed = 16;       // signature, version and command, family, length
constexpr size_t kMaxHeader = 4096;   // dbward's cap on a version 2 header (TLVs included)
constexpr size_t kMaxUniqueId = 128;

// TLV types (section 2.2).
constexpr uint8_t kTlvAlpn = 0x01;
constexpr uint8_t kTlvAuthority = 0x02;
constexpr uint8_t kTlvCrc32c = 0x03;
constexpr uint8_t kTlvNoop = 0x04;
constexpr uint8_t kTlvUniqueId = 0x05;
constexpr uint8_t kTlvSsl = 0x20;
constexpr uint8_t kSubSslVersion = 0x21;
constexpr uint8_t kSubSslCn = 0x22;
constexpr uint8_t kSubSslCipher = 0x23;
constexpr uint8_t kSubSslSigAlg = 0x24;
constexpr uint8_t kSubSslKeyAlg = 0x25;
constexpr uint8_t kTlvNetns = 0x30;
// The PP2_TYPE_SSL client field.
constexpr uint8_t kClientSsl = 0x01;
constexpr uint8_t kClientCertConn = 0x02;
constexpr uint8_t kClientCertSess = 0x04;

enum class Command : uint8_t {
  kLocal,  // the balancer's own connection (a health check): use the real endpoints
  kProxy,  // relayed: the addresses below are the original ones
};

struct Tlv {
  uint8_t type = 0;
  std::vector<uint8_t> value;
};

// PP2_TYPE_SSL: what the sender knew about the client's TLS.
struct SslInfo {
  uint8_t client = 0;   // kClientSsl | kClientCertConn | kClientCertSess
  uint32_t verify = 0;  // 0: the client's certificate was verified
  std::string version, cn, cipher, sig_alg, key_alg;
};

struct Header {
  int version = 0;  // 1 or 2
  Command command = Command::kLocal;
  // TCP over IPv4 or IPv6 with the PROXY command; false for LOCAL, v1
  // UNKNOWN and the families dbward does not route by (UNSPEC, UNIX).
  bool has_addresses = false;
  std::vector<uint8_t> src_addr, dst_addr;  // 4 or 16 bytes, network order
  uint16_t src_port = 0, dst_port = 0;
  std::vector<Tlv> tlvs;  // version 2, in order, unknown types included
  std::string alpn, authority, unique_id;
  std::optional<SslInfo> ssl;
  bool crc_checked = false;  // a CRC32C TLV was present and matched
  size_t length = 0;         // bytes the header took on the wire
};

// Whether bytes open a PROXY header: kNo as soon as they cannot, kMaybe for
// a strict prefix of a signature.
enum class Sniff : uint8_t { kNo, kMaybe, kYes };
Sniff SniffHeader(std::span<const uint8_t> bytes);

// One header at the start of bytes (which may hold the client's first
// message behind it). Malformed for anything the specification does not
// allow, a CRC32C that does not match, a version 2 header above kMaxHeader,
// and a version 1 line without CRLF in its first 107 bytes.
Result Parse(std::span<const uint8_t> bytes, Header* out);

// What dbward sends: version 2, TCP over IPv4 or IPv6 (both addresses of
// one family) or LOCAL, the TLVs given, and a CRC32C TLV last.
struct Outgoing {
  Command command = Command::kProxy;
  std::vector<uint8_t> src_addr, dst_addr;  // 4 or 16 bytes each
  uint16_t src_port = 0, dst_port = 0;
  std::string alpn, authority, unique_id;
  std::optional<SslInfo> ssl;
};
// Empty when the addresses are not both 4 or both 16 bytes (PROXY), or a
// field is too long for its TLV.
std::vector<uint8_t> EncodeV2(const Outgoing& header);

// CRC-32C (Castagnoli, RFC 4960 appendix B), as PP2_TYPE_CRC32C uses it.
uint32_t Crc32c(std::span<const uint8_t> bytes);

// Dotted IPv4 and RFC 4291 IPv6 text into 4 or 16 bytes; false for anything
// else (leading zeros in IPv4 included: version 1 forbids them).
bool ParseIpv4(std::string_view text, std::vector<uint8_t>* out);
bool ParseIpv6(std::string_view text, std::vector<uint8_t>* out);

}  // namespace dbward::protocol::proxy_header
