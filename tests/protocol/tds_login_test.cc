// LOGIN7 details (SSPI, feature extensions, read-only intent, ServerName
// rewriting) and the login response walker, on real captures where they
// exist and on LOGIN7 messages built field by field where none do.
#include <gtest/gtest.h>

#include <initializer_list>

#include "bytes_util.h"
#include "protocol/tds.h"
#include "protocol/ntlm.h"
#include "protocol/tds_tokens.h"

namespace dbward::protocol::tds {
namespace {

using namespace dbward::protocol::testutil;

// .Net SqlClient's LOGIN7 (payload) with Windows authentication: 129 bytes
// of SPNEGO in the SSPI field, a FeatureExt block, ServerName
// "tcp:127.0.0.1,1337". WilliamSmithEdward/pySQLbridge tests/captured.py
// CLIENT_LOGIN7 (captured 2026-09-06; ClientID and workstation name
// anonymised there at identical length).
constexpr std::string_view kSqlClientSspiLogin7Hex =
    "ac01000004000074401f0000000000062445000000000000e083001000000000"
    "000000005e000c00000000000000000076001c00ae001200d2000400d6001c00"
    "0e0100000e0106000000000000001a0181009b0100009b010000000000005700"
    "4f0052004b00530054004100540049004f004e0031002e004e00650074002000"
    "530071006c0043006c00690065006e0074002000440061007400610020005000"
    "72006f00760069006400650072007400630070003a003100320037002e003000"
    "2e0030002e0031002c0031003300330037009b0100002e004e00650074002000"
    "530071006c0043006c00690065006e0074002000440061007400610020005000"
    "72006f00760069006400650072006d0061007300740065007200607f06062b06"
    "01050502a0753073a030302e060a2b06010401823702020a06092a864882f712"
    "01020206092a864886f712010202060a2b06010401823702021ea23f043d4e54"
    "4c4d535350000100000097b208e209000900340000000c000c00280000000a00"
    "f4650000000f574f524b53544154494f4e31574f524b47524f55500100000000"
    "0401000000020500000000ff";

// SQL Server 2025's answer to that login (Windows authentication), token by
// token as the same capture slices it: database and collation and language
// ENVCHANGEs, INFO 5701 and 5703, LOGINACK (TDS 7.4, "Microsoft SQL
// Server" 17.0.1000), packet size ENVCHANGE, FEATUREEXTACK, final DONE.
constexpr std::string_view kSql2025LoginResponseHex =
    "e31b0001066d0061007300740065007200066d0061007300740065007200"
    "ab700045160000020025004300680061006e0067006500640020006400610074"
    "0061006200610073006500200063006f006e007400650078007400200074006f"
    "00200027006d006100730074006500720027002e000c57004f0052004b005300"
    "54004100540049004f004e0031000001000000"
    "e3080007050904d0003400"
    "e31700020a750073005f0065006e0067006c0069007300680000"
    "ab740047160000010027004300680061006e0067006500640020006c0061006e"
    "00670075006100670065002000730065007400740069006e006700200074006f"
    "002000750073005f0065006e0067006c006900730068002e000c57004f005200"
    "4b00530054004100540049004f004e0031000001000000"
    "ad36000174000004164d006900630072006f0073006f00660074002000530051"
    "004c00200053006500720076006500720000000000110003e8"
    "e3130004043400300039003600043400300039003600"
    "ae012e000000000900608114ffe7ffff00020207010401000504ffffffff0601"
    "00070102080800000000000000000904ffffffff090200000002010a01000000"
    "01ff"
    "fd000000000000000000000000";

// The MS-TDS routing example (ENVCHANGE 20: TCP, port 1433, server "db1").
constexpr std::string_view kSpecRoutingHex = "e31000140b0000990503006400620031000000";

Login7 MustParse(const Bytes& payload) {
  Login7 l;
  Result r = ParseLogin7(payload, &l);
  EXPECT_TRUE(r.ok()) << r.error;
  return l;
}

uint16_t U16At(const Bytes& b, size_t at) { return static_cast<uint16_t>(b[at] | (b[at + 1] << 8)); }
uint32_t U32At(const Bytes& b, size_t at) {
  return static_cast<uint32_t>(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) | (static_cast<uint32_t>(b[at + 3]) << 24);
}
// A variable field's bytes, given its table entry and whether it counts bytes.
Bytes FieldBytes(const Bytes& login, size_t entry, bool bytes = false) {
  size_t ib = U16At(login, entry), n = U16At(login, entry + 2) * (bytes ? 1u : 2u);
  return Bytes(login.begin() + static_cast<ptrdiff_t>(ib), login.begin() + static_cast<ptrdiff_t>(ib + n));
}
Bytes SspiBlob(const Bytes& login) { return FieldBytes(login, 78, true); }
Bytes PasswordBytes(const Bytes& login) { return FieldBytes(login, 44); }
Bytes FeatureBlock(const Bytes& login) {
  size_t at = U32At(login, U16At(login, 56));
  return Bytes(login.begin() + static_cast<ptrdiff_t>(at), login.end());
}

// A LOGIN7 built field by field, laid out in an order unlike table order
// (as real clients do), so that rewriting has to follow the offsets.
struct Login7Spec {
  uint32_t version = 0x74000004;
  uint8_t flags2 = 0x03;
  uint8_t type_flags = 0;
  std::string host = "app-host", user = "sa_user", app = "orders", server = "db.internal", library = "Tedious";
  std::string language = "", database = "appdb";
  Bytes password = FromHex("b3a5b3a5");  // obfuscated, position-independent
  Bytes sspi;
  Bytes features;  // FeatureExt block with its terminator; empty: no fExtension
};

Bytes Build(const Login7Spec& s) {
  const bool wide = HasWideTokens(s.version);
  const size_t fixed = wide ? 94 : 86;
  Bytes b(fixed, 0);
  auto put16 = [&](size_t at, size_t v) {
    b[at] = static_cast<uint8_t>(v);
    b[at + 1] = static_cast<uint8_t>(v >> 8);
  };
  auto put32 = [&](size_t at, size_t v) {
    for (size_t i = 0; i < 4; i++) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put32(4, s.version);
  put32(8, 4096);
  b[24] = 0xE0;
  b[25] = s.flags2;
  b[26] = s.type_flags;
  b[27] = s.features.empty() ? 0 : 0x10;
  auto text = [&](size_t entry, const std::string& v) {
    Bytes u = Utf8ToUtf16Le(v);
    put16(entry, b.size());
    put16(entry + 2, u.size() / 2);
    b.insert(b.end(), u.begin(), u.end());
  };
  // Database and library first, the rest behind them.
  text(68, s.database);
  text(60, s.library);
  text(36, s.host);
  text(40, s.user);
  put16(44, b.size());
  put16(46, s.password.size() / 2);
  b.insert(b.end(), s.password.begin(), s.password.end());
  text(48, s.app);
  text(52, s.server);
  text(64, s.language);
  put16(78, b.size());
  put16(80, s.sspi.size() >= 0xFFFF ? 0xFFFF : s.sspi.size());
  if (wide) put32(90, s.sspi.size() >= 0xFFFF ? s.sspi.size() : 0);
  b.insert(b.end(), s.sspi.begin(), s.sspi.end());
  put16(82, b.size());
  if (wide) put16(86, b.size());
  if (!s.features.empty()) {
    put16(56, b.size());
    put16(58, 4);
    size_t at = b.size();
    b.resize(b.size() + 4);
    put32(at, b.size());
    b.insert(b.end(), s.features.begin(), s.features.end());
  }
  put32(0, b.size());
  return b;
}

Bytes FedAuthFeature(uint8_t library, bool echo, const Bytes& data) {
  Bytes f = {kFeatureFedAuth};
  uint32_t len = static_cast<uint32_t>(data.size() + 1);
  for (int i = 0; i < 4; i++) f.push_back(static_cast<uint8_t>(len >> (8 * i)));
  f.push_back(static_cast<uint8_t>((library << 1) | (echo ? 1 : 0)));
  f.insert(f.end(), data.begin(), data.end());
  return f;
}

const Bytes kUtf8Feature = {kFeatureUtf8Support, 1, 0, 0, 0, 1};

// ---------------------------------------------------------------------------
// ParseLogin7: SSPI, features, intent.

TEST(TdsLogin7DetailsTest, SqlClientWindowsLogin) {
  const Bytes login = FromHex(kSqlClientSspiLogin7Hex);
  ASSERT_EQ(login.size(), 428u);
  Login7 l = MustParse(login);
  EXPECT_EQ(l.tds_version, 0x74000004u);
  EXPECT_TRUE(l.integrated_security);
  EXPECT_EQ(l.user_name, "");
  EXPECT_EQ(l.host_name, "WORKSTATION1");
  EXPECT_EQ(l.app_name, ".Net SqlClient Data Provider");
  EXPECT_EQ(l.library, ".Net SqlClient Data Provider");
  EXPECT_EQ(l.server_name, "tcp:127.0.0.1,1337");
  EXPECT_EQ(l.database, "master");
  EXPECT_EQ(l.sspi_bytes, 129u);
  // SPNEGO (0x60 ...) wrapping an NTLM NEGOTIATE.
  const Bytes sspi = SspiBlob(login);
  EXPECT_EQ(sspi[0], 0x60);
  EXPECT_NE(std::search(sspi.begin(), sspi.end(), std::begin("NTLMSSP"), std::end("NTLMSSP")), sspi.end());
  // SESSIONRECOVERY, COLUMNENCRYPTION, GLOBALTRANSACTIONS.
  EXPECT_EQ(l.features, (std::vector<uint8_t>{0x01, 0x04, 0x05}));
  EXPECT_EQ(l.fedauth_library, -1);
  EXPECT_FALSE(l.read_only_intent);
}

TEST(TdsLogin7DetailsTest, ReadOnlyIntentAndFedAuth) {
  Login7Spec s;
  s.type_flags = 0x20;
  s.user.clear();
  s.password.clear();
  s.features = Concat(Concat(FedAuthFeature(kFedAuthSecurityToken, true, Bytes(40, 0x41)), kUtf8Feature), {0xFF});
  Login7 l = MustParse(Build(s));
  EXPECT_TRUE(l.read_only_intent);
  EXPECT_EQ(l.fedauth_library, kFedAuthSecurityToken);
  EXPECT_TRUE(l.fedauth_echo);
  EXPECT_TRUE(l.HasFeature(kFeatureUtf8Support));
  EXPECT_FALSE(l.HasFeature(kFeatureEnhancedRouting));

  s.features = Concat(FedAuthFeature(kFedAuthMsal, false, {0x01}), {0xFF});
  l = MustParse(Build(s));
  EXPECT_EQ(l.fedauth_library, kFedAuthMsal);
  EXPECT_FALSE(l.fedauth_echo);
}

TEST(TdsLogin7DetailsTest, BrokenFeatureBlocksAreMalformed) {
  Login7Spec s;
  s.features = {kFeatureUtf8Support, 1, 0, 0, 0, 1};  // no terminator
  Login7 l;
  EXPECT_EQ(ParseLogin7(Build(s), &l).error, "LOGIN7 FeatureExt has no terminator");
  s.features = {kFeatureUtf8Support, 9, 0, 0, 0, 1, 0xFF};  // longer than the message
  EXPECT_EQ(ParseLogin7(Build(s), &l).error, "LOGIN7 feature 10 runs past the message");
  Bytes b = Build(Login7Spec{});
  b[27] = 0x10;  // fExtension without an extension block
  EXPECT_EQ(ParseLogin7(b, &l).error, "LOGIN7 extension block points outside the message");
  Login7Spec sspi;
  sspi.sspi = Bytes(10, 1);
  b = Build(sspi);
  b[80] = 200;  // SSPI longer than the message
  EXPECT_EQ(ParseLogin7(b, &l).error, "LOGIN7 SSPI data points outside the message");
}

TEST(TdsLogin7DetailsTest, NarrowTds71Layout) {
  // jTDS: TDS 7.1, an 86-byte fixed part, no ChangePassword, no cbSSPILong.
  Login7Spec s;
  s.version = 0x71000001;
  s.library = "jTDS";
  Bytes b = Build(s);
  Login7 l = MustParse(b);
  EXPECT_EQ(l.library, "jTDS");
  EXPECT_EQ(U16At(b, 68), 86u);  // data right behind the narrow fixed part
  EXPECT_EQ(l.server_name, "db.internal");
}

// ---------------------------------------------------------------------------
// RewriteLogin7ServerName.

void ExpectSameExceptServer(const Bytes& a, const Bytes& b) {
  Login7 x = MustParse(a), y = MustParse(b);
  EXPECT_EQ(x.tds_version, y.tds_version);
  EXPECT_EQ(x.host_name, y.host_name);
  EXPECT_EQ(x.user_name, y.user_name);
  EXPECT_EQ(x.app_name, y.app_name);
  EXPECT_EQ(x.library, y.library);
  EXPECT_EQ(x.language, y.language);
  EXPECT_EQ(x.database, y.database);
  EXPECT_EQ(x.integrated_security, y.integrated_security);
  EXPECT_EQ(x.read_only_intent, y.read_only_intent);
  EXPECT_EQ(x.features, y.features);
  EXPECT_EQ(x.fedauth_library, y.fedauth_library);
  EXPECT_EQ(PasswordBytes(a), PasswordBytes(b));
  EXPECT_EQ(SspiBlob(a), SspiBlob(b));
  // The fixed part other than lengths and offsets is untouched.
  EXPECT_EQ(Bytes(a.begin() + 4, a.begin() + 36), Bytes(b.begin() + 4, b.begin() + 36));
}

Bytes MustRewrite(const Bytes& login, const std::string& name) {
  Bytes out;
  Result r = RewriteLogin7ServerName(login, name, &out);
  EXPECT_TRUE(r.ok()) << r.error;
  return out;
}

TEST(TdsLogin7RewriteTest, SqlClientCaptureWithSspiAndFeatures) {
  const Bytes login = FromHex(kSqlClientSspiLogin7Hex);
  for (const std::string name : {"replica-2.db.internal", "", "r", "tcp:127.0.0.1,1337"}) {
    SCOPED_TRACE(name);
    Bytes out = MustRewrite(login, name);
    EXPECT_EQ(MustParse(out).server_name, name);
    EXPECT_EQ(out.size(), login.size() - 36 + 2 * name.size());
    EXPECT_EQ(U32At(out, 0), out.size());
    ExpectSameExceptServer(login, out);
    // The FeatureExt pointer moved with the data.
    EXPECT_EQ(FeatureBlock(out), FeatureBlock(login));
  }
}

TEST(TdsLogin7RewriteTest, BuiltLoginsOfEveryShape) {
  Login7Spec tedious;  // SQL login, FEDAUTH-less features
  tedious.features = Concat(kUtf8Feature, {0xFF});
  Login7Spec token;  // access token, read-only intent
  token.type_flags = 0x20;
  token.user.clear();
  token.password.clear();
  token.features = Concat(FedAuthFeature(kFedAuthSecurityToken, false, Bytes(300, 0x42)), {0xFF});
  Login7Spec jtds;  // TDS 7.1, no features
  jtds.version = 0x71000001;
  Login7Spec windows;  // a big SSPI blob (cbSSPILong)
  windows.flags2 |= 0x80;
  windows.user.clear();
  windows.sspi = Bytes(70000, 0x4e);
  for (const Login7Spec& s : {tedious, token, jtds, windows}) {
    const Bytes login = Build(s);
    Bytes out = MustRewrite(login, "routed.example.net");
    EXPECT_EQ(MustParse(out).server_name, "routed.example.net");
    ExpectSameExceptServer(login, out);
    if (!s.features.empty()) {
      EXPECT_EQ(FeatureBlock(out), s.features);
    }
    if (s.sspi.size() >= 0xFFFF) {
      EXPECT_EQ(U16At(out, 80), 0xFFFFu);
      EXPECT_EQ(U32At(out, 90), s.sspi.size());
    }
  }
}

TEST(TdsLogin7RewriteTest, RefusesWhatItCannotWrite) {
  Bytes out = {1, 2, 3};
  EXPECT_EQ(RewriteLogin7ServerName(Build(Login7Spec{}), std::string(129, 'a'), &out).error,
            "server name \"" + std::string(129, 'a') + "\" is longer than 128 characters");
  EXPECT_EQ(out, (Bytes{1, 2, 3}));
  EXPECT_TRUE(RewriteLogin7ServerName(Bytes(20, 0), "x", &out).malformed());
  EXPECT_EQ(out, (Bytes{1, 2, 3}));
}

// ---------------------------------------------------------------------------
// ParseLoginResponse.

LoginResponse MustWalk(const Bytes& payload, uint32_t version = 0x74000004) {
  LoginResponse r;
  Result res = ParseLoginResponse(payload, version, &r);
  EXPECT_TRUE(res.ok()) << res.error;
  return r;
}

TEST(TdsLoginResponseTest, Sql2025WindowsLogin) {
  LoginResponse r = MustWalk(FromHex(kSql2025LoginResponseHex));
  EXPECT_TRUE(r.complete_walk);
  EXPECT_TRUE(r.login_ack);
  EXPECT_EQ(r.tds_version, 0x74000004u);
  EXPECT_EQ(r.server_program, "Microsoft SQL Server");
  EXPECT_EQ(r.server_version, "17.0.1000");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].number, 5701);
  EXPECT_FALSE(r.messages[0].error);
  EXPECT_EQ(r.messages[0].text, "Changed database context to 'master'.");
  EXPECT_EQ(r.messages[0].server, "WORKSTATION1");
  EXPECT_EQ(r.messages[1].number, 5703);
  EXPECT_EQ(r.FirstError(), nullptr);
  EXPECT_FALSE(r.routing);
  EXPECT_FALSE(r.sspi);
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.done_error);
  // SESSIONRECOVERY, DATACLASSIFICATION, UTF8_SUPPORT.
  EXPECT_EQ(r.acked_features, (std::vector<uint8_t>{0x01, 0x09, 0x0A}));
}

