// Socket helpers: listening sockets with SO_REUSEPORT, non-blocking connects,
// address formatting. All sockets are non-blocking and close-on-exec.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace dbward::proxy {

// Binds host:port (numeric host or name resolved at start). reuseport lets
// every worker own a socket on the same address. Returns fd or -1 and error.
int ListenTcp(const std::string& host, uint16_t port, bool reuseport, std::string* error);
uint16_t LocalPort(int fd);
std::string FormatAddress(const sockaddr* sa);
std::string PeerAddress(int fd);
// Starts a non-blocking connect; returns fd (connect in progress or done) or -1.
int ConnectTcp(const sockaddr* sa, socklen_t len, int* err);
void SetNoDelay(int fd);

}  // namespace dbward::proxy
