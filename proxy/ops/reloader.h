// Reloads certificates, keys and CA files without dropping sessions: on
// SIGHUP, and when any of the files changes on disk (Kubernetes updates a
// mounted Secret by swapping a symlink, which changes the inode behind the
// path). A new file that does not load keeps the old material and says why.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/common/config.h"
#include "proxy/ops/runtime.h"

namespace dbward::proxy {

class Reloader {
 public:
  Reloader(const Config& config, std::vector<ListenerRuntime*> listeners);
  // force: reload even if no file changed (SIGHUP).
  void Check(bool force);
  uint64_t reloads() const { return reloads_; }
  uint64_t failures() const { return failures_; }

 private:
  struct FileState {
    std::string path;
    ino_t inode = 0;
    int64_t mtime_ns = 0;
    int64_t size = -1;
    bool operator==(const FileState& o) const {
      return inode == o.inode && mtime_ns == o.mtime_ns && size == o.size;
    }
  };
  static FileState Stat(const std::string& path);

  const Config& config_;
  std::vector<ListenerRuntime*> listeners_;
  std::vector<std::vector<FileState>> states_;  // per listener
  uint64_t reloads_ = 0;
  uint64_t failures_ = 0;
};

}  // namespace dbward::proxy
