#include "tls/context.h"

#include <openssl/base64.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "tls/connection.h"
#include "tls/cert_info.h"
#include "tls/session_cache.h"
#include "tls/verified_chains.h"

namespace dbward::tls {
namespace {

bool Readable(const std::string& path, std::string* why) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *why = strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return false;
  }
  return true;
}

int PasswordCallback(char* buf, int size, int /*rwflag*/, void* userdata) {
  const std::string* pw = static_cast<const std::string*>(userdata);
  if (pw == nullptr || pw->empty() || static_cast<int>(pw->size()) > size) return 0;
  memcpy(buf, pw->data(), pw->size());
  return static_cast<int>(pw->size());
}

LoadError Error(LoadError::File file, LoadError::Kind kind, std::string path, std::string detail = "") {
  LoadError e;
  e.file = file;
  e.kind = kind;
  e.path = std::move(path);
  e.detail = std::move(detail);
  return e;
}

LoadError Internal(std::string detail) {
  return Error(LoadError::File::kNone, LoadError::Kind::kInternal, "", std::move(detail));
}

bool SetAlpn(SSL_CTX* ctx, const std::vector<std::string>& alpn, LoadError* error) {
  if (alpn.empty()) return true;
  std::string wire;
  for (const auto& p : alpn) {
    if (p.empty() || p.size() > 255) {
      *error = Internal("invalid ALPN protocol name");
      return false;
    }
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  // Note the inverted return convention of this OpenSSL-compatible call.
  if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) != 0) {
    *error = Internal("cannot set ALPN");
    return false;
  }
  return true;
}

