// The protocol-specific part of a session, before the relay starts: what to
// answer the client's first bytes, how to ask the backend for TLS, what to
// forward or rewrite until authentication is over. Handlers only move bytes
// through the session's staging buffers; the session owns every socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/config.h"

namespace dbward::proxy {

class Session;

class ProtocolHandler {
 public:
  virtual ~ProtocolHandler() = default;
  // Right after accept.
  virtual void OnStart(Session& s) = 0;
  // New bytes in s.client_in() (only while client reading is on).
  virtual void OnClientData(Session& /*s*/) {}
  // dbward's TLS handshake with the client completed.
  virtual void OnClientTlsReady(Session& /*s*/) {}
  // TCP to the backend is up (still plaintext).
  virtual void OnBackendConnected(Session& s) = 0;
  // The backend's certificate was validated and TLS is up.
  virtual void OnBackendTlsReady(Session& s) = 0;
  // New bytes in s.backend_in() (only while backend reading is on).
  virtual void OnBackendData(Session& /*s*/) {}
  // The protocol-native error message for the client when the session fails
  // before the relay (ErrorResponse, ERR packet, TDS ERROR token); empty when
  // the protocol has no way to say it and the connection is just closed.
  virtual std::vector<uint8_t> ErrorForClient(const std::string& /*message*/, const std::string& /*cause*/) {
    return {};
  }
  // The backend failed before the relay. A handler that can only report it
  // later in its protocol (TDS answers LOGIN7 with the error) returns true
  // and carries on with the client; the session has closed the backend.
  virtual bool OnBackendFailure(Session& /*s*/, const std::string& /*error*/) { return false; }
};

std::unique_ptr<ProtocolHandler> NewHandler(Protocol protocol);

}  // namespace dbward::proxy
