#include "proxy/datapath/watch.h"

namespace dbward::proxy {

Watch* Watch::Open(uv_loop_t* loop, int fd, Handler* handler) {
  auto* w = new Watch;
  if (uv_poll_init_socket(loop, &w->poll_, fd) != 0) {
    delete w;
    return nullptr;
  }
  w->poll_.data = w;
  w->handler_ = handler;
  return w;
}

void Watch::Want(int events) {
  if (events == events_) return;
  events_ = events;
  if (events == 0) {
    uv_poll_stop(&poll_);
  } else {
    uv_poll_start(&poll_, events, OnPoll);
  }
}

void Watch::OnPoll(uv_poll_t* poll, int status, int events) {
  auto* self = static_cast<Watch*>(poll->data);
  // libuv stops the poll on an error: forget the cached interest so the next
  // Want re-arms it.
  if (status < 0) self->events_ = 0;
  if (self->handler_ != nullptr) self->handler_->OnSocketEvent(self, status, events);
}

void Watch::Close() {
  handler_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_), [](uv_handle_t* h) { delete static_cast<Watch*>(h->data); });
}

}  // namespace dbward::proxy
