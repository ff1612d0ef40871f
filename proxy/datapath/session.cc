#include "proxy/datapath/session.h"

#include <openssl/mem.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "protocol/proxy_header.h"
#include "proxy/common/address.h"
#include "proxy/common/log.h"
#include "proxy/common/tls_text.h"
#include "proxy/datapath/socket.h"
#include "proxy/datapath/worker.h"
#include "proxy/ops/audit_sink.h"

namespace dbward::proxy {
namespace {

using engine::Failure;

// What either side may send before authentication ends; beyond it the
// session is refused rather than buffered.
constexpr size_t kMaxStaged = 64 * 1024;
// Pre-relay rounds per wake-up before yielding to other sessions.
constexpr int kMaxAdvanceRounds = 64;
constexpr uint64_t kErrorFlushMs = 2000;  // the client's time to take a native error
constexpr uint64_t kLingerMs = 1000;      // then to hang up itself

int EventFor(tls::IoResult::Kind k) { return k == tls::IoResult::kWantWrite ? UV_WRITABLE : UV_READABLE; }

engine::TlsFacts FactsOf(const tls::Connection& c) {
  return {c.version_name(), c.cipher(), c.alpn(), c.ServerEndPoint()};
}

enum class Step { kWaiting, kFailed, kDone };

// One step of a leg's TLS handshake; while it waits, *events gets the poll
// interest it waits for.
Step StepHandshake(tls::Connection* conn, int* events) {
  switch (conn->Handshake()) {
    case tls::Connection::HandshakeStatus::kWantRead:
      *events |= UV_READABLE;
      return Step::kWaiting;
    case tls::Connection::HandshakeStatus::kWantWrite:
      *events |= UV_WRITABLE;
      return Step::kWaiting;
    case tls::Connection::HandshakeStatus::kFailed: return Step::kFailed;
    case tls::Connection::HandshakeStatus::kDone: return Step::kDone;
  }
  return Step::kFailed;
}

// TDS 7.x: the handshake ran inside PRELOGIN packets; from now on TLS
// records go straight on the socket. False when the peer had started
// another PRELOGIN packet behind the handshake.
bool UnwrapPrelogin(std::unique_ptr<PreloginFramingIo>* framing, Leg* leg) {
  if (!*framing) return true;
  if (!(*framing)->Idle()) return false;
  leg->tls()->set_io(leg);
  framing->reset();
  return true;
}

}  // namespace

Session::Session(Worker* worker, ListenerRuntime* listener, int client_fd, uint64_t id)
    : worker_(worker),
      listener_(listener),
      tls_(listener->tls()) {
  client_.set_fd(client_fd);
  const ListenerConfig& cfg = listener->config;
  backend_server_name_ = cfg.backend_tls.server_name;
  record_.id = id;
  record_.worker = worker->index();
  record_.client_addr = PeerAddress(client_fd);
  engine::EngineContext context;
  context.listener = &listener_->config;
  context.client_tls = tls_->client != nullptr;
  context.rsa_key = tls_->rsa_key.get();
  context.scram_mediation = cfg.scram.has_value() && listener_->verifiers != nullptr;
  context.auth_failures = &listener_->auth_failures;
  context.client_ip = IpOf(record_.client_addr);
  engine_ = engine::NewEngine(*this, context);
  worker_->AddSession(this);
}

Session::~Session() { worker_->RemoveSession(this); }

void Session::Start() {
  uv_loop_t* loop = worker_->loop();
  start_ms_ = uv_now(loop);
  last_activity_ms_ = start_ms_;
  deadline_ms_ = start_ms_ + listener_->config.timeouts.handshake_ms;
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  uv_timer_init(loop, &repump_);
  repump_.data = this;
  open_handles_ = 2;
  client_watch_ = Watch::Open(loop, client_.fd(), this);
  if (client_watch_ == nullptr) {
    Fail({Outcome::kInternalError, Cause::kInternal, "cannot watch client socket"}, {});
    return;
  }
  ArmHandshakeDeadline();
  const ListenerConfig& cfg = listener_->config;
  if (cfg.proxy_protocol) {
    const std::string peer = ClientIp();
    for (const Cidr& c : cfg.proxy_protocol->trusted) {
      if (c.Contains(peer)) awaiting_proxy_header_ = true;
    }
  }
  if (awaiting_proxy_header_) {
    // A trusted balancer speaks first, whatever the protocol behind it.
    client_reading_ = true;
  } else {
    BeginProtocol();
  }
  Advance();
}

// Only the balancers in proxy_protocol.trusted may say who the client is:
// a header at the start of the client's own bytes (from an untrusted peer,
// or a second one behind a trusted balancer's) is refused, not believed.
bool Session::RefuseProxyHeader(std::span<const uint8_t> first) {
  if (!listener_->config.proxy_protocol || proxy_sniffed_ || first.empty()) return false;
  const auto sniff = protocol::proxy_header::SniffHeader(first);
  proxy_sniffed_ = sniff != protocol::proxy_header::Sniff::kMaybe;
  if (sniff != protocol::proxy_header::Sniff::kYes) return false;
  Fail(ProxyHeaderRefusal(), {});
  return true;
}

engine::Failure Session::ProxyHeaderRefusal() const {
  return {Outcome::kRefused, Cause::kProxyUntrusted,
          record_.via.empty()
              ? "PROXY protocol header from " + record_.client_addr +
                    ", which is not in proxy_protocol.trusted; add the balancer's address there"
              : "a second PROXY protocol header, from the client " + record_.client_addr + " behind balancer " +
                    record_.via + ": only the balancer's header is taken"};
}

// The handshake gate counts per client address, so it waits for the
// balancer's header to name the client.
void Session::BeginProtocol() {
  const ListenerConfig& cfg = listener_->config;
  std::string why;
  if (!listener_->handshakes.Enter(ClientIp(), cfg.max_handshakes, cfg.max_handshakes_per_client, &why)) {
    engine_->StartRefused({Outcome::kRefused, Cause::kMaxHandshakes, why});
  } else {
    in_handshake_gate_ = true;
    engine_->Start();
  }
}

void Session::TakeProxyHeader() {
  namespace ph = protocol::proxy_header;
  ph::Header h;
  protocol::Result r = ph::Parse(client_in_.data(), &h);
  if (r.need_more()) return;
  const std::string peer = record_.client_addr;
  if (r.malformed()) {
    // The peer is a balancer; the PROXY protocol has no error message.
    Fail({Outcome::kClientError, Cause::kProxyHeader,
          "PROXY protocol header from " + peer + " (in proxy_protocol.trusted) is invalid: " + r.error},
         {});
    return;
  }
  client_in_.Consume(h.length);
  awaiting_proxy_header_ = false;
  client_reading_ = false;
  proxy_sniffed_ = false;  // the client's own first bytes are checked next
  if (h.has_addresses) {
    record_.via = peer;
    record_.client_addr = FormatRawAddress(h.src_addr, h.src_port);
    engine_->SetClientIp(ClientIp());
    if (listener_->config.backend_proxy_protocol) {
      origin_ = std::make_unique<Origin>(Origin{h.src_addr, h.dst_addr, h.src_port, h.dst_port});
    }
    LOG_DEBUG("listener={} session={} client={} via {} (PROXY v{})", listener_->config.name, record_.id,
              record_.client_addr, peer, h.version);
  }
  // LOCAL (a health check) and UNKNOWN: the balancer itself is the client.
  BeginProtocol();
}

void Session::SendBackendProxyHeader() {
  namespace ph = protocol::proxy_header;
  ph::Outgoing o;
  if (!origin_) {
    origin_ = std::make_unique<Origin>();
    if (!RawAddress(client_.fd(), true, &origin_->src, &origin_->src_port) ||
        !RawAddress(client_.fd(), false, &origin_->dst, &origin_->dst_port)) {
      origin_->src.clear();
      origin_->dst.clear();
    }
  }
  o.src_addr = origin_->src;
  o.dst_addr = origin_->dst;
  o.src_port = origin_->src_port;
  o.dst_port = origin_->dst_port;
  // Unknown or mixed families (a unix socket): the backend sees dbward.
  if (o.src_addr.empty() || o.src_addr.size() != o.dst_addr.size()) o.command = ph::Command::kLocal;
  o.unique_id = (listener_->config.name + "/" + std::to_string(record_.id)).substr(0, ph::kMaxUniqueId);
  o.authority = client_sni_;
  o.alpn = record_.client_alpn;
  // Only facts dbward has: the client's TLS is up before dbward connects
  // for PostgreSQL and TDS 8.0 strict; a MySQL client, and a TDS 7.x client
  // (whose TLS runs inside PRELOGIN after dbward's own), have not got there.
  if (client_tls_ == ClientTls::kUp) {
    ph::SslInfo ssl;
    ssl.client = ph::kClientSsl | (client_certificate_ ? ph::kClientCertConn : 0);
    ssl.verify = client_certificate_ ? 0 : 1;
    ssl.version = record_.client_tls_version;
    ssl.cipher = record_.client_cipher;
    ssl.cn = client_cert_cn_;
    o.ssl = ssl;
  }
  std::vector<uint8_t> header = ph::EncodeV2(o);
  if (header.empty()) {
    // Never connect on without the header the backend expects.
    FailBackend({Outcome::kInternalError, Cause::kInternal, "internal: could not encode the backend's PROXY header"});
    return;
  }
  proxy_header_bytes_ += header.size();
  SendToBackend(header);
}

void Session::LeaveHandshakeGate() {
  if (!in_handshake_gate_) return;
  in_handshake_gate_ = false;
  listener_->handshakes.Leave(ClientIp());
}

// ---- engine::Driver ----

void Session::SendToClient(std::span<const uint8_t> bytes) {
  client_out_.insert(client_out_.end(), bytes.begin(), bytes.end());
}

void Session::SendToBackend(std::span<const uint8_t> bytes) {
  backend_out_.insert(backend_out_.end(), bytes.begin(), bytes.end());
  // After the login only (before it, the last bytes may be a password's):
  // the relay's goodbye check must see a Terminate the engine passed on.
  if (setup_complete_ && !bytes.empty()) {
    const size_t n = std::min(bytes.size(), up_tail_.size());
    const size_t keep = std::min<size_t>(up_tail_len_, up_tail_.size() - n);
    std::copy(up_tail_.begin() + (up_tail_len_ - keep), up_tail_.begin() + up_tail_len_, up_tail_.begin());
    std::copy(bytes.end() - static_cast<ptrdiff_t>(n), bytes.end(), up_tail_.begin() + keep);
    up_tail_len_ = static_cast<uint8_t>(keep + n);
  }
}

void Session::ReadClient(bool on) {
  if (on && !client_reading_) client_dirty_ = true;
  client_reading_ = on;
}

void Session::ReadBackend(bool on) {
  if (on && !backend_reading_) backend_dirty_ = true;
  backend_reading_ = on;
}

void Session::StartClientTls(engine::ClientTlsProfile profile, engine::TlsTransport transport) {
  client_tls_ = ClientTls::kPending;
  client_tls_profile_ = profile;
  client_tls_transport_ = transport;
}

void Session::EndClientTls() { client_.DetachTls(); }

void Session::ConnectBackend() {
  if (backend_leg_ != BackendLeg::kNone) return;
  if (WarmPool* pool = worker_->warm(listener_); pool != nullptr && engine_->TakesWarmBackend()) {
    if (std::optional<WarmHandoff> leg = pool->Take()) {
      AdoptWarmBackend(std::move(*leg));
      return;
    }
  }
  backend_leg_ = BackendLeg::kConnecting;
  // The connector keeps the time while it works, within the same deadline.
  uv_timer_stop(&timer_);
  connector().Start(deadline_ms_);
}

Connector& Session::connector() {
  if (!connector_) {
    const ListenerConfig& cfg = listener_->config;
    connector_ = std::make_unique<Connector>(worker_->loop(), static_cast<Connector::Callbacks&>(*this),
                                             cfg.backend_host, cfg.backend_port, cfg.timeouts.connect_ms);
    if (!cfg.backend_instance.empty()) connector_->SetTarget(cfg.backend_host, 0, cfg.backend_instance);
  }
  return *connector_;
}

void Session::AdoptWarmBackend(WarmHandoff leg) {
  backend_.set_fd(leg.fd);
  backend_watch_ = leg.watch;
  backend_watch_->SetHandler(this);
  leg.tls->set_io(&backend_);
  const tls::Connection& conn = *leg.tls;
  record_.backend_addr = leg.address;
  record_.backend_server_name = leg.server_name;
  record_.backend_tls_up = true;
  record_.backend_verified = conn.verified();
  record_.backend_tls_version = conn.version_name();
  record_.backend_cipher = conn.cipher();
  record_.backend_not_after = conn.PeerNotAfterUnix();
  record_.backend_warm = true;
  warm_ready_ = FactsOf(conn);
  backend_.Unread(leg.buffered);
  backend_.AttachTls(std::move(leg.tls));
  backend_.EnableReadAhead();  // warm legs are PostgreSQL: TLS to the end
  backend_leg_ = BackendLeg::kOpen;
  LOG_DEBUG("listener={} session={} took a warm backend leg to {}", listener_->config.name, record_.id,
            record_.backend_addr);
  ScheduleRepump();
}

void Session::RedirectBackend(const engine::BackendTarget& target) {
  if (phase_ != Phase::kHandshake) return;
  LOG_INFO("listener={} session={} backend {} routed the login to {}; following it", listener_->config.name, record_.id,
           record_.backend_addr, JoinHostPort(target.host, target.port));
  CloseBackend();
  backend_leg_ = BackendLeg::kNone;
  backend_server_name_ = target.server_name;
  // The record describes the leg the session ends with: the routed one.
  record_.backend_tls_up = false;
  record_.backend_verified = false;
  connector().SetTarget(target.host, target.port);
  ConnectBackend();
}

void Session::LookupVerifier(const std::string& user, const std::string& database, bool refresh) {
  if (listener_->verifiers == nullptr) {
    VerifierAnswer none;
    none.detail = "no verifier source";
    verifier_answer_ = std::move(none);
    ScheduleRepump();
    return;
  }
  if (verifier_ticket_) verifier_ticket_->Cancel();
  verifier_ticket_ = listener_->verifiers->Lookup(worker_->loop(), user, database, refresh, [this](VerifierAnswer a) {
    // On this session's loop; a cancelled ticket (the session ended) never gets here.
    verifier_answer_ = std::move(a);
    ScheduleRepump();
  });
}

engine::Driver::Admission Session::Admit() {
  // The client certificate comes first: a client that cannot present an
  // allowed one is not let in by any policy rule. A client that never
  // started TLS presented none either.
  if (cert_refusal_) return *cert_refusal_;
  if (const ClientTlsConfig* ct = listener_->config.client_tls ? &*listener_->config.client_tls : nullptr;
      ct != nullptr && ct->client_certs && ct->client_certs->verify == ClientCertConfig::Verify::kRequired &&
      client_tls_ != ClientTls::kUp) {
    engine::Driver::Admission a;
    a.denied = true;
    a.cause = Cause::kClientCertMissing;
    a.error = "listener " + listener_->config.name +
              " requires a client certificate (client_tls.verify: required), which needs TLS, and this client did "
              "not use TLS; connect with TLS and a certificate issued by a CA in " + ct->client_certs->ca_file;
    return a;
  }
  const engine::ClientFacts& f = engine_->facts();
  if (listener_->canary && f.encryption == ClientEncryption::kNone &&
      listener_->canary->TakeFailedLogin(ClientIp(), f.user, f.database)) {
    engine::Driver::Admission a;
    a.denied = true;
    a.cause = Cause::kCanaryRetry;
    a.error = "listener " + listener_->config.name + ": this client's TLS connection just now accepted dbward's test "
              "(canary) certificate and its login as " + f.user + " failed; its plaintext retry (libpq "
              "sslmode=prefer does this) is refused so that the test does not turn a TLS client into a plaintext "
              "one. Connect again: the next connection from " + ClientIp() + " gets dbward's real certificate";
    return a;
  }
  const std::vector<PolicyRule>& rules = listener_->config.policy;
  if (rules.empty()) return {};
  PolicySubject s;
  s.ip = ClientIp();
  s.user = f.user;
  s.application = f.application;
  s.library = f.client_library;
  s.database = f.database;
  s.identity = record_.client_identity;
  s.client_certificate = client_certificate_;
  s.encryption = f.encryption;
  s.accepted_bad_certificate = canary_ != Canary::kNone && record_.validates == false;
  s.validates = record_.validates;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  PolicyVerdict v = EvaluatePolicy(rules, s, now);
  if (v.rule == nullptr) return {};
  record_.policy_rule = v.Label();
  record_.policy_action = !v.violates ? "allow" : v.denied() ? "deny" : "warn";
  if (!v.violates) return {};
  listener_->metrics.policy.Inc(v.Label() + "|" + record_.policy_action);
  std::string why = "listener " + listener_->config.name + ": " + v.Label() + " requires " + Token(v.rule->require) +
                    ", this connection is " + Token(v.level);
  if (s.accepted_bad_certificate) {
    why += " (the client accepted a test certificate it should have refused: it does not validate certificates)";
  } else if (s.validates == false) {
    why += " (an earlier connection from " + s.ip + " accepted a test certificate it should have refused)";
  } else if (v.rule->require == ProtectionLevel::kValidated && !s.validates && v.level == ProtectionLevel::kTls) {
    why += " (not yet proven to validate certificates)";
  }
  if (!v.denied()) {
    LOG_WARN("listener={} session={} client={} policy warning: {}{}", listener_->config.name, record_.id,
             record_.client_addr, why,
             v.rule->from_ms ? " (denied from " + v.rule->from_text + ")" : std::string(" (action: warn)"));
    return {};
  }
  engine::Driver::Admission a;
  a.denied = true;
  a.cause = Cause::kPolicyDenied;
  a.error = why;
  a.required = v.rule->require;
  return a;
}

// A TLS client on a listener with client_tls.ca_file: its certificate
// verified during the handshake; here it is named, checked against the
// allow-list, and its absence judged (verify: required). The verdict waits
// for Admit, where the protocol can say it in its own words.
void Session::CheckClientCertificate(const tls::Connection& conn) {
  if (!listener_->config.client_tls || !listener_->config.client_tls->client_certs) return;
  const ClientCertConfig& cc = *listener_->config.client_tls->client_certs;
  tls::PeerIdentity peer = conn.ClientIdentity();
  engine::Driver::Admission refusal;
  refusal.denied = true;
  if (!peer.present) {
    if (cc.verify == ClientCertConfig::Verify::kRequired) {
      refusal.cause = Cause::kClientCertMissing;
      refusal.error = "listener " + listener_->config.name +
                      " requires a client certificate (client_tls.verify: required) and the client sent none; give "
                      "the client a certificate issued by a CA in " + cc.ca_file +
                      " (libpq: sslcert and sslkey; MariaDB: --ssl-cert and --ssl-key; JDBC: a keystore)";
      cert_refusal_ = refusal;
    }
    return;
  }
  CertIdentity id{peer.cn, peer.dns, peer.uris, peer.spki};
  client_certificate_ = true;
  client_cert_cn_ = peer.cn;
  record_.client_identity = id.Name();
  if (!cc.allow.Allows(id)) {
    refusal.cause = Cause::kClientCertNotAllowed;
    refusal.error = "listener " + listener_->config.name + ": the client certificate (" + id.Describe() +
                    ") is valid but not in client_tls.allow; add its CN, a SAN or its SPKI pin there";
    cert_refusal_ = refusal;
  }
}

void Session::SetupComplete() {
  if (setup_complete_) return;
  setup_complete_ = true;
  LeaveHandshakeGate();
  // Logged in: the backend is never connected (or routed) again.
  connector_.reset();
  uint64_t now = uv_now(worker_->loop());
  last_activity_ms_ = now;
  listener_->metrics.handshake_seconds.Observe(static_cast<double>(now - start_ms_) / 1000.0);
  uint64_t idle = listener_->config.timeouts.idle_ms;
  if (idle > 0) {
    ArmTimer(idle);
  } else {
    uv_timer_stop(&timer_);
  }
}

void Session::StartBackendTls(engine::TlsTransport transport) {
  backend_tls_pending_ = true;
  backend_tls_transport_ = transport;
}

void Session::HandOffToRelay() {
  // Whatever the engine left unconsumed belongs to the other side. A tcp
  // listener's client bytes reach here unread: checked now, and the relay
  // checks what follows.
  if (RefuseProxyHeader(client_in_.data())) return;
  if (listener_->config.proxy_protocol && !proxy_sniffed_) {
    std::span<const uint8_t> pending = client_in_.data();
    relay_sniff_prefix_.assign(pending.begin(), pending.end());
  }
  std::vector<uint8_t> down = backend_in_.TakeAll();
  SendToClient(down);
  std::vector<uint8_t> up = client_in_.TakeAll();
  SendToBackend(up);
  OPENSSL_cleanse(up.data(), up.size());
  client_reading_ = backend_reading_ = false;
  relay_requested_ = true;
}

void Session::Record(const Failure& f) {
  record_.outcome = f.outcome;
  record_.cause = f.cause;
  record_.error = f.error;
  const std::string& l = listener_->config.name;
  Logf(LogLevelOf(f.outcome), "listener={} session={} client={} {}: {}", l, record_.id, record_.client_addr,
       Token(f.outcome), f.error);
}

void Session::Fail(const Failure& f, std::vector<uint8_t> message) {
  if (phase_ == Phase::kClosed || phase_ == Phase::kLingering || phase_ == Phase::kFlushingError) return;
  if (canary_ != Canary::kNone && record_.validates == false && engine_ && !engine_->facts().logged_in &&
      !engine_->facts().user.empty() && listener_->canary) {
    // It accepted the canary and its login failed (a libpq SCRAM client
    // without mediation fails channel binding). Remembered before the client
    // reads the error: not tested again, and its immediate plaintext retry
    // (libpq sslmode=prefer) is not let through as a downgrade.
    listener_->canary->RememberNotValidating(ClientIp());
    listener_->canary->RememberFailedLogin(ClientIp(), engine_->facts().user, engine_->facts().database);
  }
  // After a backend failure the engine took over, it reports that one: keep it.
  if (!backend_failed_) Record(f);
  if ((message.empty() && client_out_.empty()) || phase_ != Phase::kHandshake ||
      client_tls_ == ClientTls::kHandshake) {
    Finish();
    return;
  }
  // Say it to the client in its own protocol, then close gracefully.
  client_out_.insert(client_out_.end(), message.begin(), message.end());
  phase_ = Phase::kFlushingError;
  client_reading_ = backend_reading_ = false;
  relay_requested_ = false;
  if (client_tls_ == ClientTls::kPending) client_tls_ = ClientTls::kNone;
  CloseBackend();
  ArmTimer(kErrorFlushMs);
  ScheduleRepump();
}

void Session::FailNative(const Failure& f) { Fail(f, phase_ == Phase::kHandshake ? engine_->NativeError(f) : std::vector<uint8_t>{}); }

void Session::FailBackend(const Failure& f) {
  if (phase_ != Phase::kHandshake) return;
  CloseBackend();
  backend_leg_ = BackendLeg::kGone;
  if (!backend_failed_) {
    backend_failed_ = true;
    Record(f);
    if (engine_ && engine_->OnBackendFailure(f)) {
      // The engine goes on with the client alone, within the same deadline.
      if (phase_ == Phase::kHandshake) {
        ArmHandshakeDeadline();
        ScheduleRepump();
      }
      return;
    }
  }
  Fail(f, engine_ ? engine_->NativeError(f) : std::vector<uint8_t>{});
}

void Session::CloseBackend() {
  if (connector_) connector_->Cancel();
  if (backend_watch_ != nullptr) {
    backend_watch_->Close();
    backend_watch_ = nullptr;
  }
  backend_.Close();
  backend_framing_.reset();
  if (backend_leg_ != BackendLeg::kNone) backend_leg_ = BackendLeg::kGone;
  backend_reading_ = false;
  backend_tls_pending_ = false;
  OPENSSL_cleanse(backend_out_.data(), backend_out_.size());
  backend_out_.clear();
  backend_in_.Clear();
}

// ---- Connector::Callbacks ----

void Session::OnConnected(int fd, Watch* watch, const std::string& address) {
  backend_.set_fd(fd);
  backend_watch_ = watch;
  backend_watch_->SetHandler(this);
  record_.backend_addr = address;
  backend_leg_ = BackendLeg::kOpen;
  ArmHandshakeDeadline();
  // Before anything the engine sends, TLS included.
  if (listener_->config.backend_proxy_protocol) {
    SendBackendProxyHeader();
    if (backend_leg_ != BackendLeg::kOpen) {
      Advance();
      return;
    }
  }
  engine_->OnBackendConnected(address);
  Advance();
}

void Session::OnConnectFailed(const Failure& failure) {
  record_.backend_addr = connector_->address();
  FailBackend(failure);
  Advance();
}

// ---- the pre-relay loop ----

void Session::OnSocketEvent(Watch* /*watch*/, int /*status*/, int /*events*/) {
  last_activity_ms_ = uv_now(worker_->loop());
  Advance();
}

bool Session::BeginClientHandshake() {
  client_tls_ = ClientTls::kNone;
  bool strict = client_tls_profile_ == engine::ClientTlsProfile::kTdsStrict;
  std::shared_ptr<tls::Context> ctx = strict ? tls_->client_strict : tls_->client;
  if (ctx && listener_->canary) {
    // A verdict from an earlier session stands for `remember`: no canary
    // now, and the audit carries it.
    if (std::optional<bool> verdict = listener_->canary->Remembered(ClientIp())) {
      record_.canary_remembered = true;
      record_.validates = *verdict;
    }
  }
  // A client a `require: validated` deny rule may cover proves itself with
  // a canary whatever the sample, and again after a verdict that it does not
  // validate (it may have been fixed since; it is refused either way).
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const bool must_prove = ctx && listener_->canary && PolicyWantsProof(listener_->config.policy, ClientIp(), now);
  if (must_prove && record_.canary_remembered && record_.validates == false) {
    record_.canary_remembered = false;
    record_.validates.reset();
  }
  if (ctx && listener_->canary && tls_->canary_client && !record_.canary_remembered &&
      (must_prove || listener_->canary->ShouldTest(ClientIp()))) {
    ctx = strict ? tls_->canary_client_strict : tls_->canary_client;
    canary_ = Canary::kOffered;
    record_.canary = listener_->canary->config().mode;
  }
  if (!ctx) {
    Fail({Outcome::kInternalError, Cause::kInternal, "client TLS requested but client_tls is not configured"}, {});
    return false;
  }
  // Bytes the engine left unconsumed are where the client's TLS stream starts.
  if (!client_in_.empty()) client_.Unread(client_in_.TakeAll());
  tls::Io* io = &client_;
  if (client_tls_transport_ == engine::TlsTransport::kTdsPrelogin) {
    client_framing_ = std::make_unique<PreloginFramingIo>(&client_);
    io = client_framing_.get();
  }
  std::string error;
  auto conn = tls::Connection::NewServer(ctx, io, &error);
  if (!conn) {
    Fail({Outcome::kInternalError, Cause::kInternal, error}, {});
    return false;
  }
  client_.AttachTls(std::move(conn));
  if (client_tls_transport_ == engine::TlsTransport::kStream && TlsLastsTheSession()) client_.EnableReadAhead();
  client_tls_ = ClientTls::kHandshake;
  return true;
}

// Once TLS starts on a leg of these protocols, every byte after it on that
// leg is TLS, so the leg may read ciphertext ahead from the handshake on
// (one recv per record instead of two). TDS may leave TLS after LOGIN7
// (login-only encryption), and bytes read ahead there would be plaintext.
bool Session::TlsLastsTheSession() const {
  const Protocol p = listener_->config.protocol;
  return p == Protocol::kPostgres || p == Protocol::kMysql || p == Protocol::kTcp;
}

void Session::BeginBackendHandshake() {
  backend_tls_pending_ = false;
  tls::Io* io = &backend_;
  if (backend_tls_transport_ == engine::TlsTransport::kTdsPrelogin) {
    backend_framing_ = std::make_unique<PreloginFramingIo>(&backend_);
    io = backend_framing_.get();
  }
  std::string error;
  record_.backend_server_name = backend_server_name_;
  auto conn = tls::Connection::NewClient(tls_->backend, backend_server_name_, io, &error);
  if (!conn) {
    FailBackend({Outcome::kBackendTlsFailed, Cause::kTlsError, error});
    return;
  }
  backend_.AttachTls(std::move(conn));
  if (backend_tls_transport_ == engine::TlsTransport::kStream && TlsLastsTheSession()) backend_.EnableReadAhead();
  backend_leg_ = BackendLeg::kTlsHandshake;
}

bool Session::AdvanceClient(int* events) {
  bool progress = false;
  if (client_tls_ == ClientTls::kHandshake) {
    tls::Connection* conn = client_.tls();
    switch (StepHandshake(conn, events)) {
      case Step::kWaiting: return false;
      case Step::kFailed:
        if (conn->rejected_peer_certificate()) {
          // dbward refused the client's certificate (client_tls.ca_file).
          const tls::Diagnosis d = conn->diagnosis();
          Fail({Outcome::kClientTlsFailed, Cause::kClientCertRejected,
                fmt::format("the client's certificate did not verify against client_tls.ca_file {}: {} ({}); the "
                            "client saw a TLS alert",
                            listener_->config.client_tls->client_certs->ca_file, d.detail, d.failed.OneLine())},
               {});
          return false;
        }
        if (canary_ != Canary::kNone) {
          CanaryRejected(conn->failure_detail());
          return false;
        }
        Fail({Outcome::kClientTlsFailed, CauseOf(conn->failure_cause()),
              "TLS handshake with the client failed: " + conn->failure_detail() +
                  (conn->io_eof() ? " (the client closed the connection; it may not trust dbward's certificate)" : "")},
             {});
        return false;
      case Step::kDone:
        if (!UnwrapPrelogin(&client_framing_, &client_)) {
          Fail({Outcome::kClientError, Cause::kMalformed, "client sent data inside PRELOGIN after the TLS handshake"}, {});
          return false;
        }
        client_tls_ = ClientTls::kUp;
        if (canary_ == Canary::kOffered) canary_ = Canary::kAwaitingUse;
        record_.client_tls_version = conn->version_name();
        record_.client_cipher = conn->cipher();
        record_.client_alpn = conn->alpn();
        if (const char* sni = SSL_get_servername(conn->ssl(), TLSEXT_NAMETYPE_host_name)) client_sni_ = sni;
        CheckClientCertificate(*conn);
        engine_->OnClientTlsReady(FactsOf(*conn));
        return true;
    }
  }
  if (!client_out_.empty()) {
    tls::IoResult r = client_.Send(client_out_);
    if (r.ok()) {
      client_out_.erase(client_out_.begin(), client_out_.begin() + static_cast<ptrdiff_t>(r.n));
      staged_down_ += r.n;
      progress = true;
    } else if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      client_out_.clear();
      Fail({Outcome::kReset, Cause::kClientWrite,
            "client went away: " + std::string(r.err ? strerror(r.err) : "closed")},
           {});
      return false;
    }
  }
  if (client_out_.empty() && client_tls_ == ClientTls::kPending) return BeginClientHandshake();
  bool lingering = phase_ == Phase::kLingering;
  // Backpressure: nothing more from the client while the backend has not
  // taken what it already sent (the watch phase passes client bytes on).
  if (!lingering && (!client_reading_ || !client_out_.empty() || backend_out_.size() >= kMaxStaged)) return progress;
  if (!lingering && client_dirty_) {
    client_dirty_ = false;
    if (!client_in_.empty()) {
      if (RefuseProxyHeader(client_in_.data())) return false;
      engine_->OnClientData(client_in_);
      return true;
    }
  }
  uint8_t buf[16 * 1024];
  tls::IoResult r = client_.Recv(buf);
  if (r.ok() && canary_ == Canary::kAwaitingUse) {
    // The client goes on over a connection with the canary certificate: it
    // does not validate.
    canary_ = Canary::kDecided;
    record_.validates = false;
  }
  if (r.ok()) {
    if (lingering) return true;  // discard until the client closes
    if (client_in_.size() + r.n > kMaxStaged) {
      Fail({Outcome::kClientError, Cause::kTooLarge, "client sent more than 64 KiB before authentication"}, {});
      return false;
    }
    client_in_.Append(std::span<const uint8_t>(buf, r.n));
    OPENSSL_cleanse(buf, r.n);
    if (awaiting_proxy_header_) {
      TakeProxyHeader();
      return true;
    }
    if (RefuseProxyHeader(client_in_.data())) return false;
    engine_->OnClientData(client_in_);
    return true;
  }
  if (r.blocked()) {
    *events |= EventFor(r.kind);
    return progress;
  }
  if (lingering) {
    Finish();
    return false;
  }
  if (canary_ == Canary::kAwaitingUse) {
    CanaryRejected(r.kind == tls::IoResult::kEof ? "closed the connection after the handshake"
                                                 : "reset the connection after the handshake");
    return false;
  }
  bool eof = r.kind == tls::IoResult::kEof;
  if (eof && setup_complete_) {
    // Logged in, the engine still watching the first answers: a client
    // that says goodbye now ends a session like any other, and the relay
    // (which sees the same end of stream) closes it as it would later.
    HandOffToRelay();
    return true;
  }
  Fail(eof ? Failure{Outcome::kClientClosed, Cause::kClientEof,
                     "client closed the connection before the session was set up"}
           : Failure{Outcome::kReset, Cause::kClientRead, "client connection error: " + std::string(strerror(r.err))},
       {});
  return false;
}

