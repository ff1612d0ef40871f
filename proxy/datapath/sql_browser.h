// dbward's own SQL Server Browser (MC-SQLR on UDP, normally port 1434):
// clients that connect to HOST\INSTANCE ask it for the instance's TCP port,
// and it names the port of the tds listener the configuration maps the
// instance to. Unicast instance queries and the list queries (unicast and
// broadcast) are answered; anything else, unknown instances included, gets
// no answer, as from SQL Server's Browser. Answers are rate-limited per
// source address, so that the service cannot be used to amplify a spoofed
// flood (a known abuse of UDP 1434).
#pragma once

#include <uv.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "proxy/common/config.h"

namespace dbward::proxy {

struct ListenerRuntime;

class SqlBrowser {
 public:
  SqlBrowser(uv_loop_t* loop, const SqlBrowserConfig& config, const std::vector<ListenerRuntime*>& listeners);
  ~SqlBrowser();
  SqlBrowser(const SqlBrowser&) = delete;
  SqlBrowser& operator=(const SqlBrowser&) = delete;

  bool Start(std::string* error);
  // Stops answering; the handle's memory goes in its close callback.
  void Close();
  uint16_t port() const { return port_; }

 private:
  struct Handle;
  struct Bucket {
    double tokens;
    uint64_t at_ms;
  };
  void OnDatagram(const uint8_t* data, size_t size, const sockaddr* from);
  bool Allow(const std::string& ip, uint64_t now_ms);
  void Answer(const std::vector<uint8_t>& datagram, const sockaddr* from);

  uv_loop_t* loop_;
  SqlBrowserConfig config_;
  std::vector<ListenerRuntime*> listeners_;
  std::string server_name_;
  Handle* handle_ = nullptr;
  uint16_t port_ = 0;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace dbward::proxy
