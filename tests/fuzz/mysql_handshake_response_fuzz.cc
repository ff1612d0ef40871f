// Packet framing and the connection-phase bodies dbward looks into
// (HandshakeResponse41 / SSLRequest from the client; ERR and
// AuthSwitchRequest from the server), on arbitrary bytes, walking the buffer
// packet by packet as the MySQL handler does.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/mysql.h"
#include "tests/fuzz/fuzz_check.h"

namespace my = dbward::protocol::mysql;

namespace {

void CheckResponse(std::span<const uint8_t> payload) {
  my::HandshakeResponse r;
  my::Result res = my::ParseHandshakeResponse(payload, &r);
  FUZZ_CHECK(res.status != my::Status::kNeedMore);
  if (res.status == my::Status::kMalformed) {
    FUZZ_CHECK(!res.error.empty());
    return;
  }
  FUZZ_CHECK(res.error.empty());
  FUZZ_CHECK(r.capabilities & my::kClientProtocol41);
  if (r.ssl_request) {
    FUZZ_CHECK(payload.size() == my::kSslRequestLength);
    FUZZ_CHECK(r.capabilities & my::kClientSsl);
    FUZZ_CHECK(r.user.empty() && r.auth_response.empty() && r.attributes.empty());
    return;
  }
  FUZZ_CHECK(payload.size() > my::kSslRequestLength);
  FUZZ_CHECK(r.user.find('\0') == std::string::npos);
  FUZZ_CHECK(r.database.find('\0') == std::string::npos);
  FUZZ_CHECK(r.auth_plugin.find('\0') == std::string::npos);
  FUZZ_CHECK(r.user.size() + r.auth_response.size() + r.database.size() + r.auth_plugin.size() <= payload.size());

  // The SSLRequest dbward sends to the backend in the client's name.
  std::vector<uint8_t> ssl = my::SslRequestFrom(payload);
  FUZZ_CHECK(ssl.size() == my::kSslRequestLength);
  FUZZ_CHECK(ssl[1] & (my::kClientSsl >> 8));
  for (size_t i = 0; i < ssl.size(); i++) {
    FUZZ_CHECK(ssl[i] == (i == 1 ? static_cast<uint8_t>(payload[1] | 0x08) : payload[i]));
  }
  my::HandshakeResponse sr;
  FUZZ_CHECK(my::ParseHandshakeResponse(ssl, &sr).status == my::Status::kOk);
  FUZZ_CHECK(sr.ssl_request && sr.capabilities == (r.capabilities | my::kClientSsl) &&
             sr.max_packet == r.max_packet && sr.charset == r.charset);

  // The response forwarded inside TLS: same bytes but CLIENT_SSL, same fields.
  std::vector<uint8_t> with(payload.begin(), payload.end());
  my::SetSslBit(&with);
  FUZZ_CHECK(with.size() == payload.size());
  my::HandshakeResponse again;
  FUZZ_CHECK(my::ParseHandshakeResponse(with, &again).status == my::Status::kOk);
  FUZZ_CHECK(!again.ssl_request);
  FUZZ_CHECK(again.capabilities == (r.capabilities | my::kClientSsl));
  FUZZ_CHECK(again.user == r.user && again.auth_response == r.auth_response && again.database == r.database &&
             again.auth_plugin == r.auth_plugin && again.attributes == r.attributes);
}

void CheckServerPacket(std::span<const uint8_t> payload) {
  my::ErrInfo e;
  if (my::ParseErr(payload, &e)) {
    FUZZ_CHECK(my::IsErr(payload));
    FUZZ_CHECK(e.sqlstate.empty() || e.sqlstate.size() == 5);
    // Whatever parses re-encodes to the same bytes.
    std::vector<uint8_t> encoded = my::EncodeErr(e.code, e.sqlstate, e.message);
    FUZZ_CHECK(encoded == std::vector<uint8_t>(payload.begin(), payload.end()));
    my::ErrInfo back;
    FUZZ_CHECK(my::ParseErr(encoded, &back));
    FUZZ_CHECK(back.code == e.code && back.sqlstate == e.sqlstate && back.message == e.message);
  } else {
    FUZZ_CHECK(!my::IsErr(payload) || payload.size() < 3);
  }

  std::string plugin;
  std::vector<uint8_t> scramble;
  if (my::ParseAuthSwitch(payload, &plugin, &scramble)) {
    FUZZ_CHECK(payload[0] == 0xfe);
    FUZZ_CHECK(plugin.find('\0') == std::string::npos);
    FUZZ_CHECK(1 + plugin.size() + 1 + scramble.size() <= payload.size());
  }

  std::span<const uint8_t> rest = payload;
  uint64_t v = 0;
  if (my::ReadLenenc(&rest, &v)) {
    const size_t used = payload.size() - rest.size();
    FUZZ_CHECK(rest.data() == payload.data() + used);
    const uint8_t first = payload[0];
    FUZZ_CHECK(used == (first < 0xfb ? 1u : first == 0xfc ? 3u : first == 0xfd ? 4u : 9u));
    FUZZ_CHECK(first < 0xfb ? v == first : first == 0xfc ? v <= 0xffff : first == 0xfd ? v <= 0xffffff : true);
  } else {
    FUZZ_CHECK(rest.data() == payload.data() && rest.size() == payload.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  // The body parsers also get the raw input, so they are reached without the
  // fuzzer first having to find a consistent length field.
  CheckResponse(in);
  CheckServerPacket(in);

  size_t off = 0;
  while (off < in.size()) {
    std::span<const uint8_t> rest = in.subspan(off);
    my::Packet p;
    p.seq = 0x5a;
    my::Result r = my::DecodePacket(rest, my::kMaxPreAuthPayload, &p);
    if (r.status == my::Status::kNeedMore) {
      FUZZ_CHECK(r.error.empty());
      FUZZ_CHECK(p.seq == 0x5a);
      break;
    }
    if (r.status == my::Status::kMalformed) {
      FUZZ_CHECK(!r.error.empty());
      FUZZ_CHECK(rest.size() >= 4);
      break;
    }
    FUZZ_CHECK(r.error.empty());
    FUZZ_CHECK(p.wire_length >= 4);
    FUZZ_CHECK(p.wire_length <= rest.size());
    FUZZ_CHECK(p.wire_length == 4 + p.payload.size());
    FUZZ_CHECK(p.payload.size() <= my::kMaxPreAuthPayload);
    FUZZ_CHECK(p.payload.data() == rest.data() + 4);
    FUZZ_CHECK(p.seq == rest[3]);
    // Framing round trip: the packet is exactly its encoding.
    std::vector<uint8_t> encoded = my::EncodePacket(p.seq, p.payload);
    FUZZ_CHECK(encoded == std::vector<uint8_t>(rest.begin(), rest.begin() + static_cast<ptrdiff_t>(p.wire_length)));
    CheckResponse(p.payload);
    CheckServerPacket(p.payload);
    off += p.wire_length;
  }
  return 0;
}
