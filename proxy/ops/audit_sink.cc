#include "proxy/ops/audit_sink.h"

#include <cerrno>
#include <cstring>

namespace dbward::proxy {

bool AuditSink::Open(const std::string& target, std::string* error) {
  if (target == "off") return true;
  if (target == "stdout") {
    out_ = stdout;
  } else if (target == "stderr") {
    out_ = stderr;
  } else {
    out_ = fopen(target.c_str(), "ae");
    if (out_ == nullptr) {
      *error = "cannot open audit file " + target + ": " + strerror(errno);
      return false;
    }
    owns_ = true;
  }
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  return true;
}

void AuditSink::Emit(const AuditEvent& event) {
  if (!running_) return;
  std::string line = FormatAuditLine(event);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      dropped_++;
      return;
    }
    queue_.push_back(std::move(line));
  }
  cv_.notify_one();
}

void AuditSink::Run() {
  std::deque<std::string> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      batch.swap(queue_);
      if (batch.empty() && stop_) return;
    }
    for (const auto& line : batch) {
      fwrite(line.data(), 1, line.size(), out_);
      fputc('\n', out_);
    }
    fflush(out_);
    batch.clear();
  }
}

void AuditSink::Close() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  thread_.join();
  running_ = false;
  if (owns_) fclose(out_);
  out_ = nullptr;
}

AuditSink& Audit() {
  static AuditSink sink;
  return sink;
}

}  // namespace dbward::proxy
