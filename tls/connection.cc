#include "tls/connection.h"

#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>
#include <iterator>

#include "tls/session_cache.h"
#include "tls/verified_chains.h"

namespace dbward::tls {

// A BIO whose read and write go straight to the connection's Io: BoringSSL
// reads ciphertext into its own record buffer and writes sealed records from
// it, so no staging copy sits between the socket and the record layer.
struct BioGlue {
  static int Write(BIO* bio, const char* data, int len) {
    auto* conn = static_cast<Connection*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    IoResult r = conn->io_->Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data),
                                                           static_cast<size_t>(len)));
    switch (r.kind) {
      case IoResult::kOk: return static_cast<int>(r.n);
      case IoResult::kWantWrite:
      case IoResult::kWantRead:
        BIO_set_retry_write(bio);
        return -1;
      case IoResult::kEof:
        conn->io_error_ = EPIPE;
        errno = EPIPE;
        return -1;
      case IoResult::kError:
        conn->io_error_ = r.err;
        errno = r.err;
        return -1;
    }
    return -1;
  }
  static int Read(BIO* bio, char* data, int len) {
    auto* conn = static_cast<Connection*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    IoResult r = conn->io_->Read(
        std::span<uint8_t>(reinterpret_cast<uint8_t*>(data), static_cast<size_t>(len)));
    switch (r.kind) {
      case IoResult::kOk: return static_cast<int>(r.n);
      case IoResult::kWantRead:
      case IoResult::kWantWrite:
        BIO_set_retry_read(bio);
        return -1;
      case IoResult::kEof:
        conn->io_eof_ = true;
        return 0;
      case IoResult::kError:
        conn->io_error_ = r.err;
        errno = r.err;
        return -1;
    }
    return -1;
  }
  static long Ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    if (cmd != BIO_CTRL_FLUSH) return 0;
    auto* conn = static_cast<Connection*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (conn->io_->Flush()) return 1;
    if (int err = conn->io_->flush_error(); err != 0) {
      conn->io_error_ = err;
      return -1;  // no retry flag: the handshake fails instead of spinning
    }
    BIO_set_retry_write(bio);
    return -1;
  }
  static int Create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }
  static const BIO_METHOD* Method() {
    static const BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | 0x60, "dbward-io");
      BIO_meth_set_write(m, Write);
      BIO_meth_set_read(m, Read);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_create(m, Create);
      return m;
    }();
    return method;
  }
};

