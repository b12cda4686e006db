// Helpers for service unit tests: a tiny protobuf wire encoder, so tests can build requests
// that protobuf-c itself would never produce (embedded NULs, invalid UTF-8, bad enums).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace wire {

inline void varint(std::string &o, uint64_t v) {
  while (v >= 0x80) {
    o.push_back((char)(v | 0x80));
    v >>= 7;
  }
  o.push_back((char)v);
}
inline void tag(std::string &o, uint32_t field, uint32_t type) { varint(o, (uint64_t)field << 3 | type); }
// length-delimited field (string, bytes, sub-message)
inline std::string ld(uint32_t field, const std::string &payload) {
  std::string o;
  tag(o, field, 2);
  varint(o, payload.size());
  o += payload;
  return o;
}
inline std::string vi(uint32_t field, uint64_t v) {
  std::string o;
  tag(o, field, 0);
  varint(o, v);
  return o;
}
// negative int32 values are sign-extended to 64 bits on the wire
inline std::string vi_signed(uint32_t field, int64_t v) { return vi(field, (uint64_t)v); }
inline std::string f32(uint32_t field, float f) {
  std::string o;
  tag(o, field, 5);
  char b[4];
  memcpy(b, &f, 4);
  o.append(b, 4);
  return o;
}

}  // namespace wire
