// SCRAM mediation through the PostgreSQL engine, byte by byte: a scripted
// SCRAM client with the password on one side, a scripted SCRAM server with
// the same password's keys on the other, dbward holding only the verifier in
// between. Each side checks the other's proof and channel binding the way
// libpq and PostgreSQL do, so a test passes only when both legs are bound
// to their own certificate and every signature is right.
#include <gtest/gtest.h>

#include "protocol/postgres.h"
#include "protocol/scram.h"
#include "tests/proxy/engine_test_util.h"
#include "tls/scram_keys.h"

namespace dbward::proxy::engine::testing {
namespace {

namespace pg = protocol::pg;
namespace scram = protocol::scram;
namespace keys = tls::scram;
using protocol::testutil::Concat;
using protocol::testutil::StrBytes;

const Bytes kSalt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr uint32_t kIterations = 4096;
const Bytes kClientEndPoint(32, 0xaa);   // dbward's certificate, as the client sees it
const Bytes kBackendEndPoint(32, 0xbb);  // the backend's

std::string VerifierText(const std::string& password, const Bytes& salt = kSalt) {
  keys::DerivedKeys k = keys::DeriveKeys(password, salt, kIterations);
  return "SCRAM-SHA-256$" + std::to_string(kIterations) + ":" + scram::Base64Encode(salt) + "$" +
         scram::Base64Encode(k.stored_key) + ":" + scram::Base64Encode(k.server_key);
}

Bytes Startup(const std::string& user) {
  return pg::EncodeStartup({{"user", user}, {"database", "app"}});
}

// Splits a byte stream into messages.
std::vector<pg::Message> Messages(const Bytes& stream, std::vector<Bytes>* storage) {
  storage->push_back(stream);
  const Bytes& s = storage->back();
  std::vector<pg::Message> out;
  size_t off = 0;
  while (off < s.size()) {
    pg::Message m;
    if (!pg::DecodeMessage(std::span<const uint8_t>(s).subspan(off), 1 << 20, &m).ok()) {
      ADD_FAILURE() << "not a message at offset " << off;
      break;
    }
    out.push_back(m);
    off += m.wire_length;
  }
  return out;
}

std::string Text(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// libpq's side, with the password.
struct ScramClient {
  std::string password;
  scram::Binding binding;
  Bytes end_point;  // of the certificate it saw
  std::string nonce = keys::RandomNonce();
  std::string bare{}, server_first{}, auth{};
  keys::DerivedKeys k{};

  std::string First() {
    std::string first = scram::EncodeClientFirst(binding, nonce);
    bare = first.substr(scram::GsHeader(binding).size());
    return first;
  }
  std::string Final(const std::string& sf) {
    server_first = sf;
    scram::ServerFirst parsed;
    std::string why;
    EXPECT_TRUE(scram::ParseServerFirst(sf, nonce, &parsed, &why)) << why;
    k = keys::DeriveKeys(password, parsed.salt, parsed.iterations);
    std::string without = scram::EncodeClientFinalWithoutProof(binding, end_point, parsed.nonce);
    auth = scram::AuthMessage(bare, sf, without);
    return scram::WithProof(without, keys::ClientProof(k.client_key, auth));
  }
  bool Verify(const std::string& server_final) {
    std::vector<uint8_t> v;
    std::string error;
    return scram::ParseServerFinal(server_final, &v, &error) &&
           keys::ConstantTimeEqual(v, keys::ServerSignature(k.server_key, auth));
  }
};

// PostgreSQL's side, with the password's keys.
struct ScramServer {
  std::string password;
  Bytes salt = kSalt;
  Bytes end_point = kBackendEndPoint;  // its own certificate
  bool fake_signature = false;         // an impostor that does not know ServerKey
  std::string mechanism{};
  scram::ClientFirst first{};
  std::string server_first{}, auth{};

  std::string OnFirst(const pg::Message& m) {
    pg::SaslInitialResponse r;
    EXPECT_TRUE(pg::ParseSaslInitialResponse(m.body, &r));
    mechanism = r.mechanism;
    EXPECT_FALSE(scram::ParseClientFirst(r.data, &first));
    server_first = scram::EncodeServerFirst(first.nonce + keys::RandomNonce(), salt, kIterations);
    return server_first;
  }
  // The server-final, or "" when the proof or the binding is wrong.
  std::string OnFinal(const pg::Message& m) {
    scram::ClientFinal cf;
    EXPECT_FALSE(scram::ParseClientFinal(Text(m.body), &cf));
    if (cf.channel_binding != scram::ExpectedChannelBinding(first, end_point)) return "";
    auth = scram::AuthMessage(first.bare, server_first, cf.without_proof);
    keys::DerivedKeys k = keys::DeriveKeys(password, salt, kIterations);
    keys::Key client_key;
    if (!keys::VerifyClientProof(k.stored_key, auth, cf.proof, &client_key)) return "";
    keys::Key sig = keys::ServerSignature(fake_signature ? k.stored_key : k.server_key, auth);
    return scram::EncodeServerFinal(sig);
  }
};

Bytes SaslOffer(bool plus) {
  std::vector<std::string> m;
  if (plus) m.emplace_back("SCRAM-SHA-256-PLUS");
  m.emplace_back("SCRAM-SHA-256");
  return pg::EncodeAuthenticationSasl(m);
}

class PgScramTest : public ::testing::Test {
 protected:
  PgScramTest() : h_(Protocol::kPostgres), limiter_(5, 10'000) {
    h_.scram_mediation = true;
    h_.auth_failures = &limiter_;
  }

  // A TLS client through to the backend's AuthenticationSASL, the verifier
  // lookup answered with `verifier`.
  void ToSasl(const std::string& verifier, bool backend_plus = true) {
    h_.Start();
    d().FromClient(pg::EncodeSslRequest());
    h_.ClientTlsReady(Facts("", kClientEndPoint));
    h_.Take();
    d().FromClient(Startup("alice"));
    auto actions = h_.Take();
    ASSERT_EQ(Describe(actions), "lookup-verifier connect");
    EXPECT_EQ(actions[0].user, "alice");
    h_.BackendConnected();
    d().FromBackend(StrBytes("S"));
    h_.BackendTlsReady(Facts("", kBackendEndPoint));
    // The backend asks for SASL before the lookup is back: the message waits.
    d().FromBackend(SaslOffer(backend_plus));
    h_.Take();
    client_seen_ = d().to_client.size();
    VerifierAnswer a;
    a.kind = VerifierAnswer::Kind::kScram;
    a.verifier = verifier;
    h_.engine->OnVerifier(a);
    d().Settle();
  }

  Bytes NewToClient() {
    Bytes b(d().to_client.begin() + static_cast<ptrdiff_t>(client_seen_), d().to_client.end());
    client_seen_ = d().to_client.size();
    return b;
  }
  Bytes NewToBackend() {
    Bytes b(d().to_backend.begin() + static_cast<ptrdiff_t>(backend_seen_), d().to_backend.end());
    backend_seen_ = d().to_backend.size();
    return b;
  }

  // Runs the whole exchange; returns what the client received last.
  void Exchange(ScramClient& client, ScramServer& server, const std::string& mechanism) {
    std::vector<Bytes> keep;
    backend_seen_ = d().to_backend.size();
    // dbward's offer to the client.
    auto offer = Messages(NewToClient(), &keep);
    ASSERT_EQ(offer.size(), 1u);
    std::vector<std::string> mechs;
    ASSERT_TRUE(pg::ParseSaslMechanisms(offer[0].body, &mechs));
    offer_ = mechs;
    d().FromClient(pg::EncodeSaslInitialResponse(mechanism, client.First()));
    if (d().failure) return;
    // dbward's client-first to the backend.
    auto b1 = Messages(NewToBackend(), &keep);
    ASSERT_EQ(b1.size(), 1u);
    d().FromBackend(pg::EncodeAuthenticationSaslContinue(server.OnFirst(b1[0])));
    if (d().failure || refresh_expected_) return;
    auto c1 = Messages(NewToClient(), &keep);
    ASSERT_EQ(c1.size(), 1u);
    std::string sf;
    ASSERT_TRUE(pg::ParseSaslData(c1[0].body, pg::kAuthSaslContinue, &sf));
    d().FromClient(pg::EncodeSaslResponse(client.Final(sf)));
    if (d().failure) return;
    auto b2 = Messages(NewToBackend(), &keep);
    ASSERT_EQ(b2.size(), 1u);
    std::string server_final = server.OnFinal(b2[0]);
    if (server_final.empty()) {
      pg::ErrorFields e;
      e.sqlstate = "28P01";
      e.message = "password authentication failed for user \"alice\"";
      d().FromBackend(pg::EncodeErrorResponse(e));
      return;
    }
    d().FromBackend(Concat(pg::EncodeAuthenticationSaslFinal(server_final), pg::EncodeAuthenticationOk()));
    if (d().failure) return;
    auto c2 = Messages(NewToClient(), &keep);
    ASSERT_EQ(c2.size(), 2u);
    std::string cfinal;
    ASSERT_TRUE(pg::ParseSaslData(c2[0].body, pg::kAuthSaslFinal, &cfinal));
    client_verified_ = client.Verify(cfinal);
    uint32_t code = 99;
    ASSERT_TRUE(pg::ParseAuthCode(c2[1].body, &code));
    EXPECT_EQ(code, pg::kAuthOk);
  }

  pg::ErrorFields ClientError() {
    pg::ErrorFields f;
    pg::Message m;
    EXPECT_TRUE(pg::DecodeMessage(d().failure_message, 1 << 20, &m).ok());
    EXPECT_EQ(m.type, 'E');
    EXPECT_TRUE(pg::ParseErrorResponse(m.body, &f));
    return f;
  }

  FakeDriver& d() { return h_.driver; }
  Harness h_;
  FailureLimiter limiter_;
  size_t client_seen_ = 0, backend_seen_ = 0;
  std::vector<std::string> offer_;
  bool client_verified_ = false;
  bool refresh_expected_ = false;
};

TEST_F(PgScramTest, ChannelBindingHoldsOnBothLegs) {
  ToSasl(VerifierText("pencil"));
  ScramClient client{"pencil", scram::Binding::kBound, kClientEndPoint};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_FALSE(d().failure) << d().failure->error;
  // The client saw -PLUS offered, bound to dbward's certificate, and dbward
  // proved it knows ServerKey on that leg.
  EXPECT_EQ(offer_, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
  EXPECT_TRUE(client_verified_);
  // The backend saw -PLUS, bound to its own certificate (its OnFinal checks it).
  EXPECT_EQ(server.mechanism, "SCRAM-SHA-256-PLUS");
  EXPECT_EQ(server.first.binding, scram::Binding::kBound);
  EXPECT_TRUE(h_.engine->facts().logged_in);
  EXPECT_EQ(h_.engine->facts().note,
            "SCRAM mediated: SCRAM-SHA-256-PLUS to the client, SCRAM-SHA-256-PLUS to the backend");
  // The nonces differ per leg.
  EXPECT_NE(server.first.nonce, client.nonce);
}

TEST_F(PgScramTest, LibpqDefaultsAndPlainScramClients) {
  // channel_binding=disable (or a client without TLS support): plain SCRAM,
  // still -PLUS to the backend.
  ToSasl(VerifierText("pencil"));
  ScramClient client{"pencil", scram::Binding::kNone, {}};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256");
  ASSERT_FALSE(d().failure) << d().failure->error;
  EXPECT_TRUE(client_verified_);
  EXPECT_EQ(server.mechanism, "SCRAM-SHA-256-PLUS");
}

TEST_F(PgScramTest, BackendWithoutPlusGetsPlainScramAndNoY) {
  ToSasl(VerifierText("pencil"), /*backend_plus=*/false);
  ScramClient client{"pencil", scram::Binding::kBound, kClientEndPoint};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_FALSE(d().failure) << d().failure->error;
  EXPECT_EQ(server.mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(server.first.binding, scram::Binding::kNone) << "never 'y' over TLS: PostgreSQL rejects it";
}

TEST_F(PgScramTest, WrongPasswordIs28P01WithoutAskingTheBackend) {
  ToSasl(VerifierText("pencil"));
  ScramClient client{"crayon", scram::Binding::kBound, kClientEndPoint};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kAuthFailed);
  pg::ErrorFields e = ClientError();
  EXPECT_EQ(e.severity, "FATAL");
  EXPECT_EQ(e.sqlstate, "28P01");
  EXPECT_EQ(e.message, "password authentication failed for user \"alice\"");
  // The backend got the client-first only, never a proof.
  EXPECT_EQ(backend_seen_, d().to_backend.size());
  // The failure counted: four more and the address must wait.
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
  for (int i = 0; i < 3; i++) limiter_.Failed("10.0.0.7", now);
  EXPECT_TRUE(limiter_.Allowed("10.0.0.7", now));
  limiter_.Failed("10.0.0.7", now);
  EXPECT_FALSE(limiter_.Allowed("10.0.0.7", now));
}

TEST_F(PgScramTest, RepeatedFailuresFromOneAddressAreRateLimited) {
  uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
  for (int i = 0; i < 5; i++) limiter_.Failed("10.0.0.7", now);
  h_.Start();
  d().FromClient(pg::EncodeSslRequest());
  h_.ClientTlsReady(Facts("", kClientEndPoint));
  d().FromClient(Startup("alice"));
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kRefused);
  EXPECT_EQ(d().failure->cause, Cause::kRateLimited);
  EXPECT_EQ(d().failure->error.rfind("too many failed logins from 10.0.0.7; try again in ", 0), 0u);
  EXPECT_EQ(ClientError().sqlstate, "28000");
  for (const Action& a : h_.Take()) EXPECT_NE(a.kind, Action::kConnect);
}

TEST_F(PgScramTest, AnImpostorBackendIsCaughtByItsSignature) {
  ToSasl(VerifierText("pencil"));
  ScramClient client{"pencil", scram::Binding::kBound, kClientEndPoint};
  ScramServer server{"pencil"};
  server.fake_signature = true;
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_TRUE(d().failure);
  EXPECT_EQ(d().failure->outcome, Outcome::kBackendError);
  EXPECT_EQ(d().failure->cause, Cause::kScramServerSignature);
  EXPECT_FALSE(h_.engine->facts().logged_in);
  // The client never got AuthenticationOk.
  for (size_t off = 0; off + 9 <= d().to_client.size(); off++) {
    EXPECT_FALSE(Bytes(d().to_client.begin() + off, d().to_client.begin() + off + 9) == pg::EncodeAuthenticationOk());
  }
}

TEST_F(PgScramTest, ClientBoundToAnotherCertificateFailsTheCheck) {
  ToSasl(VerifierText("pencil"));
  ScramClient client{"pencil", scram::Binding::kBound, Bytes(32, 0xcc)};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_TRUE(d().failure);
  pg::ErrorFields e = ClientError();
  EXPECT_EQ(e.sqlstate, "28000");
  EXPECT_EQ(e.message, "SCRAM channel binding check failed");
}

TEST_F(PgScramTest, DowngradeAttemptIsRefusedAsPostgresRefusesIt) {
  ToSasl(VerifierText("pencil"));
  ScramClient client{"pencil", scram::Binding::kClientOnly, {}};
  ScramServer server{"pencil"};
  Exchange(client, server, "SCRAM-SHA-256");
  ASSERT_TRUE(d().failure);
  pg::ErrorFields e = ClientError();
  EXPECT_EQ(e.sqlstate, "28000");
  EXPECT_EQ(e.message, "SCRAM channel binding negotiation error");
}

TEST_F(PgScramTest, AChangedPasswordIsLookedUpAgainBeforeTheClientHearsASalt) {
  const Bytes new_salt(16, 0x77);
  ToSasl(VerifierText("old-pw"));
  ScramClient client{"new-pw", scram::Binding::kBound, kClientEndPoint};
  ScramServer server{"new-pw", new_salt};
  refresh_expected_ = true;
  Exchange(client, server, "SCRAM-SHA-256-PLUS");
  ASSERT_FALSE(d().failure);
  auto actions = h_.Take();
  ASSERT_FALSE(actions.empty());
  EXPECT_EQ(actions.back().kind, Action::kLookupVerifier);
  EXPECT_TRUE(actions.back().refresh);
  EXPECT_EQ(NewToClient().size(), 0u) << "nothing went to the client yet";
  VerifierAnswer fresh;
  fresh.kind = VerifierAnswer::Kind::kScram;
  fresh.verifier = VerifierText("new-pw", new_salt);
  h_.engine->OnVerifier(fresh);
  d().Settle();
  std::vector<Bytes> keep;
  auto c1 = Messages(NewToClient(), &keep);
  ASSERT_EQ(c1.size(), 1u);
  std::string sf;
  ASSERT_TRUE(pg::ParseSaslData(c1[0].body, pg::kAuthSaslContinue, &sf));
  d().FromClient(pg::EncodeSaslResponse(client.Final(sf)));
  auto b2 = Messages(NewToBackend(), &keep);
  ASSERT_EQ(b2.size(), 1u);
  d().FromBackend(Concat(pg::EncodeAuthenticationSaslFinal(server.OnFinal(b2[0])), pg::EncodeAuthenticationOk()));
  ASSERT_FALSE(d().failure) << d().failure->error;
  EXPECT_TRUE(h_.engine->facts().logged_in);
}

TEST_F(PgScramTest, UsersWithoutAVerifierPassThrough) {
  h_.Start();
  d().FromClient(pg::EncodeSslRequest());
  h_.ClientTlsReady(Facts("", kClientEndPoint));
  d().FromClient(Startup("bob"));
  h_.BackendConnected();
  d().FromBackend(StrBytes("S"));
  h_.BackendTlsReady(Facts("", kBackendEndPoint));
  VerifierAnswer none;
  none.kind = VerifierAnswer::Kind::kNone;
  none.detail = "user bob's password is an md5 hash";
  h_.engine->OnVerifier(none);
  d().Settle();
  client_seen_ = d().to_client.size();
  d().FromBackend(SaslOffer(true));
  // As without scram: -PLUS withdrawn for a client on dbward's own certificate.
  std::vector<Bytes> keep;
  auto offer = Messages(NewToClient(), &keep);
  ASSERT_EQ(offer.size(), 1u);
  std::vector<std::string> mechs;
  ASSERT_TRUE(pg::ParseSaslMechanisms(offer[0].body, &mechs));
  EXPECT_EQ(mechs, std::vector<std::string>{"SCRAM-SHA-256"});
  EXPECT_EQ(h_.engine->facts().note, "SCRAM not mediated: user bob's password is an md5 hash");
  // And the client's bytes go to the backend untouched.
  const Bytes first = pg::EncodeSaslInitialResponse("SCRAM-SHA-256", "n,,n=,r=abc");
  size_t before = d().to_backend.size();
  d().FromClient(first);
  EXPECT_EQ(Bytes(d().to_backend.begin() + static_cast<ptrdiff_t>(before), d().to_backend.end()), first);
}

}  // namespace
}  // namespace dbward::proxy::engine::testing