// Server side: accept the first of our protocols the client offers; a client
// that offers ALPN but none of ours is refused (RFC 7301 no_application_protocol).
int AlpnSelect(SSL* /*ssl*/, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
               unsigned in_len, void* arg) {
  const auto* ours = static_cast<const std::vector<std::string>*>(arg);
  for (const auto& p : *ours) {
    unsigned i = 0;
    while (i < in_len) {
      unsigned len = in[i];
      if (i + 1 + len > in_len) break;
      if (len == p.size() && memcmp(in + i + 1, p.data(), len) == 0) {
        *out = in + i + 1;
        *out_len = static_cast<uint8_t>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// A PEM chain file as CRYPTO_BUFFERs, leaf first (for a context built on
// TLS_with_buffers_method, which keeps certificates only as DER).
bool ReadChainBuffers(const std::string& path, std::vector<bssl::UniquePtr<CRYPTO_BUFFER>>* out) {
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return false;
  for (;;) {
    bssl::UniquePtr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    uint8_t* der = nullptr;
    int len = i2d_X509(cert.get(), &der);
    if (len <= 0) return false;
    out->emplace_back(CRYPTO_BUFFER_new(der, static_cast<size_t>(len), nullptr));
    OPENSSL_free(der);
    if (!out->back()) return false;
  }
  // The loop ends on the first block that is not a certificate: at the end
  // of the file that is PEM_R_NO_START_LINE, which is no error.
  uint32_t e = ERR_peek_last_error();
  if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ERR_clear_error();
  return !out->empty() && ERR_peek_error() == 0;
}

}  // namespace

std::string TakeErrors() {
  std::string out;
  uint32_t e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

bool ParseTlsVersion(const std::string& text, uint16_t* out) {
  if (text == "1.2") {
    *out = TLS1_2_VERSION;
  } else if (text == "1.3") {
    *out = TLS1_3_VERSION;
  } else {
    return false;
  }
  return true;
}

const char* TlsVersionName(uint16_t version) {
  switch (version) {
    case TLS1_VERSION: return "TLSv1.0";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    default: return "unknown";
  }
}

std::string SystemCaBundle() {
  if (const char* env = getenv("SSL_CERT_FILE"); env != nullptr && *env != '\0') return env;
  static const char* const kCandidates[] = {
      "/etc/ssl/certs/ca-certificates.crt",  // Debian, Ubuntu
      "/etc/pki/tls/certs/ca-bundle.crt",     // RHEL, Fedora
      "/etc/ssl/cert.pem",                    // Alpine, macOS
      "/etc/ssl/ca-bundle.pem",               // SUSE
  };
  for (const char* path : kCandidates) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return path;
  }
  return "";
}

std::string LoadError::Message() const {
  switch (kind) {
    case Kind::kUnreadable:
      switch (file) {
        case File::kCa: return "cannot read CA file " + path + ": " + detail;
        case File::kCert: return "cannot read certificate " + path + ": " + detail;
        case File::kKey: return "cannot read private key " + path + ": " + detail;
        case File::kCrl: return "cannot read CRL file " + path + ": " + detail;
        case File::kClientCa: return "cannot read client CA file " + path + ": " + detail;
        case File::kNone: break;
      }
      return "cannot read " + path + ": " + detail;
    case Kind::kInvalid:
      switch (file) {
        case File::kCa: return "cannot load CA certificates from " + path + ": " + detail;
        case File::kCert: return "cannot load certificate " + path + ": " + detail;
        case File::kKey: return "cannot load private key " + path + ": " + detail;
        case File::kCrl: return "cannot load CRLs from " + path + ": " + detail;
        case File::kClientCa: return "cannot load client CA certificates from " + path + ": " + detail;
        case File::kNone: break;
      }
      return "cannot load " + path + ": " + detail;
    case Kind::kNoSystemBundle: return "no CA file given and no system CA bundle found";
    case Kind::kKeyEncrypted: return "private key " + path + " is encrypted and no password was given";
    case Kind::kWrongPassword: return "cannot decrypt private key " + path + ": wrong password";
    case Kind::kKeyMismatch: return "private key " + path + " does not match certificate " + other_path;
    case Kind::kInternal: return detail;
  }
  return detail;
}

bool LoadKeyPair(SSL_CTX* ctx, const KeyPair& pair, LoadError* error, bool buffers_only) {
  using File = LoadError::File;
  using Kind = LoadError::Kind;
  std::string why;
  if (pair.cert_file.empty() || pair.key_file.empty()) {
    *error = Internal("both a certificate and a private key are required");
    return false;
  }
  if (!Readable(pair.cert_file, &why)) {
    *error = Error(File::kCert, Kind::kUnreadable, pair.cert_file, why);
    return false;
  }
  if (!Readable(pair.key_file, &why)) {
    *error = Error(File::kKey, Kind::kUnreadable, pair.key_file, why);
    return false;
  }
  ERR_clear_error();
  // A client context keeps certificates as DER only (TLS_with_buffers_method);
  // a server context takes them as X509.
  std::vector<bssl::UniquePtr<CRYPTO_BUFFER>> chain;
  const bool buffers = buffers_only;
  if (buffers ? !ReadChainBuffers(pair.cert_file, &chain)
              : SSL_CTX_use_certificate_chain_file(ctx, pair.cert_file.c_str()) != 1) {
    std::string detail = TakeErrors();
    *error = Error(File::kCert, Kind::kInvalid, pair.cert_file,
                   detail.empty() ? "no certificate in the file (expected -----BEGIN CERTIFICATE-----)" : detail);
    return false;
  }
  bssl::UniquePtr<BIO> bio(BIO_new_file(pair.key_file.c_str(), "r"));
  if (!bio) {
    *error = Error(File::kKey, Kind::kUnreadable, pair.key_file, TakeErrors());
    return false;
  }
  const std::string& pw = pair.key_password;
  bssl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, PasswordCallback,
                                                        const_cast<std::string*>(&pw)));
  if (!key) {
    uint32_t e = ERR_peek_last_error();
    std::string detail = TakeErrors();
    bool bad_decrypt = ERR_GET_LIB(e) == ERR_LIB_CIPHER || ERR_GET_REASON(e) == PEM_R_BAD_DECRYPT ||
                       ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ ||
                       detail.find("DECRYPT") != std::string::npos;
    if (pw.empty() && (ERR_GET_REASON(e) == PEM_R_BAD_PASSWORD_READ || bad_decrypt)) {
      *error = Error(File::kKey, Kind::kKeyEncrypted, pair.key_file);
    } else if (bad_decrypt) {
      *error = Error(File::kKey, Kind::kWrongPassword, pair.key_file);
    } else {
      *error = Error(File::kKey, Kind::kInvalid, pair.key_file, detail);
    }
    return false;
  }
  if (buffers) {
    std::vector<CRYPTO_BUFFER*> raw;
    for (const auto& b : chain) raw.push_back(b.get());
    if (SSL_CTX_set_chain_and_key(ctx, raw.data(), raw.size(), key.get(), nullptr) != 1) {
      TakeErrors();
      *error = Error(File::kKey, Kind::kKeyMismatch, pair.key_file);
      error->other_path = pair.cert_file;
      return false;
    }
  } else if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    TakeErrors();
    *error = Error(File::kKey, Kind::kKeyMismatch, pair.key_file);
    error->other_path = pair.cert_file;
    return false;
  }
  return true;
}