TEST(TdsLoginResponseTest, Sql2025AnswerAsOneMessageOfTheCapture) {
  // Every prefix of the walk is either complete tokens or "cut short".
  const Bytes all = FromHex(kSql2025LoginResponseHex);
  for (size_t n = 0; n < all.size(); n++) {
    LoginResponse r;
    Result res = ParseLoginResponse(Prefix(all, n), 0x74000004, &r);
    if (res.ok()) {
      EXPECT_FALSE(r.done) << n;
    } else {
      EXPECT_NE(res.error.find("cut short"), std::string::npos) << n << ": " << res.error;
    }
  }
}

TEST(TdsLoginResponseTest, SpecRoutingExample) {
  const Bytes loginack = FromHex("ad36000174000004164d006900630072006f0073006f00660074002000530051004c00200053006500"
                                 "720076006500720000000000100003e8");
  const Bytes done = FromHex("fd000000000000000000000000");
  LoginResponse r = MustWalk(Concat(Concat(loginack, FromHex(kSpecRoutingHex)), done));
  ASSERT_TRUE(r.routing);
  EXPECT_EQ(r.routing->port, 1433);
  EXPECT_EQ(r.routing->server, "db1");
  EXPECT_FALSE(r.routing->enhanced);
  EXPECT_TRUE(r.login_ack);
  EXPECT_TRUE(r.done);
  // The encoder reproduces the example byte for byte.
  EXPECT_EQ(EncodeRoutingEnvChange(*r.routing), FromHex(kSpecRoutingHex));
}

