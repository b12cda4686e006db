/* replay_main.c — runs a libFuzzer target over every file of a corpus directory (and any
 * files named on the command line), so the seed corpus and every regression input are
 * exercised in the normal (gcc, sanitizer) test builds without libFuzzer.
 * Exit status 0 when every input ran; the target itself aborts (sanitizers) on a bug. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return 1; }
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return 1; }
  long n = ftell(f);
  if (n < 0) { fclose(f); return 1; }
  rewind(f);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf) { fclose(f); return 1; }
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int ran = 0, bad = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) { fprintf(stderr, "replay: missing %s\n", argv[i]); bad++; continue; }
    if (S_ISDIR(st.st_mode)) {
      DIR *d = opendir(argv[i]);
      if (!d) { bad++; continue; }
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
        bad += run_file(path);
        ran++;
      }
      closedir(d);
    } else {
      bad += run_file(argv[i]);
      ran++;
    }
  }
  /* always also run the empty input */
  LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
  printf("replay: %d inputs, %d unreadable\n", ran, bad);
  return bad ? 1 : 0;
}
