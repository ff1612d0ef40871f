// protocol: tcp. The client speaks plaintext from the first byte; dbward
// connects, validates the backend and relays. Nothing to say to the client on
// failure but closing the connection.
#include "proxy/handler.h"
#include "proxy/mysql_handler.h"
#include "proxy/pg_handler.h"
#include "proxy/tds_handler.h"
#include "proxy/session.h"

namespace dbward::proxy {
namespace {

class TcpHandler final : public ProtocolHandler {
 public:
  void OnStart(Session& s) override {
    s.audit().client_encryption = "none";
    s.audit().trust_bypass = true;
    s.audit().bypass_reason = "plaintext";
    s.ConnectBackend();
  }
  void OnBackendConnected(Session& s) override { s.StartBackendTls(); }
  void OnBackendTlsReady(Session& s) override { s.RequestRelay(); }
};

}  // namespace

std::unique_ptr<ProtocolHandler> NewHandler(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp: return std::make_unique<TcpHandler>();
    case Protocol::kPostgres: return NewPostgresHandler();
    case Protocol::kMysql: return NewMysqlHandler();
    case Protocol::kTds: return NewTdsHandler();
  }
  return nullptr;
}

}  // namespace dbward::proxy
