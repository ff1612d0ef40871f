// SQL Server Resolution Protocol ([MC-SQLR], the SQL Server Browser on UDP
// 1434): a client names an instance ("HOST\SQLEXPRESS") and learns its TCP
// port. dbward answers these queries for its own listeners, and asks them
// of a backend written as host\INSTANCE.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "protocol/result.h"

namespace dbward::protocol::ssrp {

constexpr uint16_t kPort = 1434;
constexpr uint8_t kClientBroadcastEx = 0x02;  // every instance, broadcast
constexpr uint8_t kClientUnicastEx = 0x03;    // every instance of one host
constexpr uint8_t kClientUnicastInst = 0x04;  // one instance
constexpr uint8_t kClientUnicastDac = 0x0F;   // the dedicated admin connection's port
constexpr uint8_t kServerResponse = 0x05;
constexpr size_t kMaxInstanceName = 32;        // bytes, without the NUL
constexpr size_t kMaxInstanceResponse = 1024;  // RESP_DATA for one instance
constexpr size_t kMaxResponse = 65535;

using protocol::Result;

struct Request {
  uint8_t type = 0;
  std::string instance;  // kClientUnicastInst and kClientUnicastDac
};
// One datagram from a client. Malformed for anything the specification
// does not define (the Browser ignores those: no answer).
Result ParseRequest(std::span<const uint8_t> datagram, Request* out);
std::vector<uint8_t> EncodeInstanceRequest(const std::string& instance);

struct Instance {
  std::string server_name;
  std::string instance_name;
  std::string version = "16.0.1000.6";
  bool clustered = false;
  uint16_t tcp_port = 0;  // 0: no tcp entry
};
// SVR_RESP with the instances' entries; empty when they do not fit
// max_data bytes (kMaxInstanceResponse for one instance, kMaxResponse for
// the lists).
std::vector<uint8_t> EncodeResponse(const std::vector<Instance>& instances, size_t max_data = kMaxResponse);
// A SVR_RESP datagram: the instances it lists (those without a valid tcp
// port are kept with tcp_port 0).
Result ParseResponse(std::span<const uint8_t> datagram, std::vector<Instance>* out);

// Whether name may name an instance: 1 to 32 bytes, no ';', ':', '\\' or NUL
// (they would break the response's syntax or the host\instance form).
bool ValidInstanceName(const std::string& name);

}  // namespace dbward::protocol::ssrp
