#include "mysql8_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

namespace dbward::testing {
namespace {

// Capability flags (MySQL include/mysql_com.h).
constexpr uint32_t kClientConnectWithDb = 0x00000008;
constexpr uint32_t kClientProtocol41 = 0x00000200;
constexpr uint32_t kClientSsl = 0x00000800;
constexpr uint32_t kClientSecureConnection = 0x00008000;
constexpr uint32_t kClientPluginAuth = 0x00080000;
constexpr uint32_t kClientConnectAttrs = 0x00100000;
constexpr uint32_t kClientPluginAuthLenencClientData = 0x00200000;
constexpr uint32_t kClientDeprecateEof = 0x01000000;
constexpr uint32_t kClientOptionalResultsetMetadata = 0x02000000;
constexpr uint32_t kClientQueryAttributes = 0x08000000;

// What an 8.0.36 server with TLS configured announces ("ff ff ... ff df" on
// the wire): everything up to MULTI_FACTOR_AUTHENTICATION (bit 28), plus
// SSL_VERIFY_SERVER_CERT and REMEMBER_OPTIONS, but not CAPABILITY_EXTENSION.
constexpr uint32_t kServerCapabilities = 0xdfffffff;
constexpr uint8_t kCharsetUtf8mb4_0900 = 255;
constexpr uint8_t kCharsetBinary = 63;
constexpr uint16_t kStatusAutocommit = 0x0002;
constexpr char kServerVersion[] = "8.0.36";
constexpr char kPluginName[] = "caching_sha2_password";
constexpr size_t kScrambleLength = 20;
constexpr size_t kSha256Length = 32;
constexpr size_t kMaxPayload = 0xffffff;
constexpr size_t kMaxMessage = 64u << 20;  // max_allowed_packet default

// Command bytes.
constexpr uint8_t kComQuit = 0x01;
constexpr uint8_t kComInitDb = 0x02;
constexpr uint8_t kComQuery = 0x03;
constexpr uint8_t kComPing = 0x0e;

// Column types and flags.
constexpr uint8_t kTypeLongLong = 0x08;
constexpr uint8_t kTypeVarString = 0xfd;
constexpr uint16_t kNotNullFlag = 0x0001;
constexpr uint16_t kBinaryFlag = 0x0080;

using Bytes = std::vector<uint8_t>;

// Builds one packet payload.
class Payload {
 public:
  Payload& U8(uint8_t v) {
    bytes_.push_back(v);
    return *this;
  }
  Payload& U16(uint16_t v) { return U8(static_cast<uint8_t>(v)).U8(static_cast<uint8_t>(v >> 8)); }
  Payload& U32(uint32_t v) {
    return U16(static_cast<uint16_t>(v)).U16(static_cast<uint16_t>(v >> 16));
  }
  Payload& Raw(std::string_view s) {
    bytes_.insert(bytes_.end(), s.begin(), s.end());
    return *this;
  }
  Payload& Raw(const uint8_t* p, size_t n) {
    bytes_.insert(bytes_.end(), p, p + n);
    return *this;
  }
  Payload& Zeros(size_t n) {
    bytes_.insert(bytes_.end(), n, 0);
    return *this;
  }
  Payload& NulString(std::string_view s) { return Raw(s).U8(0); }
  Payload& Lenenc(uint64_t v) {
    if (v < 0xfb) return U8(static_cast<uint8_t>(v));
    if (v <= 0xffff) return U8(0xfc).U16(static_cast<uint16_t>(v));
    if (v <= 0xffffff) {
      return U8(0xfd).U16(static_cast<uint16_t>(v)).U8(static_cast<uint8_t>(v >> 16));
    }
    return U8(0xfe).U32(static_cast<uint32_t>(v)).U32(static_cast<uint32_t>(v >> 32));
  }
  Payload& LenencString(std::string_view s) { return Lenenc(s.size()).Raw(s); }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
};

// Frames payload as MySQL packets (splitting at 16 MiB - 1) and appends them
// to out; returns the sequence id for the next packet.
uint8_t AppendPacket(Bytes* out, uint8_t seq, const Bytes& payload) {
  size_t off = 0;
  for (;;) {
    size_t n = std::min(payload.size() - off, kMaxPayload);
    out->push_back(static_cast<uint8_t>(n));
    out->push_back(static_cast<uint8_t>(n >> 8));
    out->push_back(static_cast<uint8_t>(n >> 16));
    out->push_back(seq++);
    out->insert(out->end(), payload.begin() + static_cast<ptrdiff_t>(off),
                payload.begin() + static_cast<ptrdiff_t>(off + n));
    off += n;
    if (n < kMaxPayload) return seq;
  }
}

Bytes OkPayload() {
  // affected rows 0, last insert id 0, SERVER_STATUS_AUTOCOMMIT, 0 warnings;
  // no info text, so nothing follows even with CLIENT_SESSION_TRACK.
  return Payload().U8(0x00).Lenenc(0).Lenenc(0).U16(kStatusAutocommit).U16(0).bytes();
}

Bytes ErrPayload(uint16_t code, std::string_view sqlstate, std::string_view message) {
  return Payload().U8(0xff).U16(code).U8('#').Raw(sqlstate).Raw(message).bytes();
}

bool GetLenenc(CBS* cbs, uint64_t* out) {
  uint8_t first;
  if (!CBS_get_u8(cbs, &first)) return false;
  if (first < 0xfb) {
    *out = first;
    return true;
  }
  if (first == 0xfc) {
    uint16_t v;
    if (!CBS_get_u16le(cbs, &v)) return false;
    *out = v;
    return true;
  }
  if (first == 0xfd) {
    uint16_t lo;
    uint8_t hi;
    if (!CBS_get_u16le(cbs, &lo) || !CBS_get_u8(cbs, &hi)) return false;
    *out = lo | (static_cast<uint64_t>(hi) << 16);
    return true;
  }
  if (first == 0xfe) return CBS_get_u64le(cbs, out) == 1;
  return false;  // 0xfb (NULL) and 0xff are not lengths
}

bool GetLenencBytes(CBS* cbs, CBS* out) {
  uint64_t n;
  return GetLenenc(cbs, &n) && n <= CBS_len(cbs) && CBS_get_bytes(cbs, out, static_cast<size_t>(n));
}

bool GetNulString(CBS* cbs, std::string* out) {
  CBS s;
  if (!CBS_get_until_first(cbs, &s, 0) || !CBS_skip(cbs, 1)) return false;
  out->assign(reinterpret_cast<const char*>(CBS_data(&s)), CBS_len(&s));
  return true;
}

std::string ToString(const CBS& cbs) {
  return std::string(reinterpret_cast<const char*>(CBS_data(&cbs)), CBS_len(&cbs));
}

struct HandshakeResponse {
  uint32_t capabilities = 0;
  std::string user;
  std::string auth_response;
  std::string database;
  std::string plugin;
  std::map<std::string, std::string> attributes;
};

// Protocol::HandshakeResponse41.
bool ParseHandshakeResponse(const Bytes& payload, HandshakeResponse* out) {
  CBS cbs;
  CBS_init(&cbs, payload.data(), payload.size());
  uint32_t max_packet;
  uint8_t charset;
  if (!CBS_get_u32le(&cbs, &out->capabilities) || !CBS_get_u32le(&cbs, &max_packet) ||
      !CBS_get_u8(&cbs, &charset) || !CBS_skip(&cbs, 23) || !GetNulString(&cbs, &out->user)) {
    return false;
  }
  uint32_t caps = out->capabilities;
  if ((caps & kClientProtocol41) == 0) return false;
  CBS auth;
  if (caps & kClientPluginAuthLenencClientData) {
    if (!GetLenencBytes(&cbs, &auth)) return false;
  } else if (caps & kClientSecureConnection) {
    if (!CBS_get_u8_length_prefixed(&cbs, &auth)) return false;
  } else if (!CBS_get_until_first(&cbs, &auth, 0) || !CBS_skip(&cbs, 1)) {
    return false;
  }
  out->auth_response = ToString(auth);
  if ((caps & kClientConnectWithDb) && CBS_len(&cbs) > 0 && !GetNulString(&cbs, &out->database)) {
    return false;
  }
  if ((caps & kClientPluginAuth) && CBS_len(&cbs) > 0) {
    // The server tolerates a plugin name that runs to the end of the packet.
    CBS name;
    if (!CBS_get_until_first(&cbs, &name, 0)) {
      out->plugin = ToString(cbs);
      CBS_skip(&cbs, CBS_len(&cbs));
    } else {
      out->plugin = ToString(name);
      CBS_skip(&cbs, 1);
    }
  }
  if ((caps & kClientConnectAttrs) && CBS_len(&cbs) > 0) {
    CBS attrs;
    if (!GetLenencBytes(&cbs, &attrs)) return false;
    while (CBS_len(&attrs) > 0) {
      CBS key, value;
      if (!GetLenencBytes(&attrs, &key) || !GetLenencBytes(&attrs, &value)) return false;
      out->attributes[ToString(key)] = ToString(value);
    }
  }
  return true;
}

// caching_sha2_password's scramble answer:
// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || scramble).
std::array<uint8_t, kSha256Length> FastAuthToken(const std::string& password, const uint8_t* scramble) {
  std::array<uint8_t, kSha256Length> stage1, stage2, stage3;
  SHA256(reinterpret_cast<const uint8_t*>(password.data()), password.size(), stage1.data());
  SHA256(stage1.data(), stage1.size(), stage2.data());
  uint8_t buf[kSha256Length + kScrambleLength];
  memcpy(buf, stage2.data(), kSha256Length);
  memcpy(buf + kSha256Length, scramble, kScrambleLength);
  SHA256(buf, sizeof buf, stage3.data());
  for (size_t i = 0; i < kSha256Length; i++) stage1[i] ^= stage3[i];
  return stage1;
}

// Lower case, whitespace runs collapsed, trailing ';' and blanks dropped.
std::string NormalizeQuery(std::string_view q) {
  std::string out;
  bool space = false;
  for (char c : q) {
    if (isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(tolower(static_cast<unsigned char>(c))));
  }
  while (!out.empty() && (out.back() == ';' || out.back() == ' ')) out.pop_back();
  return out;
}

struct Column {
  std::string schema;
  std::string table;
  std::string name;
  std::string org_name;
  uint16_t charset;
  uint32_t length;
  uint8_t type;
  uint16_t flags;
  uint8_t decimals;
};

// Protocol::ColumnDefinition41.
Bytes ColumnDefinition(const Column& c) {
  return Payload()
      .LenencString("def")
      .LenencString(c.schema)
      .LenencString(c.table)
      .LenencString(c.table)  // org_table
      .LenencString(c.name)
      .LenencString(c.org_name)
      .Lenenc(0x0c)
      .U16(c.charset)
      .U32(c.length)
      .U8(c.type)
      .U16(c.flags)
      .U8(c.decimals)
      .Zeros(2)
      .bytes();
}

// A text resultset as the server sends it for the client's capabilities.
Bytes TextResultset(uint32_t caps, const std::vector<Column>& columns,
                    const std::vector<std::vector<std::string>>& rows) {
  Bytes out;
  uint8_t seq = 1;
  Payload count;
  count.Lenenc(columns.size());
  if (caps & kClientOptionalResultsetMetadata) count.U8(1);  // RESULTSET_METADATA_FULL
  seq = AppendPacket(&out, seq, count.bytes());
  for (const Column& c : columns) seq = AppendPacket(&out, seq, ColumnDefinition(c));
  Bytes eof = Payload().U8(0xfe).U16(0).U16(kStatusAutocommit).bytes();
  if ((caps & kClientDeprecateEof) == 0) seq = AppendPacket(&out, seq, eof);
  for (const auto& row : rows) {
    Payload r;
    for (const auto& v : row) r.LenencString(v);
    seq = AppendPacket(&out, seq, r.bytes());
  }
  if (caps & kClientDeprecateEof) {
    Bytes ok = OkPayload();
    ok[0] = 0xfe;  // an OK packet in EOF's clothing ends the rows
    AppendPacket(&out, seq, ok);
  } else {
    AppendPacket(&out, seq, eof);
  }
  return out;
}

std::string OpensslError() {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace

// One client connection: a socket, TLS once the client asked for it.
class Mysql8Backend::Conn {
 public:
  struct Packet {
    uint8_t seq = 0;       // sequence id of the (first) packet
    uint8_t next_seq = 0;  // the id the answer must carry
    Bytes payload;
  };

  Conn(int fd, bool trace) : fd_(fd), trace_(trace) {}
  ~Conn() {
    if (ssl_) SSL_shutdown(ssl_.get());
  }

  bool StartTls(SSL_CTX* ctx, std::string* error) {
    ssl_.reset(SSL_new(ctx));
    SSL_set_fd(ssl_.get(), fd_);
    if (SSL_accept(ssl_.get()) != 1) {
      *error = "TLS handshake failed: " + OpensslError();
      ssl_.reset();
      return false;
    }
    return true;
  }
  bool tls() const { return ssl_ != nullptr; }
  std::string tls_version() const { return ssl_ ? SSL_get_version(ssl_.get()) : ""; }

  // Reads one message; payloads of 16 MiB - 1 continue in the next packet.
  bool Read(Packet* p) {
    p->payload.clear();
    bool first = true;
    for (;;) {
      uint8_t h[4];
      if (!ReadFull(h, sizeof h)) return false;
      size_t len = h[0] | (h[1] << 8) | (h[2] << 16);
      if (first) p->seq = h[3];
      first = false;
      p->next_seq = static_cast<uint8_t>(h[3] + 1);
      if (p->payload.size() + len > kMaxMessage) return false;
      size_t off = p->payload.size();
      p->payload.resize(off + len);
      if (len > 0 && !ReadFull(p->payload.data() + off, len)) return false;
      if (len < kMaxPayload) {
        Trace('<', p->seq, p->payload.data(), p->payload.size());
        return true;
      }
    }
  }

  bool Write(const Bytes& bytes) {
    for (size_t i = 0; i + 4 <= bytes.size();) {
      size_t len = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16);
      Trace('>', bytes[i + 3], bytes.data() + i + 4, std::min(len, bytes.size() - i - 4));
      i += 4 + len;
    }
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n;
      if (ssl_) {
        n = SSL_write(ssl_.get(), bytes.data() + off, static_cast<int>(bytes.size() - off));
      } else {
        n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      }
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Sends one message as a packet with sequence id seq.
  bool Send(uint8_t seq, const Bytes& payload) {
    Bytes out;
    AppendPacket(&out, seq, payload);
    return Write(out);
  }

 private:
  bool ReadFull(uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t got;
      if (ssl_) {
        got = SSL_read(ssl_.get(), p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      } else {
        got = recv(fd_, p, n, 0);
      }
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }

  void Trace(char dir, uint8_t seq, const uint8_t* p, size_t n) const {
    if (!trace_) return;
    std::string hex;
    char b[4];
    for (size_t i = 0; i < std::min<size_t>(n, 48); i++) {
      snprintf(b, sizeof b, "%02x ", p[i]);
      hex += b;
    }
    fprintf(stderr, "mysql8-backend fd %d %s %c seq=%u len=%zu: %s%s\n", fd_, ssl_ ? "tls" : "tcp", dir, seq, n,
            hex.c_str(), n > 48 ? "..." : "");
  }

  int fd_;
  bool trace_;
  bssl::UniquePtr<SSL> ssl_;
};

Mysql8Backend::Mysql8Backend(Options options)
    : options_(std::move(options)), cache_warm_(options_.cache_warm) {}

Mysql8Backend::~Mysql8Backend() {
  stop_ = true;
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  if (listen_fd_ >= 0) close(listen_fd_);
}

bool Mysql8Backend::Start(std::string* error) {
  // The key pair a real server creates at first start (caching_sha2_password_
  // auto_generate_rsa_keys) for clients that ask for it over plaintext.
  bssl::UniquePtr<RSA> rsa(RSA_new());
  bssl::UniquePtr<BIGNUM> e(BN_new());
  rsa_key_.reset(EVP_PKEY_new());
  if (!BN_set_word(e.get(), RSA_F4) || !RSA_generate_key_ex(rsa.get(), 2048, e.get(), nullptr) ||
      !EVP_PKEY_set1_RSA(rsa_key_.get(), rsa.get())) {
    *error = "RSA key generation failed: " + OpensslError();
    return false;
  }
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  const uint8_t* pem;
  size_t pem_len;
  if (!PEM_write_bio_PUBKEY(bio.get(), rsa_key_.get()) || !BIO_mem_contents(bio.get(), &pem, &pem_len)) {
    *error = "cannot encode the RSA public key";
    return false;
  }
  public_key_pem_.assign(reinterpret_cast<const char*>(pem), pem_len);

  if (!options_.cert.empty()) {
    ctx_.reset(SSL_CTX_new(TLS_method()));
    if (SSL_CTX_use_certificate_chain_file(ctx_.get(), options_.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_.get(), options_.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      *error = "cannot load " + options_.cert + " / " + options_.key + ": " + OpensslError();
      return false;
    }
    // 8.0.36's default tls_version is TLSv1.2,TLSv1.3.
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx_.get(), TLS1_3_VERSION);
  }

  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(listen_fd_, 64) != 0) {
    *error = strerror(errno);
    return false;
  }
  socklen_t len = sizeof sa;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void Mysql8Backend::AcceptLoop() {
  while (!stop_) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stop_) return;
      continue;
    }
    connections_++;
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void Mysql8Backend::Fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  last_error_ = why;
}

void Mysql8Backend::Serve(int fd) {
  {
    Conn conn(fd, options_.trace);
    uint32_t caps = 0;
    if (Login(&conn, &caps)) CommandLoop(&conn, caps);
  }  // close_notify first (as the server's vio shutdown does), then close
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
  close(fd);
}

// RSA-OAEP (SHA-1) of (password XOR scramble), NUL-terminated password
// inside: what caching_sha2_password and sha256_password clients send without
// TLS after fetching the server's key.
bool DecryptPassword(EVP_PKEY* key, const Bytes& blob, const uint8_t* scramble, std::string* password,
                     std::string* why) {
  bssl::UniquePtr<EVP_PKEY_CTX> pctx(EVP_PKEY_CTX_new(key, nullptr));
  size_t out_len = 0;
  if (!pctx || !EVP_PKEY_decrypt_init(pctx.get()) ||
      !EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_OAEP_PADDING) ||
      !EVP_PKEY_decrypt(pctx.get(), nullptr, &out_len, blob.data(), blob.size())) {
    *why = "RSA decryption setup failed: " + OpensslError();
    return false;
  }
  Bytes plain(out_len);
  if (!EVP_PKEY_decrypt(pctx.get(), plain.data(), &out_len, blob.data(), blob.size())) {
    *why = "RSA-OAEP decryption failed: " + OpensslError();
    return false;
  }
  plain.resize(out_len);
  for (size_t i = 0; i < plain.size(); i++) plain[i] ^= scramble[i % kScrambleLength];
  if (plain.empty() || plain.back() != 0) {
    *why = "decrypted password is not NUL-terminated";
    return false;
  }
  password->assign(plain.begin(), plain.end() - 1);
  return true;
}

bool Mysql8Backend::Login(Conn* conn, uint32_t* client_caps) {
  // Scramble as the server's generate_user_salt makes it: 7-bit, no NUL or '$'.
  uint8_t scramble[kScrambleLength];
  RAND_bytes(scramble, sizeof scramble);
  for (uint8_t& b : scramble) {
    b &= 0x7f;
    if (b == 0 || b == '$') b++;
  }
  const uint32_t server_caps = ctx_ ? kServerCapabilities : kServerCapabilities & ~kClientSsl;

  // Protocol::HandshakeV10.
  Bytes greeting = Payload()
                       .U8(0x0a)
                       .NulString(kServerVersion)
                       .U32(next_connection_id_++)
                       .Raw(scramble, 8)
                       .U8(0)
                       .U16(static_cast<uint16_t>(server_caps))
                       .U8(kCharsetUtf8mb4_0900)
                       .U16(kStatusAutocommit)
                       .U16(static_cast<uint16_t>(server_caps >> 16))
                       .U8(kScrambleLength + 1)
                       .Zeros(10)
                       .Raw(scramble + 8, kScrambleLength - 8)
                       .U8(0)
                       .NulString(kPluginName)
                       .bytes();
  if (!conn->Send(0, greeting)) return false;

  // Reads the client's next packet and insists on the expected sequence id,
  // as the server's network layer does.
  auto read = [&](Conn::Packet* p, uint8_t want, const char* what) {
    if (!conn->Read(p)) {
      Fail(std::string("connection closed while waiting for ") + what);
      return false;
    }
    if (p->seq != want) {
      Fail(std::string(what) + ": sequence id " + std::to_string(p->seq) + ", expected " +
           std::to_string(want));
      conn->Send(p->next_seq, ErrPayload(1156, "08S01", "Got packets out of order"));
      return false;
    }
    return true;
  };

  Conn::Packet p;
  if (!read(&p, 1, "SSLRequest or HandshakeResponse")) return false;
  uint32_t first_caps = 0;
  if (p.payload.size() >= 4) {
    first_caps = p.payload[0] | (p.payload[1] << 8) | (p.payload[2] << 16) |
                 (static_cast<uint32_t>(p.payload[3]) << 24);
  }
  if (p.payload.size() >= 32 && (first_caps & kClientSsl)) {
    if (!ctx_) {
      Fail("SSLRequest, but no certificate configured");
      conn->Send(p.next_seq, ErrPayload(1043, "08S01", "Bad handshake"));
      return false;
    }
    std::string error;
    if (!conn->StartTls(ctx_.get(), &error)) {
      Fail(error);
      return false;
    }
    if (!read(&p, 2, "HandshakeResponse after TLS")) return false;
  }
  uint8_t seq = p.next_seq;

  HandshakeResponse resp;
  if (!ParseHandshakeResponse(p.payload, &resp)) {
    Fail("malformed HandshakeResponse41");
    conn->Send(seq, ErrPayload(1043, "08S01", "Bad handshake"));
    return false;
  }
  *client_caps = resp.capabilities;
  {
    std::lock_guard<std::mutex> lock(mu_);
    saw_tls_ = conn->tls();
    last_client_capabilities_ = resp.capabilities;
    last_tls_version_ = conn->tls_version();
    last_user_ = resp.user;
    last_database_ = resp.database;
    last_attributes_ = resp.attributes;
    last_auth_path_.clear();
  }
  if (options_.require_secure_transport && !conn->tls()) {
    Fail("insecure transport refused (require_secure_transport)");
    conn->Send(seq, ErrPayload(3159, "HY000",
                               "Connections using insecure transport are prohibited while "
                               "--require_secure_transport=ON."));
    return false;
  }
  if ((resp.capabilities & kClientPluginAuth) == 0) {
    Fail("client without CLIENT_PLUGIN_AUTH");
    conn->Send(seq, ErrPayload(1251, "08004",
                               "Client does not support authentication protocol requested by server; "
                               "consider upgrading MySQL client"));
    return false;
  }

  std::string answer = resp.auth_response;
  if (resp.plugin != kPluginName) {
    // Protocol::AuthSwitchRequest: the user's plugin restarts with the same scramble.
    Bytes sw = Payload().U8(0xfe).NulString(kPluginName).Raw(scramble, kScrambleLength).U8(0).bytes();
    if (!conn->Send(seq, sw)) return false;
    if (!read(&p, static_cast<uint8_t>(seq + 1), "AuthSwitchResponse")) return false;
    seq = p.next_seq;
    answer.assign(p.payload.begin(), p.payload.end());
  }

  const std::string denied_yes =
      "Access denied for user '" + resp.user + "'@'localhost' (using password: YES)";
  auto deny = [&](const std::string& why, bool using_password) {
    Fail(why);
    std::string msg = using_password ? denied_yes
                                     : "Access denied for user '" + resp.user +
                                           "'@'localhost' (using password: NO)";
    conn->Send(seq, ErrPayload(1045, "28000", msg));
    return false;
  };
  auto accept = [&]() {
    if (!conn->Send(seq, OkPayload())) return false;
    logins_ok_++;
    return true;
  };
  auto set_path = [&](const char* path) {
    std::lock_guard<std::mutex> lock(mu_);
    last_auth_path_ = path;
  };

  if (options_.plugin == "sha256_password") {
    // sha256_password: an AuthSwitchRequest, then the password in clear over
    // TLS, or RSA-OAEP of (password XOR scramble) after the client asked for
    // the key with 0x01.
    Bytes sw = Payload().U8(0xfe).NulString("sha256_password").Raw(scramble, kScrambleLength).U8(0).bytes();
    if (!conn->Send(seq, sw)) return false;
    if (!read(&p, static_cast<uint8_t>(seq + 1), "AuthSwitchResponse")) return false;
    seq = p.next_seq;
    std::string password;
    if (conn->tls()) {
      set_path("sha256-tls");
      if (p.payload.empty() || p.payload.back() != 0) return deny("clear password is not NUL-terminated", true);
      password.assign(p.payload.begin(), p.payload.end() - 1);
    } else {
      set_path("sha256-rsa");
      if (p.payload.size() == 1 && p.payload[0] == 0x01) {
        if (!conn->Send(seq, Payload().U8(0x01).Raw(public_key_pem_).bytes())) return false;
        if (!read(&p, static_cast<uint8_t>(seq + 1), "RSA-encrypted password")) return false;
        seq = p.next_seq;
      }
      std::string why;
      if (!DecryptPassword(rsa_key_.get(), p.payload, scramble, &password, &why)) return deny(why, true);
    }
    if (resp.user != options_.user || password != options_.password) return deny("wrong user or password", true);
    return accept();
  }

  if (answer.empty() || (answer.size() == 1 && answer[0] == '\0')) {
    return deny("empty scramble answer", false);
  }
  if (answer.size() != kSha256Length) return deny("scramble answer is not 32 bytes", true);
  const bool user_ok = resp.user == options_.user;
  auto token = FastAuthToken(options_.password, scramble);
  if (cache_warm_ && user_ok && CRYPTO_memcmp(token.data(), answer.data(), token.size()) == 0) {
    set_path("fast");
    if (!conn->Send(seq, Payload().U8(0x01).U8(0x03).bytes())) return false;  // fast_auth_success
    seq++;
    return accept();
  }

  // perform_full_authentication
  if (!conn->Send(seq, Payload().U8(0x01).U8(0x04).bytes())) return false;
  if (!read(&p, static_cast<uint8_t>(seq + 1), "full authentication answer")) return false;
  seq = p.next_seq;
  std::string password;
  if (conn->tls()) {
    set_path("full-tls");
    if (p.payload.empty() || p.payload.back() != 0) {
      return deny("clear password over TLS is not NUL-terminated", true);
    }
    password.assign(p.payload.begin(), p.payload.end() - 1);
  } else {
    set_path("full-rsa");
    if (p.payload.size() == 1 && p.payload[0] == 0x02) {  // request_public_key
      if (!conn->Send(seq, Payload().U8(0x01).Raw(public_key_pem_).bytes())) return false;
      if (!read(&p, static_cast<uint8_t>(seq + 1), "RSA-encrypted password")) return false;
      seq = p.next_seq;
    }
    std::string why;
    if (!DecryptPassword(rsa_key_.get(), p.payload, scramble, &password, &why)) return deny(why, true);
  }
  if (!user_ok || password != options_.password) return deny("wrong user or password", true);
  return accept();
}

void Mysql8Backend::CommandLoop(Conn* conn, uint32_t caps) {
  const std::vector<Column> kStatusColumns = {
      {"performance_schema", "session_status", "Variable_name", "VARIABLE_NAME", kCharsetUtf8mb4_0900, 256,
       kTypeVarString, kNotNullFlag, 0},
      {"performance_schema", "session_status", "Value", "VARIABLE_VALUE", kCharsetUtf8mb4_0900, 4096,
       kTypeVarString, 0, 0},
  };
  for (;;) {
    Conn::Packet p;
    if (!conn->Read(&p)) return;
    if (p.seq != 0) {
      Fail("command with sequence id " + std::to_string(p.seq));
      conn->Send(p.next_seq, ErrPayload(1156, "08S01", "Got packets out of order"));
      return;
    }
    if (p.payload.empty()) return;
    CBS body;
    CBS_init(&body, p.payload.data() + 1, p.payload.size() - 1);
    switch (p.payload[0]) {
      case kComQuit:
        return;
      case kComPing:
        if (!conn->Send(1, OkPayload())) return;
        break;
      case kComInitDb:
        {
          std::lock_guard<std::mutex> lock(mu_);
          last_database_ = ToString(body);
        }
        if (!conn->Send(1, OkPayload())) return;
        break;
      case kComQuery: {
        if (caps & kClientQueryAttributes) {
          uint64_t params = 0, sets = 0;
          if (!GetLenenc(&body, &params) || !GetLenenc(&body, &sets)) {
            Fail("malformed COM_QUERY");
            conn->Send(1, ErrPayload(1835, "HY000", "Malformed communication packet."));
            return;
          }
          if (params != 0) {
            if (!conn->Send(1, ErrPayload(1235, "42000",
                                          "This version of MySQL doesn't yet support 'query attributes' "
                                          "(dbward test backend)"))) {
              return;
            }
            break;
          }
        }
        std::string query = ToString(body);
        std::string q = NormalizeQuery(query);
        Bytes out;
        if (q == "select 1") {
          out = TextResultset(caps, {{"", "", "1", "", kCharsetBinary, 1, kTypeLongLong,
                                      kNotNullFlag | kBinaryFlag, 0}},
                              {{"1"}});
        } else if (q == "show status like 'ssl_version'" || q == "show status like \"ssl_version\"") {
          out = TextResultset(caps, kStatusColumns, {{"Ssl_version", conn->tls_version()}});
        } else if (q == "select @@version_comment limit 1") {
          out = TextResultset(caps, {{"", "", "@@version_comment", "", kCharsetUtf8mb4_0900, 112,
                                      kTypeVarString, 0, 0x1f}},
                              {{"MySQL Community Server - GPL"}});
        } else {
          AppendPacket(&out, 1,
                       ErrPayload(1235, "42000",
                                  "This version of MySQL doesn't yet support '" + query +
                                      "' (dbward test backend)"));
        }
        if (!conn->Write(out)) return;
        break;
      }
      default:
        if (!conn->Send(1, ErrPayload(1047, "08S01", "Unknown command"))) return;
        break;
    }
  }
}

bool Mysql8Backend::saw_tls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return saw_tls_;
}

std::string Mysql8Backend::last_tls_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_tls_version_;
}

uint32_t Mysql8Backend::last_client_capabilities() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_client_capabilities_;
}

std::string Mysql8Backend::last_user() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_user_;
}

std::string Mysql8Backend::last_database() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_database_;
}

std::string Mysql8Backend::last_attribute(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_attributes_.find(key);
  return it == last_attributes_.end() ? "" : it->second;
}

std::string Mysql8Backend::last_auth_path() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_auth_path_;
}

std::string Mysql8Backend::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

}  // namespace dbward::testing
