// Micro-benchmarks (Google Benchmark) for the pieces on the per-connection
// and per-byte paths: the pre-authentication decoders, and the TLS record
// transform through tls::Connection over an in-memory pipe (what the relay
// pays per byte besides the syscalls).
#include <benchmark/benchmark.h>

#include <cstring>
#include <deque>
#include <vector>

#include "protocol/mysql.h"
#include "protocol/postgres.h"
#include "protocol/tds.h"
#include "tls/connection.h"
#include "tls/context.h"

namespace {

using dbward::tls::IoResult;

// One direction of an in-memory byte pipe.
class Pipe final : public dbward::tls::Io {
 public:
  Pipe(std::deque<uint8_t>* in, std::deque<uint8_t>* out) : in_(in), out_(out) {}
  IoResult Read(std::span<uint8_t> buf) override {
    if (in_->empty()) return IoResult::WantRead();
    size_t n = std::min(buf.size(), in_->size());
    std::copy(in_->begin(), in_->begin() + static_cast<ptrdiff_t>(n), buf.begin());
    in_->erase(in_->begin(), in_->begin() + static_cast<ptrdiff_t>(n));
    return IoResult::Ok(n);
  }
  IoResult Write(std::span<const uint8_t> buf) override {
    out_->insert(out_->end(), buf.begin(), buf.end());
    return IoResult::Ok(buf.size());
  }

 private:
  std::deque<uint8_t>* in_;
  std::deque<uint8_t>* out_;
};

void BM_PgStartupDecode(benchmark::State& state) {
  std::vector<uint8_t> msg = {0, 0, 0, 0x26, 0, 3, 0, 0};
  for (const char* s : {"user", "oryx", "database", "mailstore"}) {
    msg.insert(msg.end(), s, s + strlen(s) + 1);
  }
  msg.push_back(0);
  for (auto _ : state) {
    dbward::protocol::pg::FirstMessage m;
    benchmark::DoNotOptimize(dbward::protocol::pg::DecodeFirstMessage(msg, &m));
  }
}
BENCHMARK(BM_PgStartupDecode);

void BM_TdsPreloginParse(benchmark::State& state) {
  dbward::protocol::tds::Prelogin p;
  p.options = {{0, {16, 0, 3, 0xe8, 0, 0}}, {1, {1}}, {2, {0}}, {3, {0, 0, 0, 1}}, {4, {0}}};
  std::vector<uint8_t> payload = dbward::protocol::tds::EncodePrelogin(p);
  for (auto _ : state) {
    dbward::protocol::tds::Prelogin out;
    benchmark::DoNotOptimize(dbward::protocol::tds::ParsePrelogin(payload, &out));
  }
}
BENCHMARK(BM_TdsPreloginParse);

void BM_MysqlPacketDecode(benchmark::State& state) {
  std::vector<uint8_t> payload(200, 'x');
  std::vector<uint8_t> wire = dbward::protocol::mysql::EncodePacket(1, payload);
  for (auto _ : state) {
    dbward::protocol::mysql::Packet p;
    benchmark::DoNotOptimize(dbward::protocol::mysql::DecodePacket(wire, 65536, &p));
  }
}
BENCHMARK(BM_MysqlPacketDecode);

// Seal on one side and open on the other, record by record (AES-GCM).
void BM_TlsRecordTransform(benchmark::State& state) {
  const char* certs = getenv("DBWARD_TEST_CERTS");
  if (certs == nullptr) {
    state.SkipWithError("set DBWARD_TEST_CERTS (tests/gen-test-certs.sh DIR)");
    return;
  }
  std::string dir = certs;
  std::string error;
  dbward::tls::LoadError load;
  dbward::tls::ServerOptions so;
  so.cert = {dir + "/server.pem", dir + "/server.key", ""};
  auto server_ctx = dbward::tls::Context::NewServer(so, &load);
  dbward::tls::ClientOptions co;
  co.ca_file = dir + "/ca.pem";
  auto client_ctx = dbward::tls::Context::NewClient(co, &load);
  std::deque<uint8_t> c2s, s2c;
  Pipe client_io(&s2c, &c2s), server_io(&c2s, &s2c);
  auto client = dbward::tls::Connection::NewClient(client_ctx, "localhost", &client_io, &error);
  auto server = dbward::tls::Connection::NewServer(server_ctx, &server_io, &error);
  for (int i = 0; i < 10 && !(client->handshake_done() && server->handshake_done()); i++) {
    client->Handshake();
    server->Handshake();
  }
  std::vector<uint8_t> data(static_cast<size_t>(state.range(0)), 0x5a), sink(65536);
  for (auto _ : state) {
    client->Write(data);
    size_t got = 0;
    while (got < data.size()) {
      IoResult r = server->Read(sink);
      if (!r.ok()) break;
      got += r.n;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_TlsRecordTransform)->Arg(512)->Arg(16384);

}  // namespace

BENCHMARK_MAIN();