namespace {

// Adds every CRL in a PEM file to the context's store and turns CRL checking
// on for the leaf.
bool LoadCrls(X509_STORE* store, const std::string& path, LoadError* error, int64_t* next_update) {
  std::string why;
  if (!Readable(path, &why)) {
    *error = Error(LoadError::File::kCrl, LoadError::Kind::kUnreadable, path, why);
    return false;
  }
  bssl::UniquePtr<BIO> bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) {
    *error = Error(LoadError::File::kCrl, LoadError::Kind::kUnreadable, path, TakeErrors());
    return false;
  }
  ERR_clear_error();
  STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(bio.get(), nullptr, nullptr, nullptr);
  if (infos == nullptr) {
    *error = Error(LoadError::File::kCrl, LoadError::Kind::kInvalid, path, TakeErrors());
    return false;
  }
  size_t crls = 0;
  bool ok = true;
  for (size_t i = 0; i < sk_X509_INFO_num(infos); i++) {
    X509_INFO* info = sk_X509_INFO_value(infos, i);
    if (info->crl == nullptr) continue;
    if (X509_STORE_add_crl(store, info->crl) != 1) ok = false;
    // The earliest nextUpdate bounds how long a chain validated against
    // these CRLs stays valid (VerifiedChains).
    if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(info->crl)) {
      const int64_t t = TimeUnix(next);
      *next_update = std::min(*next_update, t > 0 ? t : int64_t{0});
    }
    crls++;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  if (!ok || crls == 0) {
    *error = Error(LoadError::File::kCrl, LoadError::Kind::kInvalid, path,
                   crls == 0 ? "no X509 CRL in the file (expected -----BEGIN X509 CRL-----)" : TakeErrors());
    return false;
  }
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  return true;
}

}  // namespace

std::string SpkiSha256(X509* cert) {
  if (cert == nullptr) return "";
  X509_PUBKEY* key = X509_get_X509_PUBKEY(cert);
  if (key == nullptr) return "";
  uint8_t* der = nullptr;
  int len = i2d_X509_PUBKEY(key, &der);
  if (len <= 0) return "";
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(len), digest);
  OPENSSL_free(der);
  char b64[64];
  size_t n = EVP_EncodeBlock(reinterpret_cast<uint8_t*>(b64), digest, sizeof(digest));
  return std::string(b64, n);
}

std::string NormalizeSpkiPin(const std::string& text) {
  std::string pin = text.rfind("sha256//", 0) == 0 ? text.substr(8) : text;
  if (pin.size() != 44) return "";
  uint8_t out[48];
  size_t n = 0;
  if (!EVP_DecodeBase64(out, &n, sizeof(out), reinterpret_cast<const uint8_t*>(pin.data()), pin.size()) ||
      n != SHA256_DIGEST_LENGTH) {
    return "";
  }
  return pin;
}

bool RequestClientCertificates(SSL_CTX* ctx, const std::string& ca_file, LoadError* error) {
  std::string why;
  if (!Readable(ca_file, &why)) {
    *error = Error(LoadError::File::kClientCa, LoadError::Kind::kUnreadable, ca_file, why);
    return false;
  }
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    *error = Error(LoadError::File::kClientCa, LoadError::Kind::kInvalid, ca_file, TakeErrors());
    return false;
  }
  // The CA names in CertificateRequest let a client with several
  // certificates pick the right one.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (names == nullptr) {
    *error = Error(LoadError::File::kClientCa, LoadError::Kind::kInvalid, ca_file, TakeErrors());
    return false;
  }
  SSL_CTX_set_client_CA_list(ctx, names);
  X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx), X509_PURPOSE_SSL_CLIENT);
  // Asked, not required: the session says "a certificate is required" in
  // the protocol's words after the handshake. One that is sent must verify.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  static const uint8_t kSidContext[] = "dbward";
  SSL_CTX_set_session_id_context(ctx, kSidContext, sizeof(kSidContext) - 1);
  return true;
}

Context::Context(SSL_CTX* ctx, bool client) : ctx_(ctx), client_(client) {}

Context::~Context() { SSL_CTX_free(ctx_); }

int Context::VerifyChainInStore(X509_STORE_CTX* store) const {
  return chain_verifier_ != nullptr ? chain_verifier_(store, chain_verifier_arg_) : VerifyChain(store, this);
}