bool Session::AdvanceBackend(int* events) {
  const std::string& addr = record_.backend_addr;
  if (backend_leg_ == BackendLeg::kTlsHandshake) {
    tls::Connection* conn = backend_.tls();
    switch (StepHandshake(conn, events)) {
      case Step::kWaiting: return false;
      case Step::kFailed:
        FailBackend({Outcome::kBackendTlsFailed, CauseOf(conn->failure_cause()),
                     "backend " + addr + ": " + ExplainHandshake(conn->diagnosis(), "backend_tls").Sentence()});
        return false;
      case Step::kDone:
        if (!UnwrapPrelogin(&backend_framing_, &backend_)) {
          FailBackend({Outcome::kBackendError, Cause::kMalformed, "backend sent data inside PRELOGIN after the TLS handshake"});
          return false;
        }
        LOG_DEBUG("listener={} session={} backend {} verified, {} {}", listener_->config.name, record_.id, addr,
                  conn->version_name(), conn->cipher());
        // The record keeps what the leg was, even if it closes before the
        // session ends (a login dbward itself refused).
        record_.backend_tls_up = true;
        record_.backend_verified = conn->verified();
        record_.backend_tls_version = conn->version_name();
        record_.backend_cipher = conn->cipher();
        record_.backend_not_after = conn->PeerNotAfterUnix();
        record_.backend_resumption = conn->resumption();
        backend_leg_ = BackendLeg::kOpen;
        engine_->OnBackendTlsReady(FactsOf(*conn));
        return true;
    }
  }
  if (backend_leg_ != BackendLeg::kOpen) return false;
  if (backend_out_.empty() && backend_tls_pending_) {
    BeginBackendHandshake();
    return true;
  }
  bool progress = false;
  if (!backend_out_.empty()) {
    tls::IoResult r = backend_.Send(backend_out_);
    if (r.ok()) {
      // Staged bytes may hold a password (MySQL full authentication): wipe
      // them once sent.
      OPENSSL_cleanse(backend_out_.data(), r.n);
      backend_out_.erase(backend_out_.begin(), backend_out_.begin() + static_cast<ptrdiff_t>(r.n));
      staged_up_ += r.n;
      progress = true;
    } else if (r.blocked()) {
      *events |= EventFor(r.kind);
    } else {
      FailBackend({Outcome::kBackendClosed, Cause::kBackendWrite,
                   "backend " + addr + " went away: " + strerror(r.err)});
      return false;
    }
  }
  if (!backend_reading_) return progress;
  if (backend_dirty_) {
    backend_dirty_ = false;
    if (!backend_in_.empty()) {
      engine_->OnBackendData(backend_in_);
      return true;
    }
  }
  uint8_t buf[16 * 1024];
  tls::IoResult r = backend_.Recv(buf);
  if (r.ok()) {
    if (backend_in_.size() + r.n > kMaxStaged) {
      FailNative({Outcome::kBackendError, Cause::kTooLarge, "backend sent more than 64 KiB before authentication completed"});
      return false;
    }
    backend_in_.Append(std::span<const uint8_t>(buf, r.n));
    engine_->OnBackendData(backend_in_);
    return true;
  }
  if (r.blocked()) {
    *events |= EventFor(r.kind);
    return progress;
  }
  if (r.kind == tls::IoResult::kEof && setup_complete_) {
    // As for the client above: the relay judges how the backend ended.
    HandOffToRelay();
    return true;
  }
  tls::Connection* t = backend_.tls();
  if (r.err == EPROTO && t != nullptr &&
      (t->failure_cause() == tls::FailureCause::kClientCertRequired ||
       t->failure_cause() == tls::FailureCause::kPeerRejectedUs)) {
    // TLS 1.3: the server judges our certificate after our handshake is done.
    FailBackend({Outcome::kBackendTlsFailed, CauseOf(t->failure_cause()),
                 "backend " + addr + ": " + ExplainHandshake(t->diagnosis(), "backend_tls").Sentence()});
  } else if (setup_complete_) {
    // Logged in (the engine still watching the first answers): a reset now
    // is the backend dying under a connected client, as in the relay.
    Fail({Outcome::kBackendClosedAbruptly, Cause::kBackendReset,
          fmt::format("backend {} reset the connection ({}) while the client was connected; {} bytes had gone up, "
                      "{} down",
                      addr, strerror(r.err), staged_up_, staged_down_)},
         {});
  } else {
    FailBackend({Outcome::kBackendClosed, Cause::kBackendEof,
                 "backend " + addr + " closed the connection during the handshake" +
                     (r.kind == tls::IoResult::kEof ? std::string() : ": " + std::string(strerror(r.err)))});
  }
  return false;
}

