/* nc-sandbox — the sandbox launcher spawned by nc_sandbox_run (core/nc_sandbox.h).
 *
 * Not meant to be run by hand. The caller (a service process holding gRPC/LMDB state)
 * posix_spawns this small program instead of forking itself. It:
 *
 *   1. closes every fd beyond the ones below, calls setsid();
 *   2. drops to the pool uid/gid (setgroups(0), setresgid, setresuid) and verifies it;
 *   3. sets PR_SET_PDEATHSIG(SIGKILL) (after the uid change, which would clear it) and checks
 *      the parent is still the caller, PR_SET_CHILD_SUBREAPER (so every orphan of the run is
 *      re-parented here and reaped, even where pid 1 does not reap) and PR_SET_NO_NEW_PRIVS;
 *   4. forks bubblewrap with the rlimits applied (RLIMIT_AS last, right before execve);
 *   5. waits for bubblewrap to exit, or for SIGTERM from the caller (timeout/cancel);
 *   6. kills every process of the pool uid (kill(-1, SIGKILL) as that uid: only this run's
 *      processes can have it), reaps all descendants until ECHILD, and only then writes one
 *      status line to fd 3 and exits.
 *
 * Command line (all options required, each once, except --file which repeats):
 *   nc-sandbox --ppid P --uid U --gid G --bwrap PATH --python PATH --cpu-s N --as BYTES
 *              --fsize BYTES --nofile N --nproc N --tmp BYTES --work BYTES --shm BYTES
 *              [--file NAME]...
 * File descriptors on entry:
 *   0 stdin of the program (a memfd or /dev/null)   1 stdout pipe   2 stderr pipe
 *   3 status pipe (write end, to the caller)        4 seccomp BPF program (memfd)
 *   5 main.py (memfd)                               6.. one memfd per --file, in order
 * Status line on fd 3 (exactly one):
 *   "ok exec=E exit=X killed=K maxrss_kb=R\n"   E=1 when bubblewrap reported the program's
 *       exit code X (it got as far as exec), K=1 when the run was stopped by SIGTERM;
 *   "err MESSAGE\n"                             the sandbox could not be set up.
 * Exit status: 0 after a status line, 2 for usage errors (with an "err" line when fd 3 is
 * usable). _exit is used throughout: nothing to flush, and no leak checker may run after
 * the uid change.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nc_sandbox.h"

#define STATUS_FD 3
#define SECCOMP_FD 4
#define CODE_FD 5
#define FIRST_FILE_FD 6
#define JSON_CAP 4096

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void status_line(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  write_all(STATUS_FD, buf, (size_t)n);
}

static _Noreturn void fail(int code, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  status_line("err %s", msg);
  _exit(code);
}

struct opts {
  long long ppid, uid, gid, cpu_s, as, fsize, nofile, nproc, tmp, work, shm;
  const char *bwrap, *python;
  const char *files[NC_SANDBOX_MAX_FILES];
  int nfiles;
};

static long long parse_num(const char *opt, const char *s, long long lo, long long hi) {
  if (!s || !*s || *s < '0' || *s > '9') fail(2, "bad arguments: %s needs a number", opt);
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < (unsigned long long)lo || v > (unsigned long long)hi)
    fail(2, "bad arguments: %s out of range", opt);
  return (long long)v;
}

static void parse_args(int argc, char **argv, struct opts *o) {
  memset(o, 0, sizeof *o);
  struct {
    const char *name;
    long long *dst;
    long long lo, hi;
  } nums[] = {
      {"--ppid", &o->ppid, 1, INT_MAX},
      {"--uid", &o->uid, 1, UINT32_MAX - 1},
      {"--gid", &o->gid, 1, UINT32_MAX - 1},
      {"--cpu-s", &o->cpu_s, 1, 1 << 20},
      {"--as", &o->as, NC_SANDBOX_MIN_MEMORY, 1ll << 40},
      {"--fsize", &o->fsize, 4096, 1ll << 40},
      {"--nofile", &o->nofile, 16, 4096},
      {"--nproc", &o->nproc, 8, 4096},
      {"--tmp", &o->tmp, 4096, 1ll << 40},
      {"--work", &o->work, 4096, 1ll << 40},
      {"--shm", &o->shm, 4096, 1ll << 40},
  };
  const size_t nnums = sizeof nums / sizeof nums[0];
  unsigned seen = 0;
  for (int i = 1; i < argc; i += 2) {
    const char *k = argv[i], *v = (i + 1 < argc) ? argv[i + 1] : NULL;
    if (!v) fail(2, "bad arguments: %s has no value", k);
    if (strcmp(k, "--file") == 0) {
      if (o->nfiles >= NC_SANDBOX_MAX_FILES) fail(2, "bad arguments: too many files");
      if (!nc_sandbox_valid_filename(v)) fail(2, "bad arguments: bad file name");
      o->files[o->nfiles++] = v;
      continue;
    }
    if (strcmp(k, "--bwrap") == 0 || strcmp(k, "--python") == 0) {
      const char **dst = k[2] == 'b' ? &o->bwrap : &o->python;
      unsigned bit = k[2] == 'b' ? 1u << 20 : 1u << 21;
      if (seen & bit) fail(2, "bad arguments: %s twice", k);
      seen |= bit;
      *dst = v;
      continue;
    }
    size_t j = 0;
    while (j < nnums && strcmp(k, nums[j].name) != 0) j++;
    if (j == nnums) fail(2, "bad arguments: unknown option");
    if (seen & (1u << j)) fail(2, "bad arguments: %s twice", k);
    seen |= 1u << j;
    *nums[j].dst = parse_num(k, v, nums[j].lo, nums[j].hi);
  }
  if (seen != (((1u << nnums) - 1) | (1u << 20) | (1u << 21)))
    fail(2, "bad arguments: missing option");
  if (o->bwrap[0] != '/') fail(2, "bad arguments: bwrap path must be absolute");
  if (strncmp(o->python, "/usr/", 5) != 0 || strstr(o->python, "/../"))
    fail(2, "bad arguments: python must be under /usr/");
  for (int a = 0; a < o->nfiles; a++)
    for (int b = a + 1; b < o->nfiles; b++)
      if (strcmp(o->files[a], o->files[b]) == 0) fail(2, "bad arguments: duplicate file");
}

/* Arguments for bubblewrap. Numbers are formatted into `num` (kept alive by the caller). */
#define MAX_ARGS (96 + 3 * NC_SANDBOX_MAX_FILES)
static void build_bwrap_argv(const struct opts *o, int json_fd, char num[][32],
                             char path[][NC_SANDBOX_NAME_MAX + 8], const char **av) {
  int n = 0, k = 0;
#define A(x) (av[n++] = (x))
#define NUM(v) (snprintf(num[k], 32, "%lld", (long long)(v)), num[k++])
  A(o->bwrap);
  A("--unshare-all");  /* user, mount, pid, net, ipc, uts, cgroup */
  A("--unshare-user"); /* explicit, required by --disable-userns */
  A("--disable-userns");
  A("--die-with-parent");
  A("--new-session");
  A("--clearenv");
  A("--setenv"), A("PATH"), A("/usr/bin:/bin");
  A("--hostname"), A("sandbox");
  A("--ro-bind"), A("/usr"), A("/usr");
  A("--symlink"), A("usr/bin"), A("/bin");
  A("--symlink"), A("usr/sbin"), A("/sbin");
  A("--symlink"), A("usr/lib"), A("/lib");
  A("--symlink"), A("usr/lib64"), A("/lib64");
  A("--proc"), A("/proc");
  A("--dev"), A("/dev");
  A("--size"), A(NUM(o->shm)), A("--tmpfs"), A("/dev/shm");
  A("--size"), A(NUM(o->tmp)), A("--tmpfs"), A("/tmp");
  A("--size"), A(NUM(o->work)), A("--tmpfs"), A("/work");
  A("--file"), A(NUM(CODE_FD)), A("/work/main.py");
  for (int i = 0; i < o->nfiles; i++) {
    snprintf(path[i], NC_SANDBOX_NAME_MAX + 8, "/work/%s", o->files[i]);
    A("--file"), A(NUM(FIRST_FILE_FD + i)), A(path[i]);
  }
  A("--remount-ro"), A("/dev");
  A("--remount-ro"), A("/");
  A("--chdir"), A("/work");
  A("--seccomp"), A(NUM(SECCOMP_FD));
  A("--json-status-fd"), A(NUM(json_fd));
  A("--");
  A(o->python);
  A("-I");
  A("/work/main.py");
  av[n] = NULL;
#undef A
#undef NUM
}

