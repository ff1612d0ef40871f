// One blocking connection to a backend, made the way a session makes it:
// TCP, the protocol's upgrade through the engine's BackendUpgrade (the same
// code sessions run), then the TLS handshake. `dbward probe` and /readyz are
// built from these attempts.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/common/config.h"
#include "tls/cert_info.h"
#include "tls/connection.h"
#include "tls/context.h"

namespace dbward::proxy::probe {

struct Target {
  Protocol protocol = Protocol::kTcp;
  bool pg_direct = false;   // PostgreSQL 17 direct TLS, ALPN postgresql
  bool tds_strict = false;  // TDS 8.0: TLS first, ALPN tds/8.0
  std::string host;
  uint16_t port = 0;
  std::string server_name;  // checked against the certificate and sent as SNI
  std::string ca_file;      // empty: the system trust store
  std::string crl_file;     // backend_tls.crl_file
  std::vector<std::string> spki_pins;  // backend_tls.pin_spki
  std::chrono::milliseconds timeout{5000};  // per connection
  // backend_proxy_protocol: v2: the backend expects a PROXY header first;
  // dbward's own connections (checks, verifier lookups) send LOCAL.
  bool proxy_local = false;
};

// How one connection went.
struct Attempt {
  enum Stage { kConnect, kUpgrade, kHandshake, kDone };
  enum class Upgrade { kOk, kRefused, kDenied, kNotProtocol, kTransport };
  Stage stage = kConnect;  // where it stopped; kDone: complete
  Upgrade upgrade = Upgrade::kOk;
  std::string server_info;  // what the server told about itself during the upgrade
  bool timed_out = false;
  std::string message;      // connect, upgrade and transport failures: what happened
  tls::Diagnosis diagnosis; // handshake failures
  std::string version;      // kDone: "TLSv1.3"
  std::string cipher;
  std::string alpn;

  bool ok() const { return stage == kDone; }
  // The handshake reached certificate verification and failed there.
  bool certificate_failure() const { return stage == kHandshake && tls::IsCertificateFailure(diagnosis.cause); }
};

enum class Completion {
  kHandshake,  // stop once the TLS handshake is done (version scans)
  kUpgrade,    // the protocol's whole upgrade (TDS 8.0: PRELOGIN inside TLS too), as a session
};

class SocketIo;

// A verified backend connection kept open after the upgrade, for a
// conversation of dbward's own (auth_query).
struct OpenBackend {
  std::unique_ptr<SocketIo> socket;
  std::unique_ptr<tls::Connection> conn;  // reads and writes go through it
  std::vector<uint8_t> leftover;          // bytes read past the upgrade
  ~OpenBackend();
};

// keep: with Completion::kUpgrade, a successful attempt hands over the
// connection instead of closing it.
Attempt ProbeBackend(const Target& target, const std::shared_ptr<tls::Context>& ctx, Completion completion,
                     std::unique_ptr<OpenBackend>* keep = nullptr);

}  // namespace dbward::proxy::probe