namespace {

int ConnIndex() {
  static int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// The groups a client offers (BoringSSL's default order), with `group`
// moved to the front so that the ClientHello's one key share is for it. A
// group outside that set (the server cannot have chosen it) changes nothing.
bool OfferKeyShareFirst(SSL* ssl, uint16_t group) {
  struct Group {
    uint16_t id;
    int nid;
  };
  static constexpr Group kDefault[] = {
      {SSL_CURVE_X25519, NID_X25519}, {SSL_CURVE_SECP256R1, NID_X9_62_prime256v1}, {SSL_CURVE_SECP384R1, NID_secp384r1}};
  int nids[std::size(kDefault)];
  size_t n = 0;
  for (const Group& g : kDefault) {
    if (g.id == group) nids[n++] = g.nid;
  }
  if (n == 0) return true;
  for (const Group& g : kDefault) {
    if (g.id != group) nids[n++] = g.nid;
  }
  return SSL_set1_curves(ssl, nids, n) == 1;
}

}  // namespace

Connection::Connection(std::shared_ptr<Context> ctx, SSL* ssl, Io* io)
    : ctx_(std::move(ctx)), ssl_(ssl), io_(io) {}

Connection::~Connection() { SSL_free(ssl_); }

std::unique_ptr<Connection> Connection::NewClient(std::shared_ptr<Context> ctx,
                                                  const std::string& server_name, Io* io,
                                                  std::string* error, bool offer_session) {
  SSL* ssl = SSL_new(ctx->ssl_ctx());
  if (ssl == nullptr) {
    *error = "SSL_new failed";
    return nullptr;
  }
  std::unique_ptr<Connection> conn(new Connection(ctx, ssl, io));
  conn->server_name_ = server_name;
  SSL_set_connect_state(ssl);
  // Once the handshake is done, the configuration copied into the SSL (the
  // verify parameters, the cipher and curve lists) is freed: an idle backend
  // leg keeps only what the handshake derived. Nothing asks a client
  // connection for its configuration afterwards.
  SSL_set_shed_handshake_config(ssl, 1);
  SSL_set_ex_data(ssl, ConnIndex(), conn.get());
  SSL_set_cert_cb(ssl, CertCallback, conn.get());
  bool ip = IsIpLiteral(server_name);
  if (ctx->verify() == VerifyMode::kFull) {
    // VerifyPeer checks the name; what it could not take is refused here.
    if (server_name.empty()) {
      *error = "name verification needs a server name";
      return nullptr;
    }
    if (server_name.find('\0') != std::string::npos) {
      *error = "invalid server name '" + server_name + "'";
      return nullptr;
    }
  }
  if (uint16_t group = ctx->key_share_group(); group != 0 && !OfferKeyShareFirst(ssl, group)) {
    *error = "setting the key share groups failed";
    return nullptr;
  }
  if (!ip && !server_name.empty() && SSL_set_tlsext_host_name(ssl, server_name.c_str()) != 1) {
    *error = "invalid SNI name '" + server_name + "'";
    return nullptr;
  }
  if (SessionCache* cache = ctx->sessions(); cache != nullptr && offer_session) {
    if (bssl::UniquePtr<SSL_SESSION> session = cache->Take(server_name, static_cast<int64_t>(::time(nullptr)))) {
      conn->offered_session_ = SSL_set_session(ssl, session.get()) == 1;
    }
  }
  BIO* bio = BIO_new(BioGlue::Method());
  BIO_set_data(bio, conn.get());
  SSL_set_bio(ssl, bio, bio);
  return conn;
}

ssl_verify_result_t VerifyPeer(SSL* ssl, uint8_t* out_alert) {
  auto* conn = static_cast<Connection*>(SSL_get_ex_data(ssl, ConnIndex()));
  const STACK_OF(CRYPTO_BUFFER)* sent = SSL_get0_peer_certificates(ssl);
  *out_alert = SSL_AD_CERTIFICATE_UNKNOWN;
  if (conn == nullptr || sent == nullptr || sk_CRYPTO_BUFFER_num(sent) == 0) return ssl_verify_invalid;
  const Context& ctx = *conn->ctx_;
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  VerifiedChains* verified = ctx.verified_chains();
  VerifiedChains::Key key{};
  if (verified != nullptr) {
    key = VerifiedChains::KeyOf(conn->server_name_, sent);
    int64_t not_after = 0;
    if (verified->Find(key, now, &not_after)) {
      conn->peer_not_after_ = not_after;
      return ssl_verify_ok;
    }
  }
  bssl::UniquePtr<STACK_OF(X509)> chain(sk_X509_new_null());
  if (!chain) return ssl_verify_invalid;
  for (size_t i = 0; i < sk_CRYPTO_BUFFER_num(sent); i++) {
    bssl::UniquePtr<X509> cert(X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(sent, i)));
    if (!cert) {
      *out_alert = SSL_AD_BAD_CERTIFICATE;
      return ssl_verify_invalid;
    }
    if (!bssl::PushToStack(chain.get(), std::move(cert))) return ssl_verify_invalid;
  }
  X509* leaf = sk_X509_value(chain.get(), 0);
  bssl::UniquePtr<X509_STORE_CTX> store(X509_STORE_CTX_new());
  if (!store || !X509_STORE_CTX_init(store.get(), ctx.verify_store(), leaf, chain.get()) ||
      !X509_STORE_CTX_set_ex_data(store.get(), SSL_get_ex_data_X509_STORE_CTX_idx(), ssl) ||
      !X509_STORE_CTX_set_default(store.get(), "ssl_server")) {
    return ssl_verify_invalid;
  }
  if (ctx.verify() == VerifyMode::kFull) {
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(store.get());
    const std::string& name = conn->server_name_;
    int ok = IsIpLiteral(name) ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, name.data(), name.size());
    if (!ok) return ssl_verify_invalid;
  }
  X509_STORE_CTX_set_verify_cb(store.get(), Connection::VerifyCallback);
  conn->peer_not_after_ = NotAfterUnix(leaf);
  if (ctx.VerifyChainInStore(store.get()) == 1) {
    if (verified != nullptr) {
      // The verdict holds until a certificate of the validated path (leaf
      // to anchor) expires or the CRLs it was checked against go stale.
      int64_t until = ctx.crl_valid_until();
      STACK_OF(X509)* path = X509_STORE_CTX_get0_chain(store.get());
      for (size_t i = 0; path != nullptr && i < sk_X509_num(path); i++) {
        until = std::min(until, NotAfterUnix(sk_X509_value(path, i)));
      }
      verified->Remember(key, now, until, conn->peer_not_after_);
    }
    return ssl_verify_ok;
  }
  *out_alert = static_cast<uint8_t>(SSL_alert_from_verify_result(X509_STORE_CTX_get_error(store.get())));
  return ssl_verify_invalid;
}

