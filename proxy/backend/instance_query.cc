#include "proxy/backend/instance_query.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "protocol/ssrp.h"

namespace dbward::proxy::probe {
namespace {

namespace ssrp = protocol::ssrp;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

uint16_t QueryInstancePort(const std::string& host, const std::string& instance, std::chrono::milliseconds timeout,
                           std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(ssrp::kPort).c_str(), &hints, &res);
  if (rc != 0) {
    *error = fmt::format("cannot resolve {}: {}", host, gai_strerror(rc));
    return 0;
  }
  int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = strerror(errno);
    freeaddrinfo(res);
    return 0;
  }
  // connect() so that only the Browser's answers arrive (and ICMP errors do).
  if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    *error = fmt::format("cannot reach {} (UDP {}): {}", host, ssrp::kPort, strerror(errno));
    close(fd);
    freeaddrinfo(res);
    return 0;
  }
  freeaddrinfo(res);
  const std::vector<uint8_t> request = ssrp::EncodeInstanceRequest(instance);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string problem;
  uint16_t port = 0;
  int sends = 0;
  while (port == 0 && std::chrono::steady_clock::now() < deadline && sends < 3) {
    sends++;
    if (send(fd, request.data(), request.size(), 0) < 0) problem = strerror(errno);
    auto round_end = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    while (port == 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(round_end - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      uint8_t buf[65536];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0) {
        problem = strerror(errno);  // ECONNREFUSED: nothing listens on UDP 1434
        break;
      }
      std::vector<ssrp::Instance> instances;
      protocol::Result r = ssrp::ParseResponse(std::span<const uint8_t>(buf, static_cast<size_t>(n)), &instances);
      if (!r.ok()) {
        problem = "an answer that is not MC-SQLR: " + r.error;
        continue;
      }
      for (const ssrp::Instance& i : instances) {
        if (Upper(i.instance_name) == Upper(instance)) port = i.tcp_port;
      }
      if (port == 0) problem = "its answer gives no TCP port for the instance";
    }
  }
  close(fd);
  if (port == 0) {
    *error = fmt::format("the SQL Server Browser on {} (UDP {}) did not tell the port of instance {} after {} queries{}",
                         host, ssrp::kPort, instance, sends, problem.empty() ? "" : " (" + problem + ")");
  }
  return port;
}

}  // namespace dbward::proxy::probe
