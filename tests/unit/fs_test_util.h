// fs_test_util.h — file-system helpers shared by the unit tests: recursive removal and a
// temporary directory removed at scope exit. Header-only, C++.
#pragma once

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace nctest {

inline void rm_rf(const std::string &path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path.c_str());
    if (d) {
      while (struct dirent *e = readdir(d)) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        rm_rf(path + "/" + e->d_name);
      }
      closedir(d);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

// A fresh directory removed at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/nc_test_XXXXXX";
    char *p = mkdtemp(tmpl);
    path = p ? p : "";
  }
  ~TempDir() { rm_rf(path); }
  std::string sub(const char *name) const { return path + "/" + name; }
  std::string operator/(const std::string &name) const { return path + "/" + name; }
};

}  // namespace nctest
