// TLS contexts built from configuration. Everything that can be wrong with a
// certificate, key or CA file is found here, at start-up, and reported with
// the file's name; a context that exists is usable.
#pragma once

#include <openssl/base.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dbward::tls {

class SessionCache;
class VerifiedChains;

enum class VerifyMode {
  kFull,  // chain to a trusted CA, validity, EKU serverAuth, and hostname or IP SAN
  kCa,    // everything but the name check
};

struct KeyPair {
  std::string cert_file;     // PEM: leaf first, then intermediates
  std::string key_file;      // PEM private key, optionally encrypted
  std::string key_password;  // the password itself (read from key_password_file by the caller)
  bool empty() const { return cert_file.empty() && key_file.empty(); }
};

struct ClientOptions {
  VerifyMode verify = VerifyMode::kFull;
  std::string ca_file;          // empty: the system trust store
  // Stronger trust, never weaker: both only add conditions to chain validation.
  std::string crl_file;         // PEM CRLs; the leaf's issuer must have one, and the leaf must not be on it
  std::vector<std::string> spki_pins;  // base64 SHA-256 of the leaf's SubjectPublicKeyInfo; empty: no pinning
  KeyPair client_cert;          // optional client certificate
  uint16_t min_version = 0x0303;  // TLS1_2_VERSION
  std::vector<std::string> alpn;
  // Keep the sessions of verified handshakes and offer them again to the
  // same server name (SessionCache). Off for servers that never resume.
  bool resume_sessions = false;
};

struct ServerOptions {
  KeyPair cert;
  // Client certificates: ask for one issued by these CAs (PEM). A client
  // that sends one must pass chain validation (purpose sslclient) or the
  // handshake fails; whether one is required is for the caller to decide
  // after the handshake, where it can answer in the protocol's words.
  std::string client_ca_file;
  uint16_t min_version = 0x0303;
  uint16_t max_version = 0x0304;  // TLS1_3_VERSION
  std::vector<std::string> alpn;  // protocols we accept; empty: no ALPN
};

// Why a certificate, key or CA file did not load: which file, what went
// wrong, the raw reason. proxy/ words it with its configuration names.
struct LoadError {
  enum class File : uint8_t { kNone, kCa, kCert, kKey, kCrl, kClientCa };
  enum class Kind : uint8_t {
    kUnreadable,      // missing, unreadable or not a regular file (detail: why)
    kInvalid,         // not a PEM this can load (detail: BoringSSL's errors)
    kNoSystemBundle,  // no CA file given and no system bundle found
    kKeyEncrypted,    // the key needs a password and none was given
    kWrongPassword,   // the password does not decrypt the key
    kKeyMismatch,     // the key does not belong to the certificate (other_path)
    kInternal,        // out of memory, invalid ALPN name, ...
  };
  File file = File::kNone;
  Kind kind = Kind::kInternal;
  std::string path;
  std::string other_path;
  std::string detail;
  // A sentence naming the file and the problem, without configuration names.
  std::string Message() const;
};

// What a client context trusts: a CA file, or the system bundle found at path.
struct TrustStore {
  std::string path;
  bool system = false;
};

// Shared, immutable after creation; safe to use from several threads.
class Context {
 public:
  static std::shared_ptr<Context> NewClient(const ClientOptions& options, LoadError* error);
  static std::shared_ptr<Context> NewServer(const ServerOptions& options, LoadError* error);
  // Adopts a server SSL_CTX built elsewhere (canary certificates) and adds
  // the same ALPN selection NewServer installs.
  static std::shared_ptr<Context> WrapServer(SSL_CTX* ctx, const std::vector<std::string>& alpn);

