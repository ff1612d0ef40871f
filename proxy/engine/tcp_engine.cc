// protocol: tcp. The client speaks plaintext from the first byte; dbward
// connects, validates the backend and relays. Nothing to say to the client on
// failure but closing the connection.
#include "proxy/engine/engines.h"
#include "proxy/engine/upgrade.h"

namespace dbward::proxy::engine {
namespace {

class TcpEngine final : public Engine {
 public:
  TcpEngine(Driver& driver, const EngineContext& context)
      : Engine(driver, context), upgrade_(BackendUpgrade::New({}, driver)) {}

  // A policy can only match tcp clients by address, and they are plaintext.
  void Start() override {
    if (Driver::Admission a = driver_.Admit(); a.denied) {
      Fail(Outcome::kRefused, a.cause, a.error);
      return;
    }
    driver_.ConnectBackend();
  }
  void OnBackendConnected(const std::string& address) override { upgrade_->OnConnected(address); }
  void OnBackendTlsReady(const TlsFacts& /*facts*/) override {
    upgrade_->OnTlsReady();
    driver_.HandOffToRelay();
  }

 private:
  std::unique_ptr<BackendUpgrade> upgrade_;
};

}  // namespace

std::unique_ptr<Engine> NewTcpEngine(Driver& driver, const EngineContext& context) {
  return std::make_unique<TcpEngine>(driver, context);
}

}  // namespace dbward::proxy::engine
