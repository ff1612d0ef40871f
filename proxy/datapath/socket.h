// Socket helpers: listening sockets with SO_REUSEPORT, non-blocking connects,
// address formatting. All sockets are non-blocking and close-on-exec.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dbward::proxy {

// Binds host:port (numeric host or name resolved at start). reuseport lets
// every worker own a socket on the same address. Returns fd or -1 and error.
int ListenTcp(const std::string& host, uint16_t port, bool reuseport, std::string* error);
uint16_t LocalPort(int fd);
std::string FormatAddress(const sockaddr* sa);
std::string PeerAddress(int fd);
// Raw address bytes (4 or 16, network order) as the PROXY protocol carries
// them: "10.0.0.7:51234", "[2001:db8::1]:5432"; an IPv4-mapped IPv6 address
// is written as IPv4.
std::string FormatRawAddress(std::span<const uint8_t> addr, uint16_t port);
// The socket's peer (peer) or local address as raw bytes; false if unknown
// or not IP. IPv4-mapped IPv6 comes back as 4 bytes.
bool RawAddress(int fd, bool peer, std::vector<uint8_t>* addr, uint16_t* port);
// Starts a non-blocking connect; returns fd (connect in progress or done) or -1.
int ConnectTcp(const sockaddr* sa, socklen_t len, int* err);
void SetNoDelay(int fd);

}  // namespace dbward::proxy
