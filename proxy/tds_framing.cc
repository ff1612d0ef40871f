#include "proxy/tds_framing.h"

#include <algorithm>
#include <cerrno>

#include "protocol/tds.h"

namespace dbward::proxy {

namespace tds = protocol::tds;

tls::IoResult PreloginFramingIo::Read(std::span<uint8_t> out) {
  while (in_remaining_ == 0) {
    tls::IoResult r = leg_->Read(std::span<uint8_t>(header_ + header_fill_, tds::kHeaderSize - header_fill_));
    if (!r.ok()) return r;
    header_fill_ += r.n;
    if (header_fill_ < tds::kHeaderSize) continue;
    header_fill_ = 0;
    tds::Header h;
    tds::Result res = tds::DecodeHeader(std::span<const uint8_t>(header_, tds::kHeaderSize), &h);
    if (res.status != tds::Status::kOk || h.type != tds::kPrelogin) {
      error_ = res.status != tds::Status::kOk ? res.error
                                              : "expected a PRELOGIN packet carrying TLS, got packet type " +
                                                    std::to_string(h.type);
      return tls::IoResult::Error(EPROTO);
    }
    in_remaining_ = h.length - tds::kHeaderSize;
  }
  size_t n = std::min(out.size(), in_remaining_);
  tls::IoResult r = leg_->Read(out.first(n));
  if (r.ok()) in_remaining_ -= r.n;
  return r;
}

tls::IoResult PreloginFramingIo::Write(std::span<const uint8_t> in) {
  if (!Flush()) return failed_ ? tls::IoResult::Error(error_code_) : tls::IoResult::WantWrite();
  size_t chunk = tds::kDefaultPacketSize - tds::kHeaderSize;
  for (size_t off = 0; off < in.size(); off += chunk) {
    size_t n = std::min(chunk, in.size() - off);
    tds::Header h;
    h.type = tds::kPrelogin;
    h.status = off + n == in.size() ? tds::kStatusEom : 0;
    h.length = static_cast<uint16_t>(n + tds::kHeaderSize);
    h.packet_id = packet_id_++;
    uint8_t hdr[tds::kHeaderSize];
    tds::EncodeHeader(h, hdr);
    out_.insert(out_.end(), hdr, hdr + tds::kHeaderSize);
    out_.insert(out_.end(), in.begin() + static_cast<ptrdiff_t>(off), in.begin() + static_cast<ptrdiff_t>(off + n));
  }
  Flush();  // what does not fit now goes out on the next Flush
  return tls::IoResult::Ok(in.size());
}

bool PreloginFramingIo::Flush() {
  while (!out_.empty()) {
    tls::IoResult r = leg_->Write(out_);
    if (r.kind == tls::IoResult::kError || r.kind == tls::IoResult::kEof) {
      failed_ = true;
      error_code_ = r.err != 0 ? r.err : EPIPE;
      out_.clear();
      return false;
    }
    if (!r.ok()) return false;
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(r.n));
  }
  return true;
}

}  // namespace dbward::proxy
