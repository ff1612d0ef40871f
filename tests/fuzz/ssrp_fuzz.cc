// SQL Server Browser datagrams on arbitrary bytes: requests parse or are
// ignored, responses list instances whose entries re-encode and parse back.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/ssrp.h"
#include "tests/fuzz/fuzz_check.h"

namespace ssrp = dbward::protocol::ssrp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  ssrp::Request req;
  if (ssrp::ParseRequest(in, &req).ok()) {
    FUZZ_CHECK(size >= 1 && req.type == in[0]);
    if (req.type == ssrp::kClientUnicastInst) {
      FUZZ_CHECK(ssrp::ValidInstanceName(req.instance));
      std::vector<uint8_t> back = ssrp::EncodeInstanceRequest(req.instance);
      FUZZ_CHECK(back == std::vector<uint8_t>(in.begin(), in.end()));
    }
  }
  std::vector<ssrp::Instance> got;
  if (ssrp::ParseResponse(in, &got).ok()) {
    FUZZ_CHECK(size >= 3);
    for (const ssrp::Instance& i : got) {
      if (!ssrp::ValidInstanceName(i.instance_name) || i.server_name.find(';') != std::string::npos ||
          i.version.find(';') != std::string::npos || i.server_name.empty() || i.version.empty()) {
        continue;
      }
      std::vector<ssrp::Instance> one;
      FUZZ_CHECK(ssrp::ParseResponse(ssrp::EncodeResponse({i}), &one).ok());
      FUZZ_CHECK(one.size() == 1 && one[0].instance_name == i.instance_name && one[0].tcp_port == i.tcp_port);
    }
  }
  return 0;
}
