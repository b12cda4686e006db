/* nc_sandbox_policy.c — the seccomp allowlist, the extra-file name rule and the UTF-8
 * repair helper of nc_sandbox.h. The process side lives in nc_sandbox.c, the launcher in
 * core/bin/nc-sandbox.c. */
#include "nc_sandbox.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nc_err.h"

/* ---- extra-file names -------------------------------------------------------------------- */

int nc_sandbox_valid_filename(const char *name) {
  if (!name || !name[0] || name[0] == '.') return 0;
  size_t n = 0;
  for (const char *p = name; *p; p++, n++) {
    unsigned char c = (unsigned char)*p;
    if (n >= NC_SANDBOX_NAME_MAX) return 0;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return strcmp(name, "main.py") != 0;
}

/* ---- seccomp ----------------------------------------------------------------------------- */

/* Syscalls allowed without conditions. Names that do not exist on the build architecture
 * (e.g. "open" or "fork" on aarch64) are skipped at build time. Everything not listed here
 * or in the conditional rules below fails with EPERM: notably ptrace, process_vm_*, mount,
 * umount2, move_mount, fsopen/fsmount/fsconfig/fspick/open_tree, pivot_root, chroot,
 * unshare, setns, bpf, perf_event_open, userfaultfd, keyctl/add_key/request_key,
 * kexec_load/kexec_file_load, init_module/finit_module/delete_module, reboot, swapon/off,
 * memfd_create, memfd_secret, io_uring_*, io_setup & co, SysV shm/sem/msg, mq_*, mknod,
 * setuid & co, capset, chown & co, setxattr & co, personality, modify_ldt, iopl/ioperm,
 * sync/syncfs, mlock*, inotify/fanotify, name_to_handle_at/open_by_handle_at, pidfd_getfd,
 * kcmp, vmsplice, settimeofday/clock_settime/adjtimex, sethostname, seccomp, landlock_*. */
static const char *const k_allow[] = {
    /* file I/O */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "creat", "close", "close_range",
    "lseek", "_llseek", "stat", "fstat", "lstat", "newfstatat", "fstatat64", "statx",
    "stat64", "fstat64", "lstat64", "statfs", "fstatfs", "statfs64", "fstatfs64", "access",
    "faccessat", "faccessat2", "fcntl", "fcntl64", "flock", "fsync", "fdatasync",
    "ftruncate", "truncate", "ftruncate64", "truncate64", "fallocate", "fadvise64",
    "fadvise64_64", "readahead", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
    "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat",
    "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat", "chmod",
    "fchmod", "fchmodat", "umask", "utime", "utimes", "utimensat", "futimesat",
    "getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
    "sendfile", "sendfile64", "copy_file_range", "splice", "tee", "pipe", "pipe2", "dup",
    "dup2", "dup3",
    /* polling, events, timers */
    "select", "_newselect", "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1",
    "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
    "signalfd", "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime",
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday",
    "time", "getitimer", "setitimer", "alarm", "pause", "timer_create", "timer_settime",
    "timer_gettime", "timer_getoverrun", "timer_delete",
    /* memory */
    "mmap", "mmap2", "munmap", "mprotect", "mremap", "brk", "madvise", "msync", "mincore",
    "mbind", "get_mempolicy", "set_mempolicy", "membarrier",
    /* signals */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigsuspend", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill", "tkill",
    "tgkill", "restart_syscall",
    /* processes and threads (clone is conditional, below) */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_waitv", "rseq",
    "arch_prctl", "prctl", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid",
    "getpgrp", "getpgid", "setpgid", "getsid", "setsid", "getuid", "geteuid", "getgid",
    "getegid", "getresuid", "getresgid", "getgroups", "capget", "getrlimit", "setrlimit",
    "prlimit64", "ugetrlimit", "getrusage", "times", "getpriority", "setpriority",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_getattr", "getcpu",
    /* system info */
    "uname", "sysinfo", "getrandom",
    /* sockets: creation is conditional (AF_UNIX only), the rest only ever sees AF_UNIX fds */
    "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername",
    "setsockopt", "getsockopt",
};

/* ioctl requests allowed (compared on the low 32 bits). Anything else, notably TIOCSTI
 * and TIOCLINUX, fails with EPERM; isatty() then reports "not a tty", which is the truth. */
static const unsigned long k_ioctl_allow[] = {TCGETS, TIOCGWINSZ, TIOCGPGRP, FIONREAD,
                                              FIONBIO, FIOCLEX, FIONCLEX};

#define NC_NS_CLONE_FLAGS                                                                \
  ((uint64_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
              CLONE_NEWNET | CLONE_NEWCGROUP))

static int add_rules(scmp_filter_ctx ctx) {
  int rc;
  for (size_t i = 0; i < sizeof k_allow / sizeof k_allow[0]; i++) {
    int nr = seccomp_syscall_resolve_name(k_allow[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not a syscall on this architecture */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (rc < 0) return rc;
  }
  /* socket/socketpair: AF_UNIX only; every other family gets EACCES. */
  rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                        SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  if (rc < 0) return rc;
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                        SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  if (rc < 0) return rc;
  rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                        SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  if (rc < 0) return rc;
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socketpair), 1,
                        SCMP_A0(SCMP_CMP_NE, AF_UNIX));
  if (rc < 0) return rc;
  /* clone: only without namespace flags (argument 0 is the flags word on x86-64 and
   * aarch64). clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes
   * glibc fall back to clone. */
  rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                        SCMP_A0(SCMP_CMP_MASKED_EQ, NC_NS_CLONE_FLAGS, 0));
  if (rc < 0) return rc;
  rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc < 0) return rc;
  for (size_t i = 0; i < sizeof k_ioctl_allow / sizeof k_ioctl_allow[0]; i++) {
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffull, k_ioctl_allow[i]));
    if (rc < 0) return rc;
  }
  return 0;
}

