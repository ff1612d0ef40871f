#include "proxy/ops/reloader.h"

#include <sys/stat.h>

#include "proxy/common/log.h"

namespace dbward::proxy {

Reloader::Reloader(const Config& config, std::vector<ListenerRuntime*> listeners)
    : config_(config), listeners_(std::move(listeners)) {
  for (ListenerRuntime* l : listeners_) {
    std::vector<FileState> states;
    for (const std::string& f : TlsFiles(l->config)) states.push_back(Stat(f));
    states_.push_back(std::move(states));
  }
}

Reloader::FileState Reloader::Stat(const std::string& path) {
  FileState s;
  s.path = path;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) {  // follows symlinks: a swapped link shows a new inode
    s.inode = st.st_ino;
    s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    s.size = st.st_size;
  }
  return s;
}

void Reloader::Check(bool force) {
  for (size_t i = 0; i < listeners_.size(); i++) {
    ListenerRuntime* l = listeners_[i];
    std::vector<FileState> now;
    std::string changed;
    for (const std::string& f : TlsFiles(l->config)) now.push_back(Stat(f));
    for (size_t k = 0; k < now.size(); k++) {
      if (!(now[k] == states_[i][k])) changed += (changed.empty() ? "" : ", ") + now[k].path;
    }
    if (!force && changed.empty()) continue;
    states_[i] = now;
    std::shared_ptr<const TlsMaterial> previous = l->tls();
    std::shared_ptr<const TlsMaterial> fresh;
    ConfigError error;
    if (!BuildTlsMaterial(config_, l->config, previous.get(), &fresh, &error)) {
      failures_++;
      // All or nothing: a CA file that loads fine is not taken alone while
      // a key beside it fails, so say exactly what is in use.
      LOG_ERROR("listener={} reload failed, keeping the previous certificates, keys and CAs of every file: {}; "
                "changed but not taken: {}; they are taken together once the failing file loads",
                l->config.name, error.ToString(), changed.empty() ? std::string("(SIGHUP, none changed)") : changed);
      continue;
    }
    l->SetTls(std::move(fresh));
    reloads_++;
    LOG_INFO("listener={} reloaded TLS material ({}); open sessions keep theirs", l->config.name,
             changed.empty() ? "SIGHUP" : changed);
  }
}

}  // namespace dbward::proxy