void Session::Advance() {
  for (int round = 0; round < kMaxAdvanceRounds; round++) {
    if (phase_ == Phase::kClosed || phase_ == Phase::kRelaying) return;
    if (warm_ready_ && phase_ == Phase::kHandshake) {
      engine::TlsFacts facts = std::move(*warm_ready_);
      warm_ready_.reset();
      engine_->OnBackendWarm(record_.backend_addr, facts);
      if (phase_ == Phase::kClosed) return;
    }
    if (verifier_answer_ && phase_ == Phase::kHandshake) {
      VerifierAnswer a = std::move(*verifier_answer_);
      verifier_answer_.reset();
      engine_->OnVerifier(std::move(a));
      if (phase_ == Phase::kClosed) return;
    }
    int client_events = 0, backend_events = 0;
    bool progress = AdvanceClient(&client_events);
    if (phase_ == Phase::kClosed) return;
    progress |= AdvanceBackend(&backend_events);
    if (phase_ == Phase::kClosed) return;
    if (phase_ == Phase::kFlushingError && client_out_.empty()) {
      // The error is out: half-close and wait briefly for the client to
      // hang up, so unread input does not turn our close into a reset that
      // destroys the message before the client reads it.
      client_.ShutdownWrite();
      phase_ = Phase::kLingering;
      CloseBackend();
      ArmTimer(kLingerMs);
      continue;
    }
    if (phase_ == Phase::kHandshake && relay_requested_ && client_out_.empty() && backend_out_.empty() &&
        client_tls_ != ClientTls::kPending && client_tls_ != ClientTls::kHandshake && !backend_tls_pending_ &&
        backend_leg_ == BackendLeg::kOpen) {
      StartRelay();
      return;
    }
    if (!progress) {
      client_watch_->Want(client_events);
      if (backend_watch_ != nullptr &&
          (backend_leg_ == BackendLeg::kOpen || backend_leg_ == BackendLeg::kTlsHandshake)) {
        backend_watch_->Want(backend_events);
      }
      return;
    }
  }
  // Still moving: yield to other sessions and continue on the next loop turn.
  ScheduleRepump();
}