int nc_sandbox_seccomp_bpf(uint8_t **bpf, size_t *len) {
  if (!bpf || !len) return NC_EINVAL;
  *bpf = NULL;
  *len = 0;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (!ctx) return NC_ENOMEM;
  int err = NC_EINTERNAL;
  int fd = -1;
  /* Foreign-architecture syscalls (i386 int 0x80, x32) kill the process. */
  if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) < 0) goto out;
  if (add_rules(ctx) < 0) goto out;
  fd = memfd_create("nc-seccomp", MFD_CLOEXEC);
  if (fd < 0) {
    err = NC_EIO;
    goto out;
  }
  if (seccomp_export_bpf(ctx, fd) < 0) goto out;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 20)) goto out;
  uint8_t *buf = malloc((size_t)st.st_size);
  if (!buf) {
    err = NC_ENOMEM;
    goto out;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(buf);
      err = NC_EIO;
      goto out;
    }
    got += (size_t)r;
  }
  *bpf = buf;
  *len = got;
  err = NC_OK;
out:
  if (fd >= 0) close(fd);
  seccomp_release(ctx);
  return err;
}

/* ---- UTF-8 repair ------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is invalid/truncated. */
static size_t utf8_seq(const uint8_t *s, size_t n) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0; /* overlong */
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                           /* surrogate */
  if (cp > 0x10FFFF) return 0;
  return len;
}

int nc_sandbox_utf8_sanitize(const uint8_t *in, size_t n, char **out, size_t *out_len) {
  if (!out || !out_len || (!in && n > 0)) return NC_EINVAL;
  *out = NULL;
  *out_len = 0;
  if (n > (SIZE_MAX - 1) / 3) return NC_ENOMEM;
  char *buf = malloc(n * 3 + 1); /* each bad byte becomes 3 bytes (U+FFFD) at most */
  if (!buf) return NC_ENOMEM;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq(in + i, n - i);
    if (l) {
      memcpy(buf + o, in + i, l);
      o += l;
      i += l;
    } else {
      buf[o++] = (char)0xEF;
      buf[o++] = (char)0xBF;
      buf[o++] = (char)0xBD;
      i++;
    }
  }
  buf[o] = 0;
  *out = buf;
  *out_len = o;
  return NC_OK;
}