  ~Context();
  SSL_CTX* ssl_ctx() const { return ctx_; }
  bool is_client() const { return client_; }
  VerifyMode verify() const { return verify_; }
  const TrustStore& trust() const { return trust_; }
  const std::vector<std::string>& spki_pins() const { return pins_; }
  const std::string& crl_file() const { return crl_file_; }
  // Server: client certificates are asked for.
  bool asks_client_cert() const { return asks_client_cert_; }
  // Client with resume_sessions: the sessions to offer; null otherwise.
  SessionCache* sessions() const { return sessions_.get(); }
  // Server: tls-server-end-point binding data of the certificate this
  // context presents, taken once (its connections shed their configuration
  // after the handshake, the certificate with it).
  const std::vector<uint8_t>& server_end_point() const { return server_end_point_; }
  // Client: the trust anchors and CRLs server chains are validated against
  // (the SSL_CTX keeps certificates as DER only and has no store of its own).
  X509_STORE* verify_store() const { return store_.get(); }
  // Client: a certificate of our own is configured for servers that ask.
  bool presents_certificate() const { return presents_certificate_; }
  // Client: replaces the chain check (by default VerifyChain with this
  // context's pins). The store it gets carries the connection's host check
  // and its recording verify callback; the probe uses it to see the chain.
  // Set before the context is shared.
  using ChainVerifier = int (*)(X509_STORE_CTX* store, void* arg);
  void set_chain_verifier(ChainVerifier fn, void* arg) {
    chain_verifier_ = fn;
    chain_verifier_arg_ = arg;
  }
  int VerifyChainInStore(X509_STORE_CTX* store) const;
  // Client: chains already validated (null while a chain verifier is set:
  // it wants to see every chain).
  VerifiedChains* verified_chains() const { return chain_verifier_ == nullptr ? verified_.get() : nullptr; }
  // Client: the earliest nextUpdate of the CRLs loaded (INT64_MAX without).
  int64_t crl_valid_until() const { return crl_valid_until_; }
  // Client: key share prediction. A server that accepts only some groups
  // answers a ClientHello whose key share it does not take with a
  // HelloRetryRequest, a second round trip and a second key generation:
  // PostgreSQL up to 17 does for every client that offers X25519 first
  // (ssl_ecdh_curve = prime256v1). The group such a server chose is offered
  // first from then on (0: none learned, the default order). Only the order
  // changes, never the set offered; the server still chooses, and a server
  // that wants another group asks again and is learned again.
  uint16_t key_share_group() const { return key_share_group_.load(std::memory_order_relaxed); }
  void LearnKeyShareGroup(uint16_t group) const { key_share_group_.store(group, std::memory_order_relaxed); }

 private:
  Context(SSL_CTX* ctx, bool client);
  SSL_CTX* ctx_;
  bool client_;
  VerifyMode verify_ = VerifyMode::kFull;
  TrustStore trust_;
  std::vector<std::string> pins_;
  std::string crl_file_;
  bool asks_client_cert_ = false;
  std::unique_ptr<SessionCache> sessions_;
  std::vector<uint8_t> server_end_point_;
  bssl::UniquePtr<X509_STORE> store_;
  std::unique_ptr<VerifiedChains> verified_;
  int64_t crl_valid_until_ = INT64_MAX;
  mutable std::atomic<uint16_t> key_share_group_{0};
  bool presents_certificate_ = false;
  ChainVerifier chain_verifier_ = nullptr;
  void* chain_verifier_arg_ = nullptr;
};

// Makes a server SSL_CTX ask for client certificates issued by the CAs in
// ca_file (NewServer does it for ServerOptions::client_ca_file; the canary
// contexts, built elsewhere, call it themselves).
bool RequestClientCertificates(SSL_CTX* ctx, const std::string& ca_file, LoadError* error);

// base64 SHA-256 of a certificate's SubjectPublicKeyInfo (the form of
// HPKP and curl --pinnedpubkey, without the sha256// prefix); "" if absent.
std::string SpkiSha256(X509* cert);
// Accepts "sha256//BASE64" or "BASE64" (44 characters, 32 bytes); returns
// the bare base64, or "" if it is not a SHA-256 pin.
std::string NormalizeSpkiPin(const std::string& text);

// Loads cert_file + key_file (decrypting with key_password) into ctx and checks
// that they match. Exposed for tests and for reloads.
// buffers_only: ctx was made with TLS_with_buffers_method (client contexts).
bool LoadKeyPair(SSL_CTX* ctx, const KeyPair& pair, LoadError* error, bool buffers_only);

// Parses "1.2" / "1.3" into a TLS version number.
bool ParseTlsVersion(const std::string& text, uint16_t* out);
// "TLSv1.0" .. "TLSv1.3", or "unknown".
const char* TlsVersionName(uint16_t version);

// The first system CA bundle found (SSL_CERT_FILE wins), or "" if none.
std::string SystemCaBundle();

// Drains BoringSSL's error queue into one readable string.
std::string TakeErrors();

}  // namespace dbward::tls