TEST(TdsLoginResponseTest, EnhancedRoutingCarriesADatabase) {
  Routing in{11042, "a1b2.worker.database.windows.net", "appdb-replica", true};
  Bytes env = EncodeRoutingEnvChange(in);
  EXPECT_EQ(env[3], kEnvEnhancedRouting);
  LoginResponse r = MustWalk(Concat(env, FromHex("fd000000000000000000000000")));
  ASSERT_TRUE(r.routing);
  EXPECT_EQ(r.routing->server, in.server);
  EXPECT_EQ(r.routing->database, in.database);
  EXPECT_EQ(r.routing->port, in.port);
  EXPECT_TRUE(r.routing->enhanced);
}

TEST(TdsLoginResponseTest, BadRoutingIsMalformed) {
  auto walk = [](Bytes env) {
    LoginResponse r;
    return ParseLoginResponse(env, 0x74000004, &r).error;
  };
  Bytes env = FromHex(kSpecRoutingHex);
  Bytes udp = env;
  udp[6] = 1;
  EXPECT_EQ(walk(udp), "routing ENVCHANGE names protocol 1, not TCP");
  Bytes port0 = env;
  port0[7] = port0[8] = 0;
  EXPECT_EQ(walk(port0), "routing ENVCHANGE names port 0");
  EXPECT_EQ(walk(EncodeRoutingEnvChange({1433, "", "", false})), "routing ENVCHANGE names no server");
  Bytes long_name = env;
  long_name[9] = 9;  // 9 characters in 6 bytes
  EXPECT_EQ(walk(long_name), "routing ENVCHANGE is cut short");
}

