// For the tests' small HTTP servers: a TCP listener on 127.0.0.1 at a port the system picks.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

namespace wharf {

struct LoopbackListener {
  int fd = -1;
  uint16_t port = 0;
};

inline LoopbackListener ListenOnLoopback() {
  LoopbackListener out;
  out.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(out.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(out.fd, 8);
  socklen_t len = sizeof addr;
  ::getsockname(out.fd, reinterpret_cast<sockaddr*>(&addr), &len);
  out.port = ntohs(addr.sin_port);
  return out;
}

}  // namespace wharf