int KeepClientSession(SSL* ssl, SSL_SESSION* session) {
  auto* conn = static_cast<Connection*>(SSL_get_ex_data(ssl, ConnIndex()));
  SessionCache* cache = conn != nullptr ? conn->ctx_->sessions() : nullptr;
  // Only a verified handshake yields a session; the check is kept in case
  // a future BoringSSL hands one out earlier.
  if (cache == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return 0;
  cache->Put(conn->server_name_, bssl::UniquePtr<SSL_SESSION>(session));
  return 1;  // the cache owns the reference
}

Connection::Resumption Connection::resumption() const {
  if (ctx_->sessions() == nullptr) return Resumption::kOff;
  if (!offered_session_) return Resumption::kNoSession;
  return SSL_session_reused(ssl_) ? Resumption::kResumed : Resumption::kRejected;
}

std::unique_ptr<Connection> Connection::NewServer(std::shared_ptr<Context> ctx, Io* io,
                                                  std::string* error) {
  SSL* ssl = SSL_new(ctx->ssl_ctx());
  if (ssl == nullptr) {
    *error = "SSL_new failed";
    return nullptr;
  }
  std::unique_ptr<Connection> conn(new Connection(ctx, ssl, io));
  SSL_set_accept_state(ssl);
  // As on client connections: once the handshake is done the copied
  // configuration (certificate and key references, cipher and curve lists,
  // ALPN and verify settings) is freed. What is asked afterwards -- the
  // version, cipher, ALPN, SNI and the client's certificate -- is session
  // state, and the binding data of our certificate comes from the context.
  SSL_set_shed_handshake_config(ssl, 1);
  SSL_set_ex_data(ssl, ConnIndex(), conn.get());
  // Client certificates: record why one failed, for the explanation.
  if (ctx->asks_client_cert()) SSL_set_verify(ssl, SSL_VERIFY_PEER, VerifyCallback);
  BIO* bio = BIO_new(BioGlue::Method());
  BIO_set_data(bio, conn.get());
  SSL_set_bio(ssl, bio, bio);
  return conn;
}

int Connection::VerifyCallback(int ok, X509_STORE_CTX* store) {
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* conn = static_cast<Connection*>(SSL_get_ex_data(ssl, ConnIndex()));
  if (!ok && conn != nullptr && conn->verify_error_ == 0) {
    conn->verify_error_ = X509_STORE_CTX_get_error(store);
    conn->verify_depth_ = X509_STORE_CTX_get_error_depth(store);
    Failure& f = conn->mutable_failure();
    f.failed_cert = Summarize(X509_STORE_CTX_get_current_cert(store));
    f.leaf_cert = Summarize(X509_STORE_CTX_get0_cert(store));
  }
  return ok;
}

int VerifyChain(X509_STORE_CTX* store, const Context* ctx) { return VerifyChainWithPins(store, ctx->spki_pins()); }

int VerifyChainWithPins(X509_STORE_CTX* store, const std::vector<std::string>& pins) {
  int ok = X509_verify_cert(store);
  if (ok != 1 || pins.empty()) return ok;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  std::string spki = SpkiSha256(leaf);
  for (const std::string& pin : pins) {
    if (pin == spki) return 1;
  }
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  SSL* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (auto* conn = static_cast<Connection*>(SSL_get_ex_data(ssl, ConnIndex())); conn != nullptr) {
    Connection::Failure& f = conn->mutable_failure();
    f.pin_seen = spki;
    conn->verify_error_ = X509_V_ERR_APPLICATION_VERIFICATION;
    conn->verify_depth_ = 0;
    f.leaf_cert = Summarize(leaf);
    f.failed_cert = f.leaf_cert;
  }
  return 0;
}

PeerIdentity Connection::ClientIdentity() const {
  PeerIdentity id;
  if (ctx_->is_client() || !handshake_done_) return id;
  bssl::UniquePtr<X509> cert(SSL_get_peer_certificate(ssl_));
  if (!cert || SSL_get_verify_result(ssl_) != X509_V_OK) return id;
  id.present = true;
  id.summary = Summarize(cert.get());
  id.spki = SpkiSha256(cert.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (at >= 0) {
    uint8_t* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (len > 0) id.cn.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (size_t i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type != GEN_DNS && n->type != GEN_URI) continue;
    const ASN1_STRING* v = n->type == GEN_DNS ? n->d.dNSName : n->d.uniformResourceIdentifier;
    std::string text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)), static_cast<size_t>(ASN1_STRING_length(v)));
    (n->type == GEN_DNS ? id.dns : id.uris).push_back(std::move(text));
  }
  GENERAL_NAMES_free(names);
  return id;
}