void Session::StartRelay() {
  // The one rule dbward never bends, checked where it matters rather than
  // trusted to every protocol engine: no relay without a verified TLS
  // backend leg.
  tls::Connection* btls = backend_.tls();
  if (btls == nullptr || !btls->handshake_done() || !btls->verified()) {
    Fail({Outcome::kInternalError, Cause::kInternal, "internal: refusing to relay without a verified TLS backend leg"},
         {});
    return;
  }
  phase_ = Phase::kRelaying;
  LeaveHandshakeGate();
  uv_loop_t* loop = worker_->loop();
  last_activity_ms_ = uv_now(loop);
  if (!setup_complete_) {
    listener_->metrics.handshake_seconds.Observe(static_cast<double>(last_activity_ms_ - start_ms_) / 1000.0);
  }
  uint64_t idle = listener_->config.timeouts.idle_ms;
  if (idle > 0) {
    ArmTimer(idle);
  } else {
    uv_timer_stop(&timer_);
  }
  client_.EnableReadAhead();
  backend_.EnableReadAhead();
  relay_ = std::make_unique<Relay>(worker_->pool(), client_, backend_, client_watch_, backend_watch_,
                                   static_cast<Relay::Callbacks&>(*this));
  relay_->SetGoodbye(engine_->Goodbye());  // static data of the protocol
  relay_->NoteSentUp(std::span<const uint8_t>(up_tail_.data(), up_tail_len_));
  if (listener_->config.proxy_protocol && !proxy_sniffed_) relay_->RefuseProxyHeader(relay_sniff_prefix_);
  // Nothing from before the relay is needed any more but what the audit
  // says: the engine and the staging go, so an idle session holds only its
  // sockets, its TLS state and the relay.
  record_.client = engine_->facts();
  engine_.reset();
  client_in_.Clear();
  backend_in_.Clear();
  std::vector<uint8_t>().swap(client_out_);
  std::vector<uint8_t>().swap(backend_out_);
  std::vector<uint8_t>().swap(relay_sniff_prefix_);
  if (verifier_ticket_) verifier_ticket_->Cancel();
  verifier_ticket_.reset();
  verifier_answer_.reset();
  connector_.reset();
  relay_->Start();
}