TEST(TdsLoginResponseTest, RefusedLoginAndTheErrorToken) {
  // dbward's own refusal, in both token layouts.
  for (uint32_t version : {0x74000004u, 0x71000001u}) {
    Bytes e = EncodeLoginError(18456, 1, 14, "Login failed for user 'sa_user'.", "DBWARDTDS", version);
    LoginResponse r = MustWalk(e, version);
    EXPECT_FALSE(r.login_ack);
    EXPECT_TRUE(r.done);
    EXPECT_TRUE(r.done_error);
    const ServerMessage* m = r.FirstError();
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->number, kErrorLoginFailed);
    EXPECT_EQ(m->cls, 14);
    EXPECT_EQ(m->text, "Login failed for user 'sa_user'.");
    EXPECT_EQ(m->offset, 0u);
    // EncodeMessageToken writes the token back as it was.
    EXPECT_EQ(EncodeMessageToken(*m, version), Prefix(e, m->size));
  }
  // A TDS 7.1 DONE read as 7.4 is cut short: the layout matters.
  LoginResponse r;
  EXPECT_TRUE(ParseLoginResponse(EncodeLoginError(18456, 1, 14, "x", "y", 0x71000001), 0x74000004, &r).malformed());
}

TEST(TdsLoginResponseTest, SspiAndFedAuthInfoRounds) {
  // An SSPI token alone: the server's NTLM challenge, no LOGINACK, no DONE.
  LoginResponse r = MustWalk(Concat(FromHex("ed0300"), {'N', 'T', 'L'}));
  EXPECT_TRUE(r.sspi);
  EXPECT_FALSE(r.login_ack);
  EXPECT_FALSE(r.done);
  // FEDAUTHINFO: u32 length, then its data, alone in its message.
  r = MustWalk(FromHex("ee0800000001000000ffffffff"));
  EXPECT_TRUE(r.fedauth_info);
  EXPECT_FALSE(r.done);
}

