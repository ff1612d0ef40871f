// One TLS connection over an Io. Client connections always verify the peer:
// there is no switch to turn verification off, only verify-ca vs verify-full.
// When a handshake fails, the connection keeps what failed and why
// (diagnosis()); proxy/ turns that into a sentence with the fix.
#pragma once

#include <openssl/base.h>
#include <openssl/ssl.h>  // ssl_verify_result_t

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tls/cert_info.h"
#include "tls/context.h"
#include "tls/io.h"

namespace dbward::tls {

// A client certificate that passed chain validation on a server connection.
struct PeerIdentity {
  bool present = false;
  std::string cn;                 // the subject's commonName
  std::vector<std::string> dns;   // DNS SANs
  std::vector<std::string> uris;  // URI SANs (SPIFFE IDs)
  std::string spki;               // base64 SHA-256 of the SubjectPublicKeyInfo
  CertSummary summary;
};

// A client context's certificate verifier (installed by Context::NewClient):
// X509_verify_cert, then the SPKI pins. For code that installs its own
// SSL_CTX_set_cert_verify_callback and still wants the context's checks.
int VerifyChain(X509_STORE_CTX* store, const Context* context);
// The same with the pins given (normalized, as Context::spki_pins()).
int VerifyChainWithPins(X509_STORE_CTX* store, const std::vector<std::string>& pins);

// The custom verifier of a client context (TLS_with_buffers_method): parses
// the server's chain, validates it against the context's store with the
// connection's host check (Context::VerifyChainInStore), and frees the parsed
// certificates again; the session keeps only their DER.
ssl_verify_result_t VerifyPeer(SSL* ssl, uint8_t* out_alert);

// The new-session callback of a client context with resume_sessions: keeps
// the session in the context's SessionCache under the connection's server
// name.
int KeepClientSession(SSL* ssl, SSL_SESSION* session);

class Connection {
 public:
  // server_name: DNS name (checked against SANs and sent as SNI) or IP literal
  // (checked against IP SANs, no SNI).
  // offer_session: with a context that keeps sessions, offer a cached one
  // (false for a check that must see the server's certificate itself).
  static std::unique_ptr<Connection> NewClient(std::shared_ptr<Context> ctx,
                                               const std::string& server_name, Io* io,
                                               std::string* error, bool offer_session = true);
  static std::unique_ptr<Connection> NewServer(std::shared_ptr<Context> ctx, Io* io,
                                               std::string* error);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The transport may change between handshake and data phase (e.g. TDS 7.x
  // carries the handshake inside PRELOGIN packets, then raw on TCP).
  void set_io(Io* io) { io_ = io; }
  Io* io() const { return io_; }

  enum class HandshakeStatus { kDone, kWantRead, kWantWrite, kFailed };
  HandshakeStatus Handshake();

  IoResult Read(std::span<uint8_t> out);
  IoResult Write(std::span<const uint8_t> in);
  // Sends close_notify (once). Ok when sent, WantWrite to retry.
  IoResult Shutdown();
  bool HasPendingPlaintext() const;
  // Decrypted or still-encrypted bytes already taken off the transport.
  bool HasBufferedInput() const;

  bool handshake_done() const { return handshake_done_; }
  uint16_t version() const;
  const char* version_name() const;
  std::string cipher() const;
  std::string alpn() const;
  bool verified() const { return verified_; }
  // Client: the server asked for another key share (TLS 1.3
  // HelloRetryRequest) in this handshake.
  bool hello_retried() const { return hello_retried_; }
  // Client, after the handshake: what became of session resumption.
  enum class Resumption : uint8_t {
    kOff,        // the context keeps no sessions
    kNoSession,  // none was cached for this server name: a full handshake
    kResumed,    // the server took the offered session: no certificate was sent,
                 // it was validated when the session was made
    kRejected,   // the server ignored the offered session: a full handshake
  };
  Resumption resumption() const;
  CertSummary PeerCertificate() const;
  // Server side: the client's certificate, verified (the handshake fails
  // for one that does not verify); absent when the client sent none.
  PeerIdentity ClientIdentity() const;
  // The peer certificate's notAfter, without building a full CertSummary.
  int64_t PeerNotAfterUnix() const;
  // tls-server-end-point binding data of the server's certificate on this
  // connection: the peer's on a client connection, ours on a server one.
  std::vector<uint8_t> ServerEndPoint() const;
  SSL* ssl() const { return ssl_; }

  FailureCause failure_cause() const { return cause_; }
  // The handshake failed because this side refused the peer's certificate
  // (on a server: the client's certificate did not verify).
  bool rejected_peer_certificate() const { return verify_error_ != 0; }
  // The raw reason (X.509 error string or TLS alert/error), for logs.
  const std::string& failure_detail() const { return failure().detail; }
  // The certificate that failed verification (leaf or the chain element at fault).
  const CertSummary& failed_certificate() const { return failure().failed_cert; }
  const CertSummary& leaf_certificate() const { return failure().leaf_cert; }
  // What failed and everything needed to explain it.
  Diagnosis diagnosis() const;
  // The last transport error seen by the BIO (errno), 0 if none.
  int io_error() const { return io_error_; }
  bool io_eof() const { return io_eof_; }
  // The peer's stream ended without close_notify (a TCP FIN in the middle
  // of the TLS session): the peer died or the network cut it, it did not
  // end the session.
  bool truncated() const { return truncated_; }

 private:
  Connection(std::shared_ptr<Context> ctx, SSL* ssl, Io* io);
  void ClassifyFailure(int ssl_error);
  IoResult MapResult(int ret);
  static int VerifyCallback(int ok, X509_STORE_CTX* store);
  friend int VerifyChainWithPins(X509_STORE_CTX* store, const std::vector<std::string>& pins);
  friend int KeepClientSession(SSL* ssl, SSL_SESSION* session);
  friend ssl_verify_result_t VerifyPeer(SSL* ssl, uint8_t* out_alert);
  // A client's view of the server's leaf certificate, parsed from its DER.
  bssl::UniquePtr<X509> PeerLeaf() const;
  static int CertCallback(SSL* ssl, void* arg);
  friend struct BioGlue;

  // What a failed handshake leaves to explain it. Allocated only when
  // something failed, so a healthy (and idle) connection does not carry two
  // certificate summaries it will never show.
  struct Failure {
    std::string detail;
    CertSummary failed_cert;
    CertSummary leaf_cert;
    std::string pin_seen;  // the leaf's SPKI, when it matched no pin
  };
  const Failure& failure() const;
  Failure& mutable_failure();

  std::shared_ptr<Context> ctx_;
  SSL* ssl_;
  Io* io_;
  std::string server_name_;
  bool handshake_done_ = false;
  bool verified_ = false;
  bool hello_retried_ = false;
  bool shutdown_sent_ = false;
  bool cert_requested_ = false;
  bool offered_session_ = false;
  bool io_eof_ = false;
  bool truncated_ = false;
  int io_error_ = 0;
  long verify_error_ = 0;
  mutable int64_t peer_not_after_ = -1;  // -1: not yet read
  int verify_depth_ = -1;
  FailureCause cause_ = FailureCause::kNone;
  std::unique_ptr<Failure> failure_;
};

}  // namespace dbward::tls