// ---- Relay::Callbacks ----

void Session::OnRelayActivity() { last_activity_ms_ = uv_now(worker_->loop()); }

void Session::ScheduleRepump() {
  if (repump_pending_ || phase_ == Phase::kClosed) return;
  repump_pending_ = true;
  uv_timer_start(&repump_, [](uv_timer_t* t) {
    auto* self = static_cast<Session*>(t->data);
    self->repump_pending_ = false;
    if (self->phase_ == Phase::kRelaying) {
      self->relay_->Repump();
    } else {
      self->Advance();
    }
  }, 0, 0);
}

void Session::OnRelayEnd(const RelayEnd& end) {
  std::string who = end.client_side ? "client" : "backend";
  switch (end.kind) {
    case RelayEnd::Kind::kClosed:
      if (end.backend_truncated && !end.client_ended_first && !end.client_said_goodbye) {
        // The backend's TLS stream stopped without close_notify while the
        // client was still there: the server process died, or the network
        // cut the connection. Not a clean end, whatever the bytes say.
        Record({Outcome::kBackendClosedAbruptly, Cause::kNoCloseNotify,
                fmt::format("backend {} ended the TLS session without close_notify (the server process died or "
                            "the connection was cut) while the client was connected; {} bytes had gone up, {} down",
                            record_.backend_addr, staged_up_ + relay_->bytes_up(), staged_down_ + relay_->bytes_down())});
      }
      Finish();
      return;
    case RelayEnd::Kind::kBackendReset:
      Fail({Outcome::kBackendClosedAbruptly, Cause::kBackendReset,
            fmt::format("backend {} reset the connection ({}) while the client was connected; {} bytes had gone up, "
                        "{} down",
                        record_.backend_addr, end.detail, staged_up_ + relay_->bytes_up(),
                        staged_down_ + relay_->bytes_down())},
           {});
      return;
    case RelayEnd::Kind::kReadFailed:
      Fail({Outcome::kReset, end.client_side ? Cause::kClientRead : Cause::kBackendRead,
            "cannot read from " + who + ": " + end.detail},
           {});
      return;
    case RelayEnd::Kind::kWriteFailed:
      Fail({Outcome::kReset, end.client_side ? Cause::kClientWrite : Cause::kBackendWrite,
            "cannot send to " + who + ": " + end.detail},
           {});
      return;
    case RelayEnd::Kind::kProxyHeader:
      Fail(ProxyHeaderRefusal(), {});
      return;
    case RelayEnd::Kind::kBackendRefusedUs:
      Fail({Outcome::kBackendTlsFailed, CauseOf(end.diagnosis.cause),
            "backend " + record_.backend_addr + ": " + ExplainHandshake(end.diagnosis, "backend_tls").Sentence()},
           {});
      return;
  }
}