int Connection::CertCallback(SSL* /*ssl*/, void* arg) {
  static_cast<Connection*>(arg)->cert_requested_ = true;
  return 1;
}

Connection::HandshakeStatus Connection::Handshake() {
  if (handshake_done_) return HandshakeStatus::kDone;
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    handshake_done_ = true;
    verified_ = ctx_->is_client() && SSL_get_verify_result(ssl_) == X509_V_OK;
    if (ctx_->is_client() && SSL_used_hello_retry_request(ssl_)) {
      hello_retried_ = true;
      ctx_->LearnKeyShareGroup(SSL_get_curve_id(ssl_));
    }
    return HandshakeStatus::kDone;
  }
  int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ) return HandshakeStatus::kWantRead;
  if (err == SSL_ERROR_WANT_WRITE) return HandshakeStatus::kWantWrite;
  ClassifyFailure(err);
  return HandshakeStatus::kFailed;
}

void Connection::ClassifyFailure(int ssl_error) {
  uint32_t e = ERR_peek_error();
  std::string errors = TakeErrors();
  Failure& f = mutable_failure();
  std::string& detail = f.detail;
  if (!f.pin_seen.empty()) {
    cause_ = FailureCause::kPinMismatch;
    detail = "public key pin mismatch: the certificate's SPKI is sha256//" + f.pin_seen;
    return;
  }
  if (verify_error_ != 0) {
    cause_ = CauseFromVerifyError(verify_error_);
    detail = X509_verify_cert_error_string(verify_error_);
    return;
  }
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN || (e == 0 && (io_eof_ || io_error_))) {
    cause_ = FailureCause::kReset;
    detail = io_error_ ? strerror(io_error_) : "connection closed by peer";
    return;
  }
  int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;
  detail = errors.empty() ? "TLS error" : errors;
  switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL_FOR_CUSTOM_KEY:
      cause_ = FailureCause::kProtocolVersion;
      return;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_RECORD_TOO_LARGE:
    case SSL_R_EXCESSIVE_MESSAGE_SIZE:
      cause_ = FailureCause::kNotTls;
      return;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_CIPHERS_AVAILABLE:
    case SSL_R_NO_SHARED_GROUP:
      cause_ = FailureCause::kNoSharedCipher;
      return;
    case SSL_R_TLSV1_ALERT_CERTIFICATE_REQUIRED:
      cause_ = FailureCause::kClientCertRequired;
      return;
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      if (ctx_->is_client() && cert_requested_ && !ctx_->presents_certificate()) {
        cause_ = FailureCause::kClientCertRequired;
      } else {
        cause_ = FailureCause::kNoSharedCipher;
      }
      return;
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      if (ctx_->is_client() && !ctx_->presents_certificate() && cert_requested_) {
        cause_ = FailureCause::kClientCertRequired;
      } else {
        cause_ = FailureCause::kPeerRejectedUs;
      }
      return;
    default:
      cause_ = FailureCause::kTlsOther;
      return;
  }
}

const Connection::Failure& Connection::failure() const {
  static const Failure kNone;
  return failure_ ? *failure_ : kNone;
}

Connection::Failure& Connection::mutable_failure() {
  if (!failure_) failure_ = std::make_unique<Failure>();
  return *failure_;
}

