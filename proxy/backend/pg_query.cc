#include "proxy/backend/pg_query.h"

#include <openssl/md5.h>
#include <openssl/mem.h>

#include <algorithm>
#include <cstring>

#include "protocol/postgres.h"
#include "protocol/scram.h"
#include "proxy/backend/probe_io.h"
#include "proxy/engine/engine.h"
#include "tls/connection.h"
#include "tls/scram_keys.h"

namespace dbward::proxy::backend {
namespace {

namespace pg = protocol::pg;
namespace scram = protocol::scram;
namespace keys = tls::scram;

constexpr size_t kMaxMessage = 1 << 20;

class Conversation {
 public:
  explicit Conversation(probe::OpenBackend* b) : b_(b) { in_.Append(b->leftover); }

  bool Send(std::span<const uint8_t> bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      tls::IoResult r = b_->conn->Write(bytes.subspan(done));
      if (!r.ok()) {
        error_ = "the server closed the connection";
        return false;
      }
      done += r.n;
    }
    return true;
  }

  // The next message; false on EOF, a timeout or garbage.
  bool Next(uint8_t* type, std::vector<uint8_t>* body) {
    for (;;) {
      pg::Message m;
      pg::Result r = pg::DecodeMessage(in_.data(), kMaxMessage, &m);
      if (r.ok()) {
        *type = m.type;
        OPENSSL_cleanse(body->data(), body->size());  // before assign can free it
        body->assign(m.body.begin(), m.body.end());
        in_.Consume(m.wire_length);
        return true;
      }
      if (r.malformed()) {
        error_ = "malformed message from the server: " + r.error;
        return false;
      }
      uint8_t buf[16384];
      tls::IoResult io = b_->conn->Read(buf);
      if (!io.ok()) {
        error_ = b_->socket->timed_out() ? "no answer from the server before the timeout"
                                         : "the server closed the connection";
        return false;
      }
      in_.Append(std::span<const uint8_t>(buf, io.n));
      OPENSSL_cleanse(buf, io.n);
    }
  }

  const std::string& error() const { return error_; }
  void set_error(std::string e) { error_ = std::move(e); }

 private:
  probe::OpenBackend* b_;
  engine::ByteQueue in_;  // wipes what it holds and frees: a DataRow carries the verifier
  std::string error_;
};

std::string ServerError(std::span<const uint8_t> body) {
  pg::ErrorFields f;
  if (!pg::ParseErrorResponse(body, &f)) return "the server sent an unreadable error";
  return f.sqlstate + " " + f.message;
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}

// md5(md5(password + user) + salt), hex, with the "md5" prefix.
std::string Md5Response(const std::string& password, const std::string& user, const std::array<uint8_t, 4>& salt) {
  std::string inner = password + user;
  uint8_t d[MD5_DIGEST_LENGTH];
  MD5(reinterpret_cast<const uint8_t*>(inner.data()), inner.size(), d);
  OPENSSL_cleanse(inner.data(), inner.size());
  std::string outer = Hex(d, sizeof d);
  outer.append(salt.begin(), salt.end());
  MD5(reinterpret_cast<const uint8_t*>(outer.data()), outer.size(), d);
  OPENSSL_cleanse(outer.data(), outer.size());
  return "md5" + Hex(d, sizeof d);
}

// SCRAM-SHA-256 as the client, with the password; -PLUS when offered.
bool Scram(Conversation* c, const std::vector<std::string>& mechanisms, const PgQuery& q,
           std::span<const uint8_t> end_point) {
  bool plus = !end_point.empty() && std::find(mechanisms.begin(), mechanisms.end(), std::string(scram::kMechanismPlus)) !=
                                        mechanisms.end();
  if (!plus && std::find(mechanisms.begin(), mechanisms.end(), std::string(scram::kMechanism)) == mechanisms.end()) {
    c->set_error("the server offers no SCRAM-SHA-256 mechanism for this user");
    return false;
  }
  scram::Binding binding = plus ? scram::Binding::kBound : scram::Binding::kNone;
  const std::string nonce = keys::RandomNonce();
  const std::string first = scram::EncodeClientFirst(binding, nonce);
  const std::string bare = first.substr(scram::GsHeader(binding).size());
  if (!c->Send(pg::EncodeSaslInitialResponse(plus ? scram::kMechanismPlus : scram::kMechanism, first))) return false;
  uint8_t type;
  std::vector<uint8_t> body;
  std::string server_first;
  if (!c->Next(&type, &body)) return false;
  if (type == 'E') {
    c->set_error(ServerError(body));
    return false;
  }
  scram::ServerFirst sf;
  std::string why;
  if (type != 'R' || !pg::ParseSaslData(body, pg::kAuthSaslContinue, &server_first) ||
      !scram::ParseServerFirst(server_first, nonce, &sf, &why)) {
    c->set_error(why.empty() ? "unexpected answer to SASLInitialResponse" : why);
    return false;
  }
  keys::DerivedKeys k = keys::DeriveKeys(q.password, sf.salt, sf.iterations);
  const std::string without_proof = scram::EncodeClientFinalWithoutProof(binding, end_point, sf.nonce);
  const std::string auth = scram::AuthMessage(bare, server_first, without_proof);
  keys::Key proof = keys::ClientProof(k.client_key, auth);
  if (!c->Send(pg::EncodeSaslResponse(scram::WithProof(without_proof, proof)))) return false;
  if (!c->Next(&type, &body)) return false;
  if (type == 'E') {
    c->set_error(ServerError(body));
    return false;
  }
  std::string server_final;
  std::vector<uint8_t> signature;
  if (type != 'R' || !pg::ParseSaslData(body, pg::kAuthSaslFinal, &server_final) ||
      !scram::ParseServerFinal(server_final, &signature, &why)) {
    c->set_error(why.empty() ? "unexpected answer to SASLResponse" : why);
    return false;
  }
  if (!keys::ConstantTimeEqual(signature, keys::ServerSignature(k.server_key, auth))) {
    c->set_error("the server's SCRAM signature is wrong: it does not know the password");
    return false;
  }
  return true;
}

}  // namespace

