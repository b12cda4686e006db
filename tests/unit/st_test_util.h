// st_test_util.h — helpers for the safetensors and checkpoint tests: file bytes as strings,
// crafting safetensors files from a header string and a data blob. Header-only, C++.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace stt {

using nctest::rm_rf;
using nctest::TempDir;

inline std::string read_file(const std::string &p) {
  std::string s;
  FILE *f = fopen(p.c_str(), "rb");
  if (!f) return s;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  fclose(f);
  return s;
}

inline bool write_file(const std::string &p, const std::string &s) {
  FILE *f = fopen(p.c_str(), "wb");
  if (!f) return false;
  bool ok = fwrite(s.data(), 1, s.size(), f) == s.size();
  return fclose(f) == 0 && ok;
}

inline std::vector<std::string> list_dir(const std::string &p) {
  std::vector<std::string> v;
  DIR *d = opendir(p.c_str());
  if (!d) return v;
  while (struct dirent *e = readdir(d))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) v.push_back(e->d_name);
  closedir(d);
  return v;
}

// A safetensors file: 8-byte little-endian N, the header (padded with spaces to a multiple
// of 8 when pad), then data.
inline std::string craft(const std::string &header, const std::string &data, bool pad = true) {
  std::string h = header;
  if (pad)
    while (h.size() % 8) h += ' ';
  uint64_t n = h.size();
  std::string out(reinterpret_cast<const char *>(&n), 8);
  return out + h + data;
}

// Splits a file into (header, data); false when it is not even well-formed in size.
inline bool split(const std::string &file, std::string *header, std::string *data) {
  if (file.size() < 8) return false;
  uint64_t n;
  memcpy(&n, file.data(), 8);
  if (n > file.size() - 8) return false;
  *header = file.substr(8, n);
  *data = file.substr(8 + n);
  return true;
}

inline void replace_once(std::string &s, const std::string &a, const std::string &b) {
  size_t p = s.find(a);
  if (p != std::string::npos) s.replace(p, a.size(), b);
}

}  // namespace stt
