#include "tests/proxy/engine_test_util.h"

#include <fmt/format.h>

namespace dbward::proxy::engine::testing {

const char* KindName(Action::Kind k) {
  switch (k) {
    case Action::kSendClient: return "send-client";
    case Action::kSendBackend: return "send-backend";
    case Action::kStartClientTls: return "start-client-tls";
    case Action::kEndClientTls: return "end-client-tls";
    case Action::kConnect: return "connect";
    case Action::kRedirect: return "redirect";
    case Action::kStartBackendTls: return "start-backend-tls";
    case Action::kHandOff: return "hand-off";
    case Action::kFail: return "fail";
    case Action::kLookupVerifier: return "lookup-verifier";
    case Action::kSetupComplete: return "setup-complete";
  }
  return "?";
}

std::string Describe(const std::vector<Action>& actions) {
  std::string out;
  for (const Action& a : actions) {
    if (!out.empty()) out += " ";
    out += KindName(a.kind);
    if (a.kind == Action::kSendClient || a.kind == Action::kSendBackend) out += fmt::format("({})", a.bytes.size());
    if (a.kind == Action::kFail) out += fmt::format("({})", Token(a.failure.outcome));
    if (a.kind == Action::kRedirect) out += fmt::format("({}:{})", a.target.host, a.target.port);
  }
  return out;
}

void FakeDriver::Record(Action a) { actions.push_back(std::move(a)); }

void FakeDriver::SendToClient(std::span<const uint8_t> b) {
  Record(Action(Action::kSendClient, Bytes(b.begin(), b.end())));
  to_client.insert(to_client.end(), b.begin(), b.end());
}

void FakeDriver::SendToBackend(std::span<const uint8_t> b) {
  Record(Action(Action::kSendBackend, Bytes(b.begin(), b.end())));
  to_backend.insert(to_backend.end(), b.begin(), b.end());
}

void FakeDriver::ReadClient(bool on) {
  if (on && !client_reading) client_dirty_ = true;
  client_reading = on;
}

void FakeDriver::ReadBackend(bool on) {
  if (on && !backend_reading) backend_dirty_ = true;
  backend_reading = on;
}

void FakeDriver::StartClientTls(ClientTlsProfile profile, TlsTransport transport) {
  Action a(Action::kStartClientTls);
  a.profile = profile;
  a.transport = transport;
  Record(a);
  client_tls_start = client_in.TakeAll();
}

void FakeDriver::LookupVerifier(const std::string& user, const std::string& /*database*/, bool refresh) {
  Action a(Action::kLookupVerifier);
  a.user = user;
  a.refresh = refresh;
  Record(a);
}

void FakeDriver::RedirectBackend(const BackendTarget& target) {
  Action a(Action::kRedirect);
  a.target = target;
  Record(a);
  backend_in.Clear();
  backend_reading = false;
}

void FakeDriver::StartBackendTls(TlsTransport transport) {
  Action a(Action::kStartBackendTls);
  a.transport = transport;
  Record(a);
  EXPECT_TRUE(backend_in.empty()) << "backend bytes left over when its TLS starts";
}

void FakeDriver::FailBackend(const Failure& f) {
  backend_failed = true;
  backend_reading = false;
  backend_in.Clear();
  if (engine_ != nullptr && engine_->OnBackendFailure(f)) {
    if (!failure) failure = f;  // recorded, as the session does, though the engine goes on
    return;
  }
  Fail(f, engine_ != nullptr ? engine_->NativeError(f) : std::vector<uint8_t>{});
}

void FakeDriver::HandOffToRelay() {
  Record(Action(Action::kHandOff));
  relayed_up = client_in.TakeAll();
  relayed_down = backend_in.TakeAll();
  handed_off = true;
  client_reading = backend_reading = false;
}

void FakeDriver::Fail(const Failure& f, std::vector<uint8_t> message) {
  Action a(Action::kFail, message);
  a.failure = f;
  Record(a);
  if (!failure || !backend_failed) failure = f;
  failure_message = std::move(message);
  client_reading = backend_reading = false;
}

void FakeDriver::Settle() {
  // Engines may turn reading on from inside a callback: deliver what is
  // queued once more, as the session's loop does, but not recursively.
  if (depth_ > 0) return;
  depth_++;
  for (int round = 0; round < 16; round++) {
    if (client_reading && client_dirty_ && !client_in.empty()) {
      client_dirty_ = false;
      engine_->OnClientData(client_in);
      continue;
    }
    if (backend_reading && backend_dirty_ && !backend_in.empty()) {
      backend_dirty_ = false;
      engine_->OnBackendData(backend_in);
      continue;
    }
    break;
  }
  client_dirty_ = backend_dirty_ = false;
  depth_--;
}

void FakeDriver::FromClient(const Bytes& b) {
  client_in.Append(b);
  if (client_reading) {
    client_dirty_ = false;
    engine_->OnClientData(client_in);
  }
  Settle();
}

void FakeDriver::FromBackend(const Bytes& b) {
  backend_in.Append(b);
  if (backend_reading) {
    backend_dirty_ = false;
    engine_->OnBackendData(backend_in);
  }
  Settle();
}

Harness::Harness(Protocol protocol, bool with_client_tls) : client_tls(with_client_tls) {
  listener.name = "test";
  listener.protocol = protocol;
  listener.backend_host = "db.internal";
  listener.backend_port = 5432;
  listener.backend_tls.server_name = "db.internal";
}

void Harness::Start() {
  EngineContext context;
  context.listener = &listener;
  context.client_tls = client_tls;
  context.scram_mediation = scram_mediation;
  context.auth_failures = auth_failures;
  context.client_ip = client_ip;
  engine = NewEngine(driver, context);
  driver.Bind(engine.get());
  engine->Start();
}

void Harness::ClientTlsReady(const TlsFacts& facts) {
  engine->OnClientTlsReady(facts);
  driver.Settle();
}

void Harness::BackendConnected() {
  engine->OnBackendConnected("10.0.0.5:5432");
  driver.Settle();
}

void Harness::BackendTlsReady(const TlsFacts& facts) {
  engine->OnBackendTlsReady(facts);
  driver.Settle();
}

std::vector<Action> Harness::Take() {
  std::vector<Action> out(driver.actions.begin() + static_cast<ptrdiff_t>(seen), driver.actions.end());
  seen = driver.actions.size();
  return out;
}

TlsFacts Facts(const std::string& alpn, Bytes end_point) {
  TlsFacts f;
  f.version = "TLSv1.3";
  f.cipher = "TLS_AES_128_GCM_SHA256";
  f.alpn = alpn;
  f.server_end_point = std::move(end_point);
  return f;
}

}  // namespace dbward::proxy::engine::testing
