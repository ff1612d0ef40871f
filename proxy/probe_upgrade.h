// The plaintext part of each protocol's TLS upgrade, as a client performs it
// before the first TLS byte: PostgreSQL SSLRequest, the MySQL greeting and
// SSLRequest, the TDS 7.x PRELOGIN exchange. TLS itself is the caller's.
#pragma once

#include <string>

#include "proxy/probe_io.h"

namespace dbward::proxy::probe {

enum class Protocol { kTcp, kPostgres, kMysql, kTds };
const char* ProtocolName(Protocol p);

struct Upgrade {
  enum Status {
    kOk,           // start TLS now
    kRefused,      // the server speaks the protocol but will not do TLS
    kDenied,       // the server turned the connection away (e.g. MySQL ERR 1130)
    kNotProtocol,  // the answer is not this protocol
    kTransport,    // connection closed, reset or timed out before an answer
  };
  Status status = kOk;
  std::string message;      // why, for everything but kOk
  std::string server_info;  // what the server told about itself, e.g. "MariaDB 10.11.6"
};

// tds_strict: TDS 8.0 starts TLS on connect (PRELOGIN goes inside TLS), so
// nothing happens here, as with kTcp.
Upgrade StartUpgrade(Protocol protocol, bool tds_strict, SocketIo* socket);

}  // namespace dbward::proxy::probe