TEST(TdsLoginResponseTest, DoneInProcBeforeLoginAckDoesNotEndIt) {
  // Azure Synapse: DONEINPROC tokens before LOGINACK; a DONE with DONE_MORE
  // does not end it either.
  Bytes b = FromHex("ff01000000" "0000000000000000" "fd01000000" "0000000000000000");
  LoginResponse r = MustWalk(b);
  EXPECT_FALSE(r.done);
  r = MustWalk(Concat(b, FromHex("fd000000000000000000000000")));
  EXPECT_TRUE(r.done);
}

TEST(TdsLoginResponseTest, UnknownTokensStopTheWalk) {
  // COLMETADATA has no length: dbward does not guess past it.
  Bytes b = Concat(FromHex("ab0e00" "01000000" "01" "0a" "0000" "00" "00" "00000000"), FromHex("810100"));
  LoginResponse r;
  Result res = ParseLoginResponse(b, 0x74000004, &r);
  ASSERT_TRUE(res.ok()) << res.error;
  EXPECT_FALSE(r.complete_walk);
  EXPECT_EQ(r.stopped_at_token, 0x81);
  // ENVCHANGE 15 (promote transaction): its Length does not cover its data.
  r = MustWalk(FromHex("e30100" "0f"));
  EXPECT_FALSE(r.complete_walk);
  EXPECT_EQ(r.stopped_at_token, kTokenEnvChange);
}


