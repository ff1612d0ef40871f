#include "protocol/ssrp.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "protocol/builder.h"
#include "protocol/cursor.h"

namespace dbward::protocol::ssrp {
namespace {

Result Malformed(std::string why) { return Result::Malformed(std::move(why)); }

// The NUL-terminated instance name that ends a request.
Result GetInstance(Cursor* c, std::string* out) {
  std::string_view name;
  if (!c->GetCString(&name)) return Malformed("instance name has no terminating NUL");
  if (!c->Empty()) return Malformed("bytes after the instance name");
  if (!ValidInstanceName(std::string(name))) return Malformed("invalid instance name");
  *out = std::string(name);
  return Result::Ok();
}

bool ParsePort(std::string_view s, uint16_t* out) {
  if (s.empty() || s.size() > 5) return false;
  uint32_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint32_t>(ch - '0');
  }
  if (v == 0 || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

bool ValidInstanceName(const std::string& name) {
  if (name.empty() || name.size() > kMaxInstanceName) return false;
  return std::none_of(name.begin(), name.end(), [](char ch) {
    return ch == ';' || ch == ':' || ch == '\\' || ch == '\0' || static_cast<unsigned char>(ch) < 0x20;
  });
}

Result ParseRequest(std::span<const uint8_t> datagram, Request* out) {
  Cursor c(datagram);
  Request r;
  if (!c.GetU8(&r.type)) return Malformed("empty datagram");
  switch (r.type) {
    case kClientBroadcastEx:
    case kClientUnicastEx:
      if (!c.Empty()) return Malformed("bytes after the request type");
      break;
    case kClientUnicastInst:
      if (Result e = GetInstance(&c, &r.instance); !e.ok()) return e;
      break;
    case kClientUnicastDac: {
      uint8_t version;
      if (!c.GetU8(&version) || version != 0x01) return Malformed("DAC request of an unknown version");
      if (Result e = GetInstance(&c, &r.instance); !e.ok()) return e;
      break;
    }
    default:
      return Malformed("unknown request type " + std::to_string(r.type));
  }
  *out = std::move(r);
  return Result::Ok();
}

std::vector<uint8_t> EncodeInstanceRequest(const std::string& instance) {
  Builder b;
  b.U8(kClientUnicastInst).CString(instance);
  return b.Take();
}

std::vector<uint8_t> EncodeResponse(const std::vector<Instance>& instances, size_t max_data) {
  std::string data;
  for (const Instance& i : instances) {
    data += "ServerName;" + i.server_name + ";InstanceName;" + i.instance_name + ";IsClustered;" +
            (i.clustered ? "Yes" : "No") + ";Version;" + i.version;
    if (i.tcp_port != 0) data += ";tcp;" + std::to_string(i.tcp_port);
    data += ";;";
  }
  if (data.size() > std::min(max_data, kMaxResponse)) return {};
  Builder b;
  b.U8(kServerResponse).U16LE(static_cast<uint16_t>(data.size())).Text(data);
  return b.Take();
}

Result ParseResponse(std::span<const uint8_t> datagram, std::vector<Instance>* out) {
  Cursor c(datagram);
  uint8_t type;
  uint16_t size;
  std::span<const uint8_t> bytes;
  if (!c.GetU8(&type) || type != kServerResponse) return Malformed("not a SQL Server Browser response");
  if (!c.GetU16LE(&size) || !c.GetSpan(size, &bytes)) return Malformed("response shorter than its size field");
  std::string_view data(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::vector<Instance> instances;
  while (!data.empty()) {
    size_t end = data.find(";;");
    std::string_view record = data.substr(0, end);
    data = end == std::string_view::npos ? std::string_view() : data.substr(end + 2);
    Instance inst;
    inst.version.clear();
    bool named = false;
    while (!record.empty()) {
      size_t k = record.find(';');
      if (k == std::string_view::npos) return Malformed("instance entry ends inside a key");
      std::string_view key = record.substr(0, k);
      record.remove_prefix(k + 1);
      size_t v = record.find(';');
      std::string_view value = record.substr(0, v);
      record = v == std::string_view::npos ? std::string_view() : record.substr(v + 1);
      if (key == "ServerName") {
        inst.server_name = std::string(value);
      } else if (key == "InstanceName") {
        inst.instance_name = std::string(value);
        named = true;
      } else if (key == "IsClustered") {
        inst.clustered = value == "Yes";
      } else if (key == "Version") {
        inst.version = std::string(value);
      } else if (key == "tcp") {
        if (!ParsePort(value, &inst.tcp_port)) inst.tcp_port = 0;
      }
    }
    if (!named) return Malformed("instance entry without InstanceName");
    instances.push_back(std::move(inst));
  }
  *out = std::move(instances);
  return Result::Ok();
}

}  // namespace dbward::protocol::ssrp
