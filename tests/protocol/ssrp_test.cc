// [MC-SQLR] requests and responses: the specification's examples byte for
// byte, and what clients send (FreeTDS CLNT_UCAST_INST, tedious and jTDS
// CLNT_BCAST_EX).
#include <gtest/gtest.h>

#include "bytes_util.h"
#include "protocol/ssrp.h"

namespace dbward::protocol::ssrp {
namespace {

using namespace dbward::protocol::testutil;

TEST(SsrpTest, SpecInstanceRequest) {
  // MC-SQLR 4.2: CLNT_UCAST_INST for "YUKONSTD".
  const Bytes spec = FromHex("0459554b4f4e53544400");
  EXPECT_EQ(EncodeInstanceRequest("YUKONSTD"), spec);
  Request r;
  ASSERT_TRUE(ParseRequest(spec, &r).ok());
  EXPECT_EQ(r.type, kClientUnicastInst);
  EXPECT_EQ(r.instance, "YUKONSTD");
}

TEST(SsrpTest, ListRequestsAndDac) {
  Request r;
  ASSERT_TRUE(ParseRequest(Bytes{0x02}, &r).ok());
  EXPECT_EQ(r.type, kClientBroadcastEx);
  ASSERT_TRUE(ParseRequest(Bytes{0x03}, &r).ok());
  EXPECT_EQ(r.type, kClientUnicastEx);
  ASSERT_TRUE(ParseRequest(Concat({0x0F, 0x01}, StrBytes(std::string_view("SQLEXPRESS\0", 11))), &r).ok());
  EXPECT_EQ(r.type, kClientUnicastDac);
  EXPECT_EQ(r.instance, "SQLEXPRESS");
}

TEST(SsrpTest, MalformedRequestsGetNoAnswer) {
  Request r;
  r.instance = "untouched";
  for (const Bytes& bad : {Bytes{}, Bytes{0x02, 0x00}, Bytes{0x04}, Bytes{0x04, 'A'}, Bytes{0x04, 0x00},
                           Bytes{0x04, 'A', 0x00, 'B'}, Bytes{0x04, 'A', ';', 'B', 0x00},
                           Bytes{0x0F, 0x02, 'A', 0x00}, Bytes{0x05, 0x00, 0x00}, Bytes{0x99}}) {
    EXPECT_TRUE(ParseRequest(bad, &r).malformed()) << bad.size();
  }
  Bytes too_long = {0x04};
  too_long.insert(too_long.end(), 33, 'A');
  too_long.push_back(0);
  EXPECT_TRUE(ParseRequest(too_long, &r).malformed());
  EXPECT_EQ(r.instance, "untouched");
}

TEST(SsrpTest, SpecResponseRoundTrip) {
  // MC-SQLR 4.1's response for YUKONSTD on ILSUNG1, TCP port 57137.
  const std::string text = "ServerName;ILSUNG1;InstanceName;YUKONSTD;IsClustered;No;Version;9.00.1399.06;tcp;57137;;";
  Bytes spec = {0x05, static_cast<uint8_t>(text.size()), 0x00};
  Append(&spec, text);
  EXPECT_EQ(EncodeResponse({{"ILSUNG1", "YUKONSTD", "9.00.1399.06", false, 57137}}), spec);
  std::vector<Instance> got;
  ASSERT_TRUE(ParseResponse(spec, &got).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].server_name, "ILSUNG1");
  EXPECT_EQ(got[0].instance_name, "YUKONSTD");
  EXPECT_EQ(got[0].version, "9.00.1399.06");
  EXPECT_EQ(got[0].tcp_port, 57137);
}

TEST(SsrpTest, SeveralInstancesAndOtherProtocols) {
  const std::string text =
      "ServerName;H;InstanceName;A;IsClustered;No;Version;16.0.1000.6;np;\\\\H\\pipe\\MSSQL$A\\sql\\query;tcp;1500;;"
      "ServerName;H;InstanceName;B;IsClustered;Yes;Version;15.0.2000.5;tcp;99999;;";
  Bytes d = {0x05, static_cast<uint8_t>(text.size()), static_cast<uint8_t>(text.size() >> 8)};
  Append(&d, text);
  std::vector<Instance> got;
  ASSERT_TRUE(ParseResponse(d, &got).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].tcp_port, 1500);
  EXPECT_EQ(got[1].instance_name, "B");
  EXPECT_TRUE(got[1].clustered);
  EXPECT_EQ(got[1].tcp_port, 0);  // 99999 is no port
}

TEST(SsrpTest, BadResponses) {
  std::vector<Instance> got;
  EXPECT_TRUE(ParseResponse(Bytes{0x04, 0x00, 0x00}, &got).malformed());
  EXPECT_TRUE(ParseResponse(Bytes{0x05, 0x10, 0x00, 'a'}, &got).malformed());
  Bytes no_name = {0x05, 9, 0x00};
  Append(&no_name, "tcp;1433;");
  EXPECT_TRUE(ParseResponse(no_name, &got).malformed());
}

TEST(SsrpTest, ResponsesThatDoNotFitAreNotSent) {
  Instance big{"H", std::string(32, 'I'), std::string(2000, '9'), false, 1433};
  EXPECT_TRUE(EncodeResponse({big}, kMaxInstanceResponse).empty());
  EXPECT_FALSE(EncodeResponse({big}).empty());
}

TEST(SsrpTest, InstanceNames) {
  EXPECT_TRUE(ValidInstanceName("SQLEXPRESS"));
  EXPECT_TRUE(ValidInstanceName(std::string(32, 'A')));
  EXPECT_FALSE(ValidInstanceName(std::string(33, 'A')));
  for (const char* bad : {"", "A;B", "A:B", "A\\B"}) EXPECT_FALSE(ValidInstanceName(bad)) << bad;
}

}  // namespace
}  // namespace dbward::protocol::ssrp