/* Parse `"exit-code": N` out of bubblewrap's JSON status stream; -1 when absent. */
static int json_exit_code(const char *js) {
  const char *p = strstr(js, "\"exit-code\"");
  if (!p) return -1;
  p += strlen("\"exit-code\"");
  while (*p == ' ' || *p == ':') p++;
  if (*p < '0' || *p > '9') return -1;
  long v = strtol(p, NULL, 10);
  return (v >= 0 && v <= 255) ? (int)v : -1;
}

int main(int argc, char **argv) {
  if (fcntl(STATUS_FD, F_GETFD) < 0) _exit(2); /* nowhere to report to */
  struct opts o;
  parse_args(argc, argv, &o);
  const int first_free = FIRST_FILE_FD + o.nfiles;
  for (int fd = 0; fd < first_free; fd++)
    if (fcntl(fd, F_GETFD) < 0) fail(2, "bad arguments: fd %d is not open", fd);
  if (close_range((unsigned)first_free, ~0u, 0) != 0) {
    for (int fd = first_free; fd < 4096; fd++) close(fd);
  }
  if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) != 0) fail(1, "fcntl: %s", strerror(errno));
  if (setsid() < 0) fail(1, "setsid: %s", strerror(errno));

  /* Drop to the pool uid. setgroups first: it needs CAP_SETGID, which setresuid drops. */
  if (setgroups(0, NULL) != 0)
    fail(1, "cannot drop supplementary groups: %s", strerror(errno));
  if (setresgid((gid_t)o.gid, (gid_t)o.gid, (gid_t)o.gid) != 0)
    fail(1, "cannot switch to gid %lld: %s", o.gid, strerror(errno));
  if (setresuid((uid_t)o.uid, (uid_t)o.uid, (uid_t)o.uid) != 0)
    fail(1, "cannot switch to uid %lld: %s", o.uid, strerror(errno));
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
      ru != (uid_t)o.uid || eu != ru || su != ru || rg != (gid_t)o.gid || eg != rg ||
      sg != rg || getgroups(0, NULL) != 0)
    fail(1, "uid/gid switch did not take effect");
  if (setuid(0) == 0) fail(1, "uid switch is reversible");

  /* The parent-death signal is cleared by the uid change, so set it now, then make sure the
   * caller did not die before it took effect. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail(1, "PR_SET_PDEATHSIG: %s", strerror(errno));
  if (getppid() != (pid_t)o.ppid) _exit(1);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
    fail(1, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    fail(1, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));

  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGQUIT);
  if (sigprocmask(SIG_BLOCK, &mask, &old) != 0) fail(1, "sigprocmask: %s", strerror(errno));
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail(1, "signalfd: %s", strerror(errno));
  int jp[2], ep[2];
  if (pipe2(jp, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0) fail(1, "pipe2: %s", strerror(errno));

  static char num[16 + NC_SANDBOX_MAX_FILES][32];
  static char path[NC_SANDBOX_MAX_FILES][NC_SANDBOX_NAME_MAX + 8];
  static const char *av[MAX_ARGS];
  build_bwrap_argv(&o, jp[1], num, path, av);
  char *envp[] = {(char *)"PATH=/usr/bin:/bin", NULL};
  const pid_t self = getpid();

  pid_t child = fork();
  if (child < 0) fail(1, "fork: %s", strerror(errno));
  if (child == 0) {
    /* bubblewrap's process. Everything here is async-signal-safe; no allocation after the
     * address-space limit is set. */
    int e = 0;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) e = errno;
    if (!e && getppid() != self) _exit(1);
    if (!e && fcntl(jp[1], F_SETFD, 0) != 0) e = errno;
    struct {
      int res;
      long long soft, hard;
    } lim[] = {
        {RLIMIT_CPU, o.cpu_s, o.cpu_s + 1}, {RLIMIT_FSIZE, o.fsize, o.fsize},
        {RLIMIT_NOFILE, o.nofile, o.nofile}, {RLIMIT_NPROC, o.nproc, o.nproc},
        {RLIMIT_CORE, 0, 0},                 {RLIMIT_MEMLOCK, 0, 0},
        {RLIMIT_MSGQUEUE, 0, 0},             {RLIMIT_AS, o.as, o.as},
    };
    sigset_t none;
    sigemptyset(&none);
    if (!e && sigprocmask(SIG_SETMASK, &none, NULL) != 0) e = errno;
    for (size_t i = 0; !e && i < sizeof lim / sizeof lim[0]; i++) {
      struct rlimit rl = {(rlim_t)lim[i].soft, (rlim_t)lim[i].hard};
      if (setrlimit(lim[i].res, &rl) != 0) e = errno;
    }
    if (!e) {
      execve(o.bwrap, (char *const *)av, envp);
      e = errno;
    }
    ssize_t w = write(ep[1], &e, sizeof e);
    (void)w;
    _exit(127);
  }
  close(jp[1]);
  close(ep[1]);
  int exec_errno = 0;
  ssize_t er;
  do er = read(ep[0], &exec_errno, sizeof exec_errno);
  while (er < 0 && errno == EINTR);
  close(ep[0]);
  if (er == (ssize_t)sizeof exec_errno) {
    kill(child, SIGKILL);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    fail(1, "cannot execute bwrap %s: %s", o.bwrap, strerror(exec_errno));
  }

  /* Only bubblewrap keeps the program's stdin/stdout/stderr. */
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    dup2(devnull, 0), dup2(devnull, 1), dup2(devnull, 2);
    close(devnull);
  } else {
    close(0), close(1), close(2);
  }
  for (int fd = SECCOMP_FD; fd < first_free; fd++) close(fd);

  char js[JSON_CAP + 1];
  size_t jlen = 0;
  int killed = 0, child_done = 0, json_open = 1;
  while (!child_done) {
    struct pollfd pf[2] = {{sfd, POLLIN, 0}, {jp[0], POLLIN, 0}};
    int pr = poll(pf, json_open ? 2 : 1, -1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) break;
    if (json_open && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      char tmp[512];
      ssize_t r = read(jp[0], tmp, sizeof tmp);
      if (r > 0) {
        size_t c = (size_t)r;
        if (c > JSON_CAP - jlen) c = JSON_CAP - jlen;
        memcpy(js + jlen, tmp, c);
        jlen += c;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        json_open = 0;
      }
    }
    if (pf[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo != SIGCHLD) killed = 1;
      }
      if (killed) break;
      /* Reap whatever exited (orphans are re-parented here too); note bubblewrap. */
      pid_t p;
      int st;
      while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == child) child_done = 1;
    }
  }
  /* bubblewrap is gone (or we were told to stop): collect the rest of its JSON status. */
  if (!killed && json_open) {
    int fl = fcntl(jp[0], F_GETFL);
    if (fl >= 0) fcntl(jp[0], F_SETFL, fl | O_NONBLOCK);
    for (;;) {
      char tmp[512];
      ssize_t r = read(jp[0], tmp, sizeof tmp);
      if (r > 0) {
        size_t c = (size_t)r;
        if (c > JSON_CAP - jlen) c = JSON_CAP - jlen;
        memcpy(js + jlen, tmp, c);
        jlen += c;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      break;
    }
  }
  js[jlen] = 0;

  /* Kill every process of this uid (only this run's processes can have it) and reap all
   * descendants. kill(-1) skips this process and anything we may not signal. */
  kill(-1, SIGKILL);
  for (;;) {
    pid_t p = waitpid(-1, NULL, 0);
    if (p > 0) continue;
    if (errno == EINTR) continue;
    break; /* ECHILD: nothing left */
  }
  struct rusage ru_c;
  long maxrss_kb = 0;
  if (getrusage(RUSAGE_CHILDREN, &ru_c) == 0) maxrss_kb = ru_c.ru_maxrss;
  int code = json_exit_code(js);
  status_line("ok exec=%d exit=%d killed=%d maxrss_kb=%ld", code >= 0, code, killed,
              maxrss_kb);
  _exit(0);
}