// ---------------------------------------------------------------------------
// NTLM AUTHENTICATE: the user, for the audit.

// A minimal AUTHENTICATE message (MS-NLMP 2.2.1.3) with domain and user.
Bytes NtlmAuthenticate(const std::string& domain, const std::string& user, bool unicode) {
  Bytes m(64, 0);
  const char sig[] = "NTLMSSP";
  std::copy(sig, sig + 8, m.begin());
  m[8] = 3;
  auto field = [&](size_t at, const Bytes& value) {
    size_t off = m.size();
    m[at] = static_cast<uint8_t>(value.size());
    m[at + 2] = static_cast<uint8_t>(value.size());
    m[at + 4] = static_cast<uint8_t>(off);
    m.insert(m.end(), value.begin(), value.end());
  };
  auto text = [&](const std::string& v) { return unicode ? Utf8ToUtf16Le(v) : Bytes(v.begin(), v.end()); };
  field(28, text(domain));
  field(36, text(user));
  m[60] = unicode ? 0x01 : 0x02;  // NEGOTIATE_UNICODE or NEGOTIATE_OEM
  return m;
}

TEST(NtlmTest, AuthenticateNamesItsUser) {
  std::string user;
  ASSERT_TRUE(ntlm::AuthenticateUser(NtlmAuthenticate("CORP", "alice", true), &user));
  EXPECT_EQ(user, "CORP\\alice");
  ASSERT_TRUE(ntlm::AuthenticateUser(NtlmAuthenticate("", "bob", false), &user));
  EXPECT_EQ(user, "bob");
  // Inside SPNEGO (negTokenResp): found by its signature.
  Bytes spnego = Concat(FromHex("a1820110308201 0ca2820108048201 04"), NtlmAuthenticate("CORP", "carol", true));
  ASSERT_TRUE(ntlm::AuthenticateUser(spnego, &user));
  EXPECT_EQ(user, "CORP\\carol");
}

TEST(NtlmTest, OtherMessagesAndGarbageNameNobody) {
  std::string user = "untouched";
  EXPECT_FALSE(ntlm::AuthenticateUser(FromHex(kSqlClientSspiLogin7Hex), &user)) << "a NEGOTIATE is not an AUTHENTICATE";
  Bytes lying = NtlmAuthenticate("CORP", "alice", true);
  lying[40] = 0xff;  // user offset far outside
  EXPECT_FALSE(ntlm::AuthenticateUser(lying, &user));
  EXPECT_FALSE(ntlm::AuthenticateUser(Prefix(NtlmAuthenticate("CORP", "alice", true), 50), &user));
  EXPECT_EQ(user, "untouched");
}

}  // namespace
}  // namespace dbward::protocol::tds
