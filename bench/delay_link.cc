// delay_link: a TCP forwarder that stands for a network between a client host
// and a database server during connect-per-request benchmarks, where this
// machine has no netem. Everything it forwards arrives half a round trip late,
// in each direction, and a connection's first bytes towards the server also
// wait one round trip from the accept (the SYN and SYN-ACK a real connect
// would have cost before the client could send anything):
//
//   delay_link --listen 127.0.0.1:0 --to 127.0.0.1:5432 --rtt-us 1000
//
// It forwards bytes, not packets (no loss, no bandwidth limit, no Nagle), and
// keeps order in each direction. One thread per connection, ppoll with a
// microsecond timeout: the connections it carries are few (pgbench -C -c N).
// Once bound it prints "listening on ADDR:PORT" on stdout; SIGTERM/SIGINT
// stop it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string listen;
  std::string to;
  std::chrono::microseconds rtt{0};
};

bool ParseAddress(const std::string& text, sockaddr_in* out) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return false;
  }
  std::memset(out, 0, sizeof(*out));
  out->sin_family = AF_INET;
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port > 65535 || inet_pton(AF_INET, text.substr(0, colon).c_str(), &out->sin_addr) != 1) {
    return false;
  }
  out->sin_port = htons(static_cast<uint16_t>(port));
  return true;
}

[[noreturn]] void Usage() {
  std::fprintf(stderr, "usage: delay_link --listen ADDR:PORT --to ADDR:PORT --rtt-us MICROSECONDS\n");
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; i++) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      Usage();
    }
    std::string value = argv[++i];
    if (flag == "--listen") {
      options.listen = value;
    } else if (flag == "--to") {
      options.to = value;
    } else if (flag == "--rtt-us") {
      options.rtt = std::chrono::microseconds(std::strtoll(value.c_str(), nullptr, 10));
    } else {
      Usage();
    }
  }
  if (options.listen.empty() || options.to.empty() || options.rtt.count() < 0) {
    Usage();
  }
  return options;
}

// What one direction has read and not yet delivered. An empty chunk is the
// end of the stream, delivered as a half-close.
struct Chunk {
  Clock::time_point due;
  std::vector<uint8_t> bytes;
};

struct Direction {
  int from = -1;
  int to = -1;
  bool read_done = false;
  bool write_done = false;
  std::deque<Chunk> queue;
};

// Carries one connection until both directions have ended.
void Carry(int client, sockaddr_in upstream_address, std::chrono::microseconds rtt) {
  // The kernel may otherwise let each timed wait run 50 µs late.
  prctl(PR_SET_TIMERSLACK, 1UL);
  int upstream = socket(AF_INET, SOCK_STREAM, 0);
  if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&upstream_address), sizeof(upstream_address)) != 0) {
    std::perror("delay_link: connect");
    close(client);
    if (upstream >= 0) {
      close(upstream);
    }
    return;
  }
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const Clock::time_point connected = Clock::now() + rtt;  // when a real connect would have returned
  const std::chrono::microseconds half = rtt / 2;
  Direction directions[2];
  directions[0].from = client;
  directions[0].to = upstream;
  directions[1].from = upstream;
  directions[1].to = client;
  std::vector<uint8_t> buffer(64 * 1024);
  while (!(directions[0].write_done && directions[1].write_done)) {
    Clock::time_point now = Clock::now();
    // Deliver what is due.
    for (int d = 0; d < 2; d++) {
      Direction& dir = directions[d];
      while (!dir.queue.empty() && dir.queue.front().due <= now) {
        Chunk& chunk = dir.queue.front();
        if (chunk.bytes.empty()) {
          shutdown(dir.to, SHUT_WR);
          dir.write_done = true;
        } else {
          size_t sent = 0;
          while (sent < chunk.bytes.size()) {
            ssize_t n = send(dir.to, chunk.bytes.data() + sent, chunk.bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
              // The receiver is gone: whatever else this direction holds is lost with it.
              dir.write_done = true;
              dir.read_done = true;
              break;
            }
            sent += static_cast<size_t>(n);
          }
        }
        dir.queue.pop_front();
        if (dir.write_done) {
          dir.queue.clear();
        }
      }
    }
    // Wait for bytes, or for the next chunk to fall due.
    pollfd fds[2];
    nfds_t nfds = 0;
    int which[2];
    std::chrono::nanoseconds wait = std::chrono::hours(1);
    for (int d = 0; d < 2; d++) {
      Direction& dir = directions[d];
      if (!dir.read_done && !dir.write_done) {
        fds[nfds] = {dir.from, POLLIN, 0};
        which[nfds++] = d;
      }
      if (!dir.queue.empty()) {
        wait = std::min<std::chrono::nanoseconds>(wait, dir.queue.front().due - now);
      }
    }
    if (nfds == 0 && directions[0].queue.empty() && directions[1].queue.empty()) {
      break;
    }
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(wait);
    timespec timeout{static_cast<time_t>(seconds.count()), static_cast<long>((wait - seconds).count())};
    if (ppoll(fds, nfds, &timeout, nullptr) < 0) {
      break;
    }
    now = Clock::now();
    for (nfds_t i = 0; i < nfds; i++) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        continue;
      }
      Direction& dir = directions[which[i]];
      ssize_t n = recv(dir.from, buffer.data(), buffer.size(), 0);
      Clock::time_point due = now + half;
      if (which[i] == 0 && due < connected + half) {
        due = connected + half;
      }
      if (n > 0) {
        dir.queue.push_back({due, std::vector<uint8_t>(buffer.begin(), buffer.begin() + n)});
      } else {
        dir.read_done = true;
        dir.queue.push_back({due, {}});
      }
    }
  }
  close(client);
  close(upstream);
}

}  // namespace

int main(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  sockaddr_in listen_address;
  sockaddr_in upstream_address;
  if (!ParseAddress(options.listen, &listen_address) || !ParseAddress(options.to, &upstream_address)) {
    Usage();
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&listen_address), sizeof(listen_address)) != 0 ||
      listen(listener, 512) != 0) {
    std::perror("delay_link: listen");
    return 1;
  }
  socklen_t length = sizeof(listen_address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&listen_address), &length);
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &listen_address.sin_addr, host, sizeof(host));
  std::printf("listening on %s:%u\n", host, ntohs(listen_address.sin_port));
  std::fflush(stdout);
  for (;;) {
    int client = accept(listener, nullptr, nullptr);
    if (client < 0) {
      continue;
    }
    std::thread(Carry, client, upstream_address, options.rtt).detach();
  }
}