PgQueryResult RunPgQuery(const PgQuery& q, const std::shared_ptr<tls::Context>& ctx) {
  PgQueryResult result;
  std::unique_ptr<probe::OpenBackend> open;
  probe::Attempt a = probe::ProbeBackend(q.target, ctx, probe::Completion::kUpgrade, &open);
  if (!a.ok() || !open) {
    result.error = a.stage == probe::Attempt::kHandshake ? "TLS handshake failed: " + a.diagnosis.detail : a.message;
    return result;
  }
  Conversation c(open.get());
  std::vector<std::pair<std::string, std::string>> params = {
      {"user", q.user}, {"database", q.database}, {"application_name", "dbward auth_query"}};
  if (!c.Send(pg::EncodeStartup(params))) {
    result.error = c.error();
    return result;
  }
  const std::vector<uint8_t> end_point = open->conn->ServerEndPoint();
  bool sent_query = false;
  // One body for every message, wiped when the conversation ends (a DataRow
  // holds the verifier; Next wipes it before each reuse).
  struct WipedBody {
    std::vector<uint8_t> bytes;
    ~WipedBody() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  } wiped;
  std::vector<uint8_t>& body = wiped.bytes;
  for (int steps = 0; steps < 10'000; steps++) {
    uint8_t type;
    if (!c.Next(&type, &body)) {
      result.error = c.error();
      return result;
    }
    switch (type) {
      case 'R': {
        uint32_t code = 0xFFFFFFFF;
        pg::ParseAuthCode(body, &code);
        if (code == pg::kAuthOk) break;
        if (code == pg::kAuthCleartext) {  // acceptable on the verified TLS leg
          std::vector<uint8_t> m = pg::EncodePasswordMessage(q.password);
          bool ok = c.Send(m);
          OPENSSL_cleanse(m.data(), m.size());
          if (!ok) {
            result.error = c.error();
            return result;
          }
          break;
        }
        std::array<uint8_t, 4> salt;
        if (code == pg::kAuthMd5 && pg::ParseMd5Salt(body, &salt)) {
          if (!c.Send(pg::EncodePasswordMessage(Md5Response(q.password, q.user, salt)))) {
            result.error = c.error();
            return result;
          }
          break;
        }
        std::vector<std::string> mechanisms;
        if (code == pg::kAuthSasl && pg::ParseSaslMechanisms(body, &mechanisms)) {
          if (!Scram(&c, mechanisms, q, end_point)) {
            result.error = "SCRAM authentication as " + q.user + " failed: " + c.error();
            return result;
          }
          break;
        }
        result.error = "the server asks for an authentication method dbward cannot use for " + q.user +
                       " (code " + std::to_string(code) + ")";
        return result;
      }
      case 'E':
        result.error = ServerError(body);
        return result;
      case 'Z':
        if (sent_query) {
          c.Send(pg::EncodeTerminate());
          result.ok = true;
          return result;
        }
        if (!c.Send(pg::EncodeExtendedQuery(q.sql, q.params))) {
          result.error = c.error();
          return result;
        }
        sent_query = true;
        break;
      case 'D': {
        std::vector<std::optional<std::string>> row;
        if (!pg::ParseDataRow(body, &row)) {
          result.error = "malformed DataRow";
          return result;
        }
        result.rows.push_back(std::move(row));
        break;
      }
      default:
        break;  // ParameterStatus, BackendKeyData, ParseComplete, BindComplete, CommandComplete, NoticeResponse
    }
  }
  result.error = "the conversation did not end";
  return result;
}

}  // namespace dbward::proxy::backend