// ---- time ----

void Session::ArmTimer(uint64_t ms) {
  uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<Session*>(t->data)->OnTimer(); }, ms == 0 ? 1 : ms, 0);
}

void Session::ArmHandshakeDeadline() {
  uint64_t now = uv_now(worker_->loop());
  ArmTimer(deadline_ms_ > now ? deadline_ms_ - now : 1);
}

void Session::OnTimer() {
  const ListenerConfig& cfg = listener_->config;
  uint64_t now = uv_now(worker_->loop());
  switch (phase_) {
    case Phase::kClosed: return;
    case Phase::kFlushingError:
    case Phase::kLingering: Finish(); return;
    case Phase::kHandshake:
      if (!setup_complete_) break;
      [[fallthrough]];  // logged in, the engine still watching: only idleness ends it
    case Phase::kRelaying: {
      uint64_t idle = cfg.timeouts.idle_ms;
      if (idle == 0) return;
      uint64_t quiet = now - last_activity_ms_;
      if (quiet >= idle) {
        Fail({Outcome::kIdleTimeout, Cause::kIdle, fmt::format("no traffic for {} ms (timeouts.idle)", quiet)}, {});
        return;
      }
      ArmTimer(idle - quiet);
      return;
    }
  }
  if (awaiting_proxy_header_) {
    Fail({Outcome::kTimeout, Cause::kProxyHeader,
          fmt::format("the balancer {} sent no complete PROXY protocol header within {} ms (timeouts.handshake); "
                      "connections from proxy_protocol.trusted must begin with one",
                      record_.client_addr, cfg.timeouts.handshake_ms)},
         {});
    return;
  }
  switch (backend_leg_) {
    case BackendLeg::kConnecting:
      return;  // the connector keeps its own time
    case BackendLeg::kTlsHandshake:
      FailBackend({Outcome::kTimeout, Cause::kHandshakeTimeout,
                   fmt::format("TLS handshake with backend {} did not complete within {} ms (timeouts.handshake); is "
                               "this a TLS port?",
                               record_.backend_addr, cfg.timeouts.handshake_ms)});
      return;
    case BackendLeg::kNone:
    case BackendLeg::kGone:
      Fail({Outcome::kTimeout, Cause::kClientHandshakeTimeout,
            fmt::format("the client did not complete its handshake within {} ms (timeouts.handshake)",
                        cfg.timeouts.handshake_ms)},
           {});
      return;
    case BackendLeg::kOpen:
      FailNative({Outcome::kTimeout, Cause::kHandshakeTimeout,
                  fmt::format("the session was not set up within {} ms (timeouts.handshake)", cfg.timeouts.handshake_ms)});
      return;
  }
}

