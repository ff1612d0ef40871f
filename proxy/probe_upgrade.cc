#include "proxy/probe_upgrade.h"

#include <cstdio>
#include <vector>

#include "protocol/cursor.h"
#include "protocol/mysql.h"
#include "protocol/postgres.h"
#include "protocol/tds.h"

namespace dbward::proxy::probe {
namespace {

namespace mysql = protocol::mysql;
namespace pg = protocol::pg;
namespace tds = protocol::tds;

Upgrade Fail(Upgrade::Status status, std::string message) {
  Upgrade u;
  u.status = status;
  u.message = std::move(message);
  return u;
}

Upgrade TransportFailure(const SocketIo& socket, const std::string& waiting_for, const std::string& why) {
  if (socket.timed_out()) return Fail(Upgrade::kTransport, "no " + waiting_for + " before the timeout");
  return Fail(Upgrade::kTransport, why + " while waiting for the " + waiting_for);
}

// PostgreSQL: SSLRequest, then exactly one byte. Nothing beyond that byte is
// read, so plaintext a server might append cannot be mistaken for TLS
// (CVE-2021-23222).
Upgrade Postgres(SocketIo* socket) {
  std::string why;
  if (!socket->WriteAll(pg::EncodeSslRequest(), &why)) return Fail(Upgrade::kTransport, "sending SSLRequest: " + why);
  uint8_t answer = 0;
  if (!socket->ReadExact(std::span<uint8_t>(&answer, 1), &why)) {
    return TransportFailure(*socket, "answer to SSLRequest", why);
  }
  Upgrade u;
  switch (answer) {
    case 'S':
      u.server_info = "PostgreSQL (SSLRequest answered 'S')";
      return u;
    case 'N':
      return Fail(Upgrade::kRefused,
                  "the server answered 'N' to SSLRequest: TLS is disabled on this PostgreSQL server "
                  "(set ssl = on with ssl_cert_file and ssl_key_file)");
    case 'E':
      return Fail(Upgrade::kNotProtocol,
                  "the server answered SSLRequest with an error message instead of 'S' or 'N' "
                  "(a PostgreSQL server older than 7.0, or a proxy refusing the connection)");
    default: {
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02x", answer);
      return Fail(Upgrade::kNotProtocol, std::string("the answer to SSLRequest starts with byte ") + hex +
                                             ", not 'S' or 'N': not a PostgreSQL server");
    }
  }
}

// MySQL / MariaDB: the server speaks first; the 32-byte SSLRequest (sequence
// id 1) follows the greeting when it offers CLIENT_SSL.
Upgrade Mysql(SocketIo* socket) {
  std::string why;
  uint8_t header[4];
  if (!socket->ReadExact(header, &why)) return TransportFailure(*socket, "MySQL greeting", why);
  protocol::Cursor c(header);
  uint32_t length = 0;
  uint8_t seq = 0;
  c.GetU24LE(&length);
  c.GetU8(&seq);
  if (length == 0 || length > mysql::kMaxPreAuthPayload || seq != 0) {
    return Fail(Upgrade::kNotProtocol, "the first bytes are not a MySQL packet (length " + std::to_string(length) +
                                           ", sequence id " + std::to_string(seq) + "): not a MySQL server");
  }
  std::vector<uint8_t> payload(length);
  if (!socket->ReadExact(payload, &why)) return TransportFailure(*socket, "the rest of the MySQL greeting", why);
  if (mysql::IsErr(payload)) {
    mysql::ErrInfo err;
    mysql::ParseErr(payload, &err);
    return Fail(Upgrade::kDenied, "the server refused the connection before the handshake: ERROR " +
                                       std::to_string(err.code) +
                                       (err.sqlstate.empty() ? "" : " (" + err.sqlstate + ")") + ": " + err.message);
  }
  mysql::Greeting g;
  mysql::Result r = mysql::ParseGreeting(payload, &g);
  if (r.status != mysql::Status::kOk) {
    return Fail(Upgrade::kNotProtocol, "not a MySQL greeting (" + r.error + "): not a MySQL server");
  }
  std::string version = g.server_version;
  // MariaDB prefixes "5.5.5-" for clients that parse the major version.
  if (version.rfind("5.5.5-", 0) == 0) version = version.substr(6);
  Upgrade u;
  u.server_info = (version.find("MariaDB") != std::string::npos ? "MariaDB " : "MySQL ") + version;
  if ((g.capabilities & mysql::kClientSsl) == 0) {
    return Fail(Upgrade::kRefused, u.server_info +
                                       " does not offer TLS (CLIENT_SSL is not set in its greeting): configure "
                                       "ssl_cert and ssl_key on the server");
  }
  uint32_t caps = (g.capabilities & (mysql::kClientLongPassword | mysql::kClientSecureConnection |
                                     mysql::kClientPluginAuth | mysql::kClientPluginAuthLenencData)) |
                  mysql::kClientProtocol41 | mysql::kClientSsl;
  std::vector<uint8_t> request;
  for (int i = 0; i < 4; i++) request.push_back(static_cast<uint8_t>(caps >> (8 * i)));
  const uint32_t max_packet = 16 * 1024 * 1024;
  for (int i = 0; i < 4; i++) request.push_back(static_cast<uint8_t>(max_packet >> (8 * i)));
  request.push_back(g.charset != 0 ? g.charset : 45);  // 45: utf8mb4_general_ci
  request.resize(mysql::kSslRequestLength, 0);
  if (!socket->WriteAll(mysql::EncodePacket(1, request), &why)) {
    return Fail(Upgrade::kTransport, "sending SSLRequest: " + why);
  }
  return u;
}

const char* EncryptionName(int value) {
  switch (value & 0x7f) {
    case tds::kEncryptOff: return "OFF";
    case tds::kEncryptOn: return "ON";
    case tds::kEncryptNotSup: return "NOT_SUP";
    case tds::kEncryptReq: return "REQ";
    default: return "unknown";
  }
}

// TDS 7.x: PRELOGIN with ENCRYPTION=ON; a server with a certificate answers ON
// (or REQ when it forces encryption), and the TLS handshake follows inside
// PRELOGIN packets.
Upgrade Tds(SocketIo* socket) {
  tds::Prelogin p;
  p.options.push_back({tds::kOptVersion, {0x10, 0x00, 0x00, 0x00, 0x00, 0x00}});
  p.options.push_back({tds::kOptEncryption, {tds::kEncryptOn}});
  p.options.push_back({tds::kOptInstOpt, {0}});
  p.options.push_back({tds::kOptThreadId, {0, 0, 0, 0}});
  p.options.push_back({tds::kOptMars, {0}});
  std::string why;
  if (!socket->WriteAll(tds::EncodeMessage(tds::kPrelogin, tds::EncodePrelogin(p)), &why)) {
    return Fail(Upgrade::kTransport, "sending PRELOGIN: " + why);
  }
  std::vector<uint8_t> payload;
  uint8_t type = 0;
  for (;;) {
    uint8_t header[tds::kHeaderSize];
    if (!socket->ReadExact(header, &why)) {
      Upgrade u = TransportFailure(*socket, "PRELOGIN answer", why);
      u.message += " (a server that only accepts TDS 8.0 strict encryption closes the connection here: try "
                   "--tds-strict)";
      return u;
    }
    tds::Header h;
    tds::Result r = tds::DecodeHeader(header, &h);
    if (r.status != tds::Status::kOk || (h.type != tds::kTabularResult && h.type != tds::kPrelogin)) {
      return Fail(Upgrade::kNotProtocol, "the answer to PRELOGIN is not a TDS packet" +
                                             (r.error.empty() ? std::string() : " (" + r.error + ")") +
                                             ": not a SQL Server");
    }
    type = h.type;
    size_t n = h.length - tds::kHeaderSize;
    if (payload.size() + n > tds::kMaxPreLoginMessage) {
      return Fail(Upgrade::kNotProtocol, "PRELOGIN answer larger than 64 KiB: not a SQL Server");
    }
    size_t at = payload.size();
    payload.resize(at + n);
    if (!socket->ReadExact(std::span<uint8_t>(payload).subspan(at), &why)) {
      return TransportFailure(*socket, "the rest of the PRELOGIN answer", why);
    }
    if (h.status & tds::kStatusEom) break;
  }
  if (type != tds::kTabularResult) {
    return Fail(Upgrade::kNotProtocol, "the answer to PRELOGIN has packet type " + std::to_string(type) +
                                           ", not 4 (tabular result)");
  }
  tds::Prelogin answer;
  tds::Result r = tds::ParsePrelogin(payload, &answer);
  if (r.status != tds::Status::kOk) {
    return Fail(Upgrade::kNotProtocol, "malformed PRELOGIN answer: " + r.error);
  }
  Upgrade u;
  std::string version = answer.Version();
  u.server_info = "SQL Server" + (version.empty() ? std::string() : " " + version);
  int enc = answer.encryption();
  if (enc < 0) return Fail(Upgrade::kNotProtocol, "the PRELOGIN answer has no ENCRYPTION option");
  u.server_info += std::string(", PRELOGIN ENCRYPTION=") + EncryptionName(enc);
  int base = enc & 0x7f;
  if (base == tds::kEncryptNotSup) {
    return Fail(Upgrade::kRefused, u.server_info +
                                       ": the server does not support encryption (no certificate is configured "
                                       "for SQL Server)");
  }
  if (base != tds::kEncryptOn && base != tds::kEncryptReq) {
    return Fail(Upgrade::kRefused, u.server_info + ": the server answered ENCRYPTION=" + EncryptionName(enc) +
                                       " to ON, so it will not encrypt the connection");
  }
  return u;
}

}  // namespace

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp: return "tcp";
    case Protocol::kPostgres: return "postgres";
    case Protocol::kMysql: return "mysql";
    case Protocol::kTds: return "tds";
  }
  return "?";
}

Upgrade StartUpgrade(Protocol protocol, bool tds_strict, SocketIo* socket) {
  switch (protocol) {
    case Protocol::kPostgres: return Postgres(socket);
    case Protocol::kMysql: return Mysql(socket);
    case Protocol::kTds:
      if (!tds_strict) return Tds(socket);
      break;
    case Protocol::kTcp: break;
  }
  return Upgrade{};
}

}  // namespace dbward::proxy::probe
