// store_test_util.h — helpers shared by test_store*.cc and test_jobs*.cc (temp dirs, file
// bytes, building chat messages and events).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fs_test_util.h"

extern "C" {
#include "nc_err.h"
#include "nc_store.h"
}

namespace nctest {

inline std::vector<uint8_t> read_file(const std::string &p) {
  std::vector<uint8_t> out;
  FILE *f = fopen(p.c_str(), "rb");
  if (!f) return out;
  uint8_t buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  fclose(f);
  return out;
}

inline bool write_file(const std::string &p, const std::vector<uint8_t> &d) {
  FILE *f = fopen(p.c_str(), "wb");
  if (!f) return false;
  bool ok = d.empty() || fwrite(d.data(), 1, d.size(), f) == d.size();
  return fclose(f) == 0 && ok;
}

inline bool copy_file(const std::string &from, const std::string &to) {
  return write_file(to, read_file(from));
}

inline nc_store *open_store(const std::string &dir, uint64_t map = 0, uint32_t max_msgs = 0,
                            uint64_t max_bytes = 0) {
  nc_store_opts o = {};
  o.dir = dir.c_str();
  o.map_size = map;
  o.max_session_messages = max_msgs;
  o.max_session_bytes = max_bytes;
  nc_store *s = nullptr;
  int rc = nc_store_open(&o, &s);
  if (rc) fprintf(stderr, "nc_store_open(%s): %s\n", dir.c_str(), nc_store_last_error());
  return s;
}

// A user message with text content (owns its string).
struct Msg {
  Nanochat__V1__ChatMessage m = NANOCHAT__V1__CHAT_MESSAGE__INIT;
  std::string text;
  explicit Msg(const std::string &t, Nanochat__V1__Role role = NANOCHAT__V1__ROLE__ROLE_USER)
      : text(t) {
    m.has_role = 1;
    m.role = role;
    m.content = (char *)text.c_str();
  }
  Msg(const Msg &) = delete;
};

// A job event built on the stack (owns its message string).
struct Ev {
  Nanochat__V1__JobEvent e = NANOCHAT__V1__JOB_EVENT__INIT;
  Nanochat__V1__Progress p = NANOCHAT__V1__PROGRESS__INIT;
  std::string msg;
  Ev(Nanochat__V1__EventKind kind, const std::string &m = "", int64_t step = -1) : msg(m) {
    e.has_kind = 1;
    e.kind = kind;
    if (!msg.empty()) e.message = (char *)msg.c_str();
    if (step >= 0) {
      p.has_step = 1;
      p.step = step;
      e.progress = &p;
    }
  }
  Ev(const Ev &) = delete;
};

inline std::string job_id_str(int i) {
  char b[NC_JOB_ID_LEN + 1];
  snprintf(b, sizeof b, "%016x", i);
  return b;
}

}  // namespace nctest
