// SCRAM-SHA-256 messages and key arithmetic, on the RFC 7677 example
// exchange (user "user", password "pencil") and on PostgreSQL's and libpq's
// own message shapes and error wording.
#include <gtest/gtest.h>

#include "bytes_util.h"
#include "protocol/scram.h"
#include "tls/scram_keys.h"

namespace dbward::protocol::scram {
namespace {

using protocol::testutil::Bytes;
namespace keys = tls::scram;

// RFC 7677 section 3.
constexpr std::string_view kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

Bytes B64(std::string_view s) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(Base64Decode(s, &out)) << s;
  return out;
}

TEST(ScramTest, Rfc7677ExchangeFromBothSides) {
  ClientFirst first;
  ASSERT_FALSE(ParseClientFirst(kClientFirst, &first));
  EXPECT_EQ(first.binding, Binding::kNone);
  EXPECT_EQ(first.gs2_header, "n,,");
  EXPECT_EQ(first.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(first.nonce, "rOprNGfwEbeRWgbNEkqO");

  ServerFirst sf;
  std::string why;
  ASSERT_TRUE(ParseServerFirst(kServerFirst, first.nonce, &sf, &why)) << why;
  EXPECT_EQ(sf.iterations, 4096u);
  EXPECT_EQ(EncodeServerFirst(sf.nonce, sf.salt, sf.iterations), kServerFirst);

  ClientFinal cf;
  ASSERT_FALSE(ParseClientFinal(kClientFinal, &cf));
  EXPECT_EQ(cf.channel_binding, "biws");
  EXPECT_EQ(cf.channel_binding, ExpectedChannelBinding(first, {}));
  EXPECT_EQ(cf.nonce, sf.nonce);
  EXPECT_EQ(cf.without_proof, "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");

  const std::string auth = AuthMessage(first.bare, kServerFirst, cf.without_proof);
  keys::DerivedKeys k = keys::DeriveKeys("pencil", sf.salt, sf.iterations);
  // As the client: the proof on the wire.
  keys::Key proof = keys::ClientProof(k.client_key, auth);
  EXPECT_EQ(Bytes(proof.span().begin(), proof.span().end()), cf.proof);
  EXPECT_EQ(WithProof(cf.without_proof, proof), kClientFinal);
  // As a server that has only the verifier: the proof checks out, the
  // ClientKey comes back, and the signature matches the RFC's.
  keys::Key recovered;
  ASSERT_TRUE(keys::VerifyClientProof(k.stored_key, auth, cf.proof, &recovered));
  EXPECT_TRUE(keys::ConstantTimeEqual(recovered, k.client_key));
  keys::Key signature = keys::ServerSignature(k.server_key, auth);
  EXPECT_EQ(EncodeServerFinal(signature), kServerFinal);
  std::vector<uint8_t> v;
  std::string error;
  ASSERT_TRUE(ParseServerFinal(kServerFinal, &v, &error)) << error;
  EXPECT_TRUE(keys::ConstantTimeEqual(v, signature));
  // A proof off by one bit is refused and recovers nothing.
  Bytes bad = cf.proof;
  bad[5] ^= 1;
  keys::Key none;
  EXPECT_FALSE(keys::VerifyClientProof(k.stored_key, auth, bad, &none));
  EXPECT_TRUE(keys::ConstantTimeEqual(none, keys::Key()));
}

TEST(ScramTest, VerifierFormat) {
  Bytes salt = B64("W22ZaJ0SNY7soEsUEjb6gQ==");
  keys::DerivedKeys k = keys::DeriveKeys("pencil", salt, 4096);
  const std::string text = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" + Base64Encode(k.stored_key) + ":" +
                           Base64Encode(k.server_key);
  Verifier v;
  std::string why;
  ASSERT_TRUE(ParseVerifier(text, &v, &why)) << why;
  EXPECT_EQ(v.iterations, 4096u);
  EXPECT_EQ(v.salt, salt);
  EXPECT_TRUE(keys::ConstantTimeEqual(v.stored_key, k.stored_key));
  EXPECT_TRUE(keys::ConstantTimeEqual(v.server_key, k.server_key));
  v.Wipe();
  EXPECT_TRUE(v.stored_key.empty() && v.server_key.empty() && v.iterations == 0);

  for (const auto& [bad, reason] : std::vector<std::pair<std::string, std::string>>{
           {"md5a3556571e93b0d20722ba62be61e8c2d", "an md5 hash, not a SCRAM verifier"},
           {"", "not a SCRAM-SHA-256 verifier"},
           {"SCRAM-SHA-256$4096$x:y", "a SCRAM verifier without iterations:salt$StoredKey:ServerKey"},
           {"SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$a:b", "a SCRAM verifier with an invalid iteration count"},
           {"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AAAA:AAAA",
            "a SCRAM verifier whose salt or keys are not valid base64 of the right size"},
       }) {
    Verifier out;
    std::string w;
    EXPECT_FALSE(ParseVerifier(bad, &out, &w)) << bad;
    EXPECT_EQ(w, reason);
    EXPECT_EQ(w.find(bad.empty() ? "\x01" : bad.substr(14)), std::string::npos) << "never repeats the secret";
  }
}

TEST(ScramTest, Base64IsCanonical) {
  for (std::string_view s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    Bytes in(s.begin(), s.end());
    std::vector<uint8_t> back;
    ASSERT_TRUE(Base64Decode(Base64Encode(in), &back));
    EXPECT_EQ(back, in);
  }
  EXPECT_EQ(Base64Encode(Bytes{'n', ',', ','}), "biws");
  EXPECT_EQ(Base64Encode(Bytes{'y', ',', ','}), "eSws");
  std::vector<uint8_t> out;
  for (std::string_view bad : {"Zg", "Zg=", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "====", "Zg==Zg=="}) {
    EXPECT_FALSE(Base64Decode(bad, &out)) << bad;
  }
}

TEST(ScramTest, ClientFirstShapesLibpqSends) {
  ClientFirst f;
  ASSERT_FALSE(ParseClientFirst("y,,n=,r=abc", &f));
  EXPECT_EQ(f.binding, Binding::kClientOnly);
  EXPECT_EQ(ExpectedChannelBinding(f, {}), "eSws");
  ASSERT_FALSE(ParseClientFirst("p=tls-server-end-point,,n=,r=abc", &f));
  EXPECT_EQ(f.binding, Binding::kBound);
  EXPECT_EQ(f.gs2_header, "p=tls-server-end-point,,");
  const Bytes hash(32, 0xab);
  std::vector<uint8_t> cb;
  ASSERT_TRUE(Base64Decode(ExpectedChannelBinding(f, hash), &cb));
  EXPECT_EQ(std::string(cb.begin(), cb.begin() + 24), "p=tls-server-end-point,,");
  EXPECT_EQ(Bytes(cb.begin() + 24, cb.end()), hash);
  // dbward as the client writes the same shapes.
  EXPECT_EQ(EncodeClientFirst(Binding::kBound, "xyz"), "p=tls-server-end-point,,n=,r=xyz");
  EXPECT_EQ(EncodeClientFinalWithoutProof(Binding::kBound, hash, "xyzSRV"),
            "c=" + ExpectedChannelBinding(f, hash) + ",r=xyzSRV");
  EXPECT_EQ(EncodeClientFinalWithoutProof(Binding::kNone, {}, "n1"), "c=biws,r=n1");
}

TEST(ScramTest, ClientFirstErrorsInPostgresWords) {
  auto err = [](std::string_view m) {
    ClientFirst f;
    std::optional<Error> e = ParseClientFirst(m, &f);
    EXPECT_TRUE(e) << m;
    return e ? e->sqlstate + " " + e->message + (e->detail.empty() ? "" : " / " + e->detail) : std::string();
  };
  EXPECT_EQ(err("p=tls-unique,,n=,r=a"), "08P01 unsupported SCRAM channel-binding type \"tls-unique\"");
  EXPECT_EQ(err("n,a=admin,n=,r=a"), "0A000 client uses authorization identity, but it is not supported");
  EXPECT_EQ(err("n,,m=ext,n=,r=a"), "0A000 client requires an unsupported SCRAM extension");
  EXPECT_EQ(err("x,,n=,r=a"), "08P01 malformed SCRAM message / Unexpected channel-binding flag \"x\".");
  EXPECT_EQ(err("n,,n=,r=a b"), "08P01 malformed SCRAM message / Non-printable characters in SCRAM nonce.");
  EXPECT_EQ(err("n,,r=abc"), "08P01 malformed SCRAM message / Expected attribute \"n\" in client-first-message.");
  EXPECT_EQ(err(std::string_view("n,,n=,r=a\0b", 11)),
            "08P01 malformed SCRAM message / The message is empty, too long or contains a NUL byte.");
  EXPECT_EQ(err(std::string(1100, 'n')),
            "08P01 malformed SCRAM message / The message is empty, too long or contains a NUL byte.");
}

TEST(ScramTest, BindingChoiceAsPostgresChecksIt) {
  ClientFirst n, y, p;
  ASSERT_FALSE(ParseClientFirst("n,,n=,r=a", &n));
  ASSERT_FALSE(ParseClientFirst("y,,n=,r=a", &y));
  ASSERT_FALSE(ParseClientFirst("p=tls-server-end-point,,n=,r=a", &p));
  EXPECT_FALSE(CheckBindingChoice(p, true, true));
  EXPECT_FALSE(CheckBindingChoice(n, false, true)) << "n over TLS with plain SCRAM is accepted";
  EXPECT_FALSE(CheckBindingChoice(y, false, false)) << "y when PLUS was not offered";
  std::optional<Error> e = CheckBindingChoice(y, false, true);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->sqlstate, "28000");
  EXPECT_EQ(e->message, "SCRAM channel binding negotiation error");
  EXPECT_EQ(CheckBindingChoice(n, true, true)->sqlstate, "08P01");
  EXPECT_EQ(CheckBindingChoice(p, false, true)->sqlstate, "08P01");
}

TEST(ScramTest, ServerFirstAndFinalAsLibpqChecksThem) {
  ServerFirst sf;
  std::string why;
  EXPECT_FALSE(ParseServerFirst("r=OTHERnonce,s=QUJD,i=4096", "abc", &sf, &why));
  EXPECT_EQ(why, "invalid SCRAM response (nonce mismatch)");
  EXPECT_FALSE(ParseServerFirst("r=abc,s=QUJD,i=4096", "abc", &sf, &why)) << "no server part";
  EXPECT_FALSE(ParseServerFirst("r=abcX,s=QUJ,i=4096", "abc", &sf, &why));
  EXPECT_FALSE(ParseServerFirst("r=abcX,s=QUJD,i=0", "abc", &sf, &why));
  EXPECT_FALSE(ParseServerFirst("m=x,r=abcX,s=QUJD,i=1", "abc", &sf, &why));
  EXPECT_EQ(why, "the server requires an unsupported SCRAM extension");
  std::vector<uint8_t> sig;
  std::string error;
  EXPECT_FALSE(ParseServerFinal("e=invalid-proof", &sig, &error));
  EXPECT_EQ(error, "error received from server in SCRAM exchange: invalid-proof");
  EXPECT_FALSE(ParseServerFinal("v=AAAA", &sig, &error));
  EXPECT_EQ(error, "malformed SCRAM server-final-message");
}

TEST(ScramTest, ClientFinalErrors) {
  ClientFinal f;
  EXPECT_EQ(ParseClientFinal("r=a,p=" + Base64Encode(Bytes(32, 1)), &f)->detail,
            "Expected attribute \"c\" in client-final-message.");
  EXPECT_EQ(ParseClientFinal("c=biws,r=a", &f)->detail, "Expected attribute \"p\" in client-final-message.");
  EXPECT_EQ(ParseClientFinal("c=biws,r=a,p=" + Base64Encode(Bytes(31, 1)), &f)->detail,
            "Malformed proof in client-final-message.");
  EXPECT_EQ(ParseClientFinal("c=biws,r=a,p=" + Base64Encode(Bytes(32, 1)) + ",x=1", &f)->detail,
            "Garbage found at the end of client-final-message.");
  // Extensions before the proof are skipped.
  ASSERT_FALSE(ParseClientFinal("c=biws,r=a,x=1,p=" + Base64Encode(Bytes(32, 1)), &f));
  EXPECT_EQ(f.without_proof, "c=biws,r=a,x=1");
}

TEST(ScramTest, NoncesArePrintableAndFresh) {
  std::string a = keys::RandomNonce(), b = keys::RandomNonce();
  EXPECT_EQ(a.size(), 24u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(ValidNonce(a));
  EXPECT_FALSE(ValidNonce("a,b"));
  EXPECT_FALSE(ValidNonce(""));
}

}  // namespace
}  // namespace dbward::protocol::scram