std::shared_ptr<Context> Context::NewClient(const ClientOptions& o, LoadError* error) {
  using File = LoadError::File;
  using Kind = LoadError::Kind;
  // No crypto/x509 inside the handshake: the server's certificates stay DER
  // (CRYPTO_BUFFERs shared with the session), and VerifyPeer parses them
  // only for as long as it takes to validate the chain. With TLS_method,
  // every backend leg would keep its peer chain parsed into X509 objects
  // (about 4 KiB per idle session) for as long as it lives.
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_with_buffers_method()));
  if (!ctx) {
    *error = Internal("SSL_CTX_new failed");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), o.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Verification is never optional: VerifyPeer validates the chain against
  // the context's store, and no path turns that into a pass.
  SSL_CTX_set_custom_verify(ctx.get(), SSL_VERIFY_PEER, VerifyPeer);

  TrustStore trust{o.ca_file, false};
  std::string why;
  if (trust.path.empty()) {
    trust = {SystemCaBundle(), true};
    if (trust.path.empty()) {
      *error = Error(File::kCa, Kind::kNoSystemBundle, "");
      return nullptr;
    }
  }
  if (!Readable(trust.path, &why)) {
    *error = Error(File::kCa, Kind::kUnreadable, trust.path, why);
    return nullptr;
  }
  ERR_clear_error();
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  if (!store || X509_STORE_load_locations(store.get(), trust.path.c_str(), nullptr) != 1) {
    *error = Error(File::kCa, Kind::kInvalid, trust.path, TakeErrors());
    return nullptr;
  }
  int64_t crl_next_update = INT64_MAX;
  if (!o.crl_file.empty() && !LoadCrls(store.get(), o.crl_file, error, &crl_next_update)) return nullptr;
  std::vector<std::string> pins;
  for (const std::string& p : o.spki_pins) {
    std::string pin = NormalizeSpkiPin(p);
    if (pin.empty()) {
      *error = Internal("'" + p + "' is not a SHA-256 SPKI pin (base64 of 32 bytes, optionally sha256//...)");
      return nullptr;
    }
    pins.push_back(pin);
  }
  if (!o.client_cert.empty()) {
    if (!LoadKeyPair(ctx.get(), o.client_cert, error, /*buffers_only=*/true)) return nullptr;
  }
  if (!SetAlpn(ctx.get(), o.alpn, error)) return nullptr;

  std::shared_ptr<Context> out(new Context(ctx.release(), true));
  out->verify_ = o.verify;
  out->trust_ = std::move(trust);
  out->pins_ = std::move(pins);
  out->crl_file_ = o.crl_file;
  out->store_ = std::move(store);
  out->verified_ = std::make_unique<VerifiedChains>();
  out->crl_valid_until_ = crl_next_update;
  out->presents_certificate_ = !o.client_cert.empty();
  if (o.resume_sessions) {
    // Sessions go to the Context's own cache, keyed by server name, never
    // to BoringSSL's internal one (a client has none to look up anyway).
    out->sessions_ = std::make_unique<SessionCache>();
    SSL_CTX_set_session_cache_mode(out->ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(out->ctx_, KeepClientSession);
  }
  return out;
}

std::shared_ptr<Context> Context::NewServer(const ServerOptions& o, LoadError* error) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) {
    *error = Internal("SSL_CTX_new failed");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), o.min_version);
  SSL_CTX_set_max_proto_version(ctx.get(), std::max(o.min_version, o.max_version));
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // No session tickets: database clients rarely resume, and unread
  // NewSessionTicket records make a client's close() look like a reset.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (!LoadKeyPair(ctx.get(), o.cert, error, /*buffers_only=*/false)) return nullptr;
  if (!o.client_ca_file.empty() && !RequestClientCertificates(ctx.get(), o.client_ca_file, error)) return nullptr;
  return WrapServer(ctx.release(), o.alpn);
}

std::shared_ptr<Context> Context::WrapServer(SSL_CTX* ssl_ctx, const std::vector<std::string>& alpn) {
  std::shared_ptr<Context> out(new Context(ssl_ctx, false));
  out->asks_client_cert_ = (SSL_CTX_get_verify_mode(ssl_ctx) & SSL_VERIFY_PEER) != 0;
  out->server_end_point_ = ServerEndPoint(SSL_CTX_get0_certificate(ssl_ctx));
  if (!alpn.empty()) {
    // The vector must outlive the SSL_CTX; it is stored as ex_data and freed
    // with it.
    auto* copy = new std::vector<std::string>(alpn);
    SSL_CTX_set_alpn_select_cb(out->ctx_, AlpnSelect, copy);
    static int index = SSL_CTX_get_ex_new_index(
        0, nullptr, nullptr, nullptr,
        [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
          delete static_cast<std::vector<std::string>*>(ptr);
        });
    SSL_CTX_set_ex_data(out->ctx_, index, copy);
  }
  return out;
}

}  // namespace dbward::tls