// ---- the end ----

std::string Session::ClientIp() const { return IpOf(record_.client_addr); }

void Session::CanaryRejected(const std::string& how) {
  canary_ = Canary::kDecided;
  record_.validates = true;
  listener_->canary->RememberValidating(ClientIp());
  Fail({Outcome::kCanaryRejected, Cause::kCanaryRejected,
        fmt::format("client refused the canary certificate ({}; {}): it validates certificates; its next connections "
                    "get dbward's real certificate",
                    tls::CanaryModeName(*record_.canary), how)},
       {});
}

void Session::Abort() {
  FailNative({Outcome::kShutdown, Cause::kShutdown, "closed by dbward shutdown after the drain timeout"});
}

void Session::Finish() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  LeaveHandshakeGate();
  if (verifier_ticket_) verifier_ticket_->Cancel();
  if (relay_) relay_->Stop();
  EmitRecord();
  if (connector_) connector_->Cancel();  // may be inside its callback: freed with the session
  for (Watch** w : {&client_watch_, &backend_watch_}) {
    if (*w != nullptr) {
      (*w)->Close();
      *w = nullptr;
    }
  }
  client_.Close();
  backend_.Close();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&repump_), OnHandleClosed);
  listener_->active.fetch_sub(1, std::memory_order_relaxed);
}

