#include "proxy/engine/tds_framing.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/tds.h"

namespace dbward::proxy {

namespace tds = protocol::tds;

tls::IoResult PreloginFramingIo::Read(std::span<uint8_t> out) {
  while (in_remaining_ == 0) {
    tls::IoResult r = raw_->Read(std::span<uint8_t>(header_ + header_fill_, tds::kHeaderSize - header_fill_));
    if (r.kind == tls::IoResult::kEof) error_ = "the server closed the connection";
    if (!r.ok()) return r;
    header_fill_ += r.n;
    if (header_fill_ < tds::kHeaderSize) continue;
    header_fill_ = 0;
    tds::Header h;
    tds::Result res = tds::DecodeHeader(std::span<const uint8_t>(header_, tds::kHeaderSize), &h);
    if (res.status != tds::Status::kOk) {
      error_ = "malformed TDS packet header during the TLS handshake: " + res.error;
      return tls::IoResult::Error(EPROTO);
    }
    if (h.type != tds::kPrelogin) {
      error_ = "expected a PRELOGIN packet carrying TLS, got TDS packet type " + std::to_string(h.type);
      return tls::IoResult::Error(EPROTO);
    }
    in_remaining_ = h.length - tds::kHeaderSize;
  }
  size_t n = std::min(out.size(), in_remaining_);
  tls::IoResult r = raw_->Read(out.first(n));
  if (r.ok()) in_remaining_ -= r.n;
  return r;
}

tls::IoResult PreloginFramingIo::Write(std::span<const uint8_t> in) {
  if (!Flush()) return failed_ ? tls::IoResult::Error(error_code_) : tls::IoResult::WantWrite();
  // One PRELOGIN message per write: BoringSSL hands over a whole flight at a
  // time, which is how drivers and SQL Server send it.
  std::vector<uint8_t> framed = tds::EncodeMessage(tds::kPrelogin, in);
  out_.insert(out_.end(), framed.begin(), framed.end());
  Flush();  // what does not fit now goes out on the next Flush
  return tls::IoResult::Ok(in.size());
}

bool PreloginFramingIo::Flush() {
  while (!out_.empty()) {
    tls::IoResult r = raw_->Write(out_);
    if (r.kind == tls::IoResult::kError || r.kind == tls::IoResult::kEof) {
      failed_ = true;
      error_code_ = r.err != 0 ? r.err : EPIPE;
      error_ = std::string("lost the connection while sending: ") + strerror(error_code_);
      out_.clear();
      return false;
    }
    if (!r.ok()) return false;
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(r.n));
  }
  return true;
}

}  // namespace dbward::proxy
