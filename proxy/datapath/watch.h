// Readiness of one socket: a libuv poll handle that outlives nobody. Its
// memory is freed in its own close callback (libuv's rule for handle memory),
// so whoever owns the socket can close the watch and move on without waiting,
// and no callback reaches a handler after Close().
#pragma once

#include <uv.h>

namespace dbward::proxy {

class Watch {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // status < 0: a socket error (libuv has stopped the poll; interest is
    // re-armed by the next Want). events: UV_READABLE | UV_WRITABLE | UV_DISCONNECT.
    virtual void OnSocketEvent(Watch* watch, int status, int events) = 0;
  };

  // Null when libuv cannot watch fd.
  static Watch* Open(uv_loop_t* loop, int fd, Handler* handler);
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  void SetHandler(Handler* handler) { handler_ = handler; }
  // Starts, changes or stops interest (0); a no-op when it is already that.
  void Want(int events);
  int wanted() const { return events_; }
  // Stops watching; the memory goes in the close callback.
  void Close();

 private:
  Watch() = default;
  ~Watch() = default;
  static void OnPoll(uv_poll_t* poll, int status, int events);

  uv_poll_t poll_;
  Handler* handler_ = nullptr;
  int events_ = 0;
};

}  // namespace dbward::proxy