void Session::OnHandleClosed(uv_handle_t* handle) {
  auto* self = static_cast<Session*>(handle->data);
  if (--self->open_handles_ == 0) delete self;
}

void Session::EmitRecord() {
  if (engine_) record_.client = engine_->facts();  // after the relay started, the record has them
  // A raw tcp listener learns nothing from the protocol: a client that sent
  // a byte has spoken.
  if (listener_->config.protocol == Protocol::kTcp) {
    record_.client.declared = staged_up_ - std::min(staged_up_, proxy_header_bytes_) + (relay_ ? relay_->bytes_up() : 0) > 0;
  }
  const bool tcp = listener_->config.protocol == Protocol::kTcp;
  if (!record_.client.declared && (record_.outcome == Outcome::kClientClosed || record_.outcome == Outcome::kReset ||
                                   (tcp && record_.outcome == Outcome::kOk))) {
    record_.outcome = Outcome::kClientClosedSilent;
    record_.error = "the client closed the connection without saying anything (a health check or port scan)";
  }
  if (canary_ != Canary::kNone && record_.validates == false && !record_.client.logged_in && listener_->canary) {
    // It accepted the canary and then did not get in (a libpq SCRAM client
    // without mediation fails channel binding): it does not validate, and it
    // must not pay for the canary again.
    listener_->canary->RememberNotValidating(ClientIp());
  }

  record_.bytes_up = staged_up_ - std::min(staged_up_, proxy_header_bytes_) + (relay_ ? relay_->bytes_up() : 0);
  record_.bytes_down = staged_down_ + (relay_ ? relay_->bytes_down() : 0);
  record_.duration_ms = uv_now(worker_->loop()) - start_ms_;
  RecordMetrics(record_, *listener_);
  Audit().Emit(ToAuditEvent(record_, listener_->config));
}

}  // namespace dbward::proxy