Diagnosis Connection::diagnosis() const {
  const Failure& f = failure();
  Diagnosis d;
  d.cause = cause_;
  d.detail = f.detail;
  d.depth = verify_depth_;
  d.server_name = server_name_;
  d.failed = f.failed_cert.present ? f.failed_cert : f.leaf_cert;
  d.leaf = f.leaf_cert;
  d.trust_path = ctx_->trust().path;
  d.trust_system = ctx_->trust().system;
  d.min_version = static_cast<uint16_t>(SSL_CTX_get_min_proto_version(ctx_->ssl_ctx()));
  d.peer_closed = io_eof_;
  d.spki = f.pin_seen;
  d.pins = ctx_->spki_pins();
  d.crl_file = ctx_->crl_file();
  return d;
}

IoResult Connection::MapResult(int ret) {
  if (ret > 0) return IoResult::Ok(static_cast<size_t>(ret));
  int err = SSL_get_error(ssl_, ret);
  switch (err) {
    case SSL_ERROR_WANT_READ: return IoResult::WantRead();
    case SSL_ERROR_WANT_WRITE: return IoResult::WantWrite();
    case SSL_ERROR_ZERO_RETURN: return IoResult::Eof();
    case SSL_ERROR_SYSCALL:
      if (io_error_ == 0) {  // TCP FIN without close_notify
        truncated_ = true;
        return IoResult::Eof();
      }
      return IoResult::Error(io_error_);
    default:
      // In TLS 1.3 the server judges our certificate after our handshake has
      // finished, so its verdict arrives as an alert on the first read.
      ClassifyFailure(err);
      return IoResult::Error(EPROTO);
  }
}

IoResult Connection::Read(std::span<uint8_t> out) {
  ERR_clear_error();
  int len = static_cast<int>(std::min<size_t>(out.size(), INT_MAX));
  return MapResult(SSL_read(ssl_, out.data(), len));
}

IoResult Connection::Write(std::span<const uint8_t> in) {
  ERR_clear_error();
  int len = static_cast<int>(std::min<size_t>(in.size(), INT_MAX));
  return MapResult(SSL_write(ssl_, in.data(), len));
}

IoResult Connection::Shutdown() {
  if (shutdown_sent_) return IoResult::Ok(0);
  ERR_clear_error();
  int ret = SSL_shutdown(ssl_);
  if (ret >= 0) {
    shutdown_sent_ = true;
    return IoResult::Ok(0);
  }
  IoResult r = MapResult(ret);
  if (r.kind == IoResult::kWantRead) {
    shutdown_sent_ = true;  // close_notify is out; we do not wait for the peer's
    return IoResult::Ok(0);
  }
  return r;
}

bool Connection::HasPendingPlaintext() const { return SSL_pending(ssl_) > 0; }
bool Connection::HasBufferedInput() const { return SSL_has_pending(ssl_) == 1; }

uint16_t Connection::version() const { return static_cast<uint16_t>(SSL_version(ssl_)); }
const char* Connection::version_name() const { return TlsVersionName(version()); }

std::string Connection::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
  return c ? SSL_CIPHER_standard_name(c) : "";
}

std::string Connection::alpn() const {
  const uint8_t* data;
  unsigned len;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

bssl::UniquePtr<X509> Connection::PeerLeaf() const {
  // A client context keeps the server's chain as DER (VerifyPeer); a server
  // context parses the client's certificate as X509.
  if (!ctx_->is_client()) return bssl::UniquePtr<X509>(SSL_get_peer_certificate(ssl_));
  const STACK_OF(CRYPTO_BUFFER)* chain = SSL_get0_peer_certificates(ssl_);
  if (chain == nullptr || sk_CRYPTO_BUFFER_num(chain) == 0) return nullptr;
  return bssl::UniquePtr<X509>(X509_parse_from_buffer(sk_CRYPTO_BUFFER_value(chain, 0)));
}

int64_t Connection::PeerNotAfterUnix() const {
  // Read once: by VerifyPeer on a full handshake, from the session's DER on
  // a resumed one.
  if (peer_not_after_ < 0) {
    bssl::UniquePtr<X509> cert = PeerLeaf();
    peer_not_after_ = NotAfterUnix(cert.get());
  }
  return peer_not_after_;
}

std::vector<uint8_t> Connection::ServerEndPoint() const {
  if (ctx_->is_client()) {
    bssl::UniquePtr<X509> cert = PeerLeaf();
    return tls::ServerEndPoint(cert.get());
  }
  return ctx_->server_end_point();
}

CertSummary Connection::PeerCertificate() const {
  bssl::UniquePtr<X509> cert = PeerLeaf();
  return Summarize(cert.get());
}

}  // namespace dbward::tls
