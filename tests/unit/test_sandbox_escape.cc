// The sandbox escape/abuse suite (T-SBX in specs/faults.md, rows 31-38): each case is its own
// test with the expected errno or result. Runs real model-style programs through
// nc_sandbox_run. Skips loudly (GTEST_SKIP) only where user namespaces are impossible; the
// fail-closed cases live in test_sandbox.cc and never skip.
//
// Network rule: these tests never send traffic to any non-loopback address. The only
// listeners are the test's own 127.0.0.1 / ::1 / abstract-unix sockets.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fstream>
#include <set>

#include "sandbox_test_util.h"

using namespace sbxtest;

class Escape : public SandboxTest {
 protected:
  // After every run: nothing of the run's uid is left and no child of ours remains.
  void expect_clean(const Outcome &x) {
    ASSERT_NE(x.uid, 0u);
    EXPECT_EQ(uid_procs_quiescent(x.uid), 0) << "processes of uid " << x.uid << " remain";
    EXPECT_EQ(count_children(), 0) << "launcher or bwrap not reaped";
  }
};

// ---- time and processes (rows 31, 33) ---------------------------------------------------

TEST_F(Escape, InfiniteLoopKilledAtTimeout) {
  Opts o;
  o.timeout_ms = 1000;
  Outcome x = exec(sb_, "while True:\n    pass\n", o);
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  EXPECT_TRUE(x.timed_out);
  EXPECT_FALSE(x.success);
  EXPECT_EQ(x.exit_code, -1);
  EXPECT_EQ(x.error, "timed out after 1.000 s");
  expect_clean(x);
}

TEST_F(Escape, BusyChildrenKilledAtTimeout) {
  Opts o;
  o.timeout_ms = 1500;
  Outcome x = exec(sb_,
                   "import os\n"
                   "for _ in range(4):\n"
                   "    if os.fork() == 0:\n"
                   "        os.setsid()\n"  // leave the process group: must still die
                   "        while True: pass\n"
                   "while True: pass\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.timed_out);
  expect_clean(x);
}

TEST_F(Escape, SleepingGrandchildOutlivingParentIsKilled) {
  Opts o;
  o.timeout_ms = 20000;
  Outcome x = exec(sb_,
                   "import os, time\n"
                   "if os.fork() == 0:\n"
                   "    os.setsid()\n"
                   "    if os.fork() == 0:\n"
                   "        time.sleep(300)\n"  // daemonised grandchild
                   "        os._exit(0)\n"
                   "    os._exit(0)\n"
                   "os.wait()\n"
                   "print('parent exits')\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  EXPECT_FALSE(x.timed_out);  // the run ends with the main program, not at the timeout
  EXPECT_TRUE(x.success);
  EXPECT_EQ(x.out, "parent exits\n");
  expect_clean(x);
}

TEST_F(Escape, ForkBombIsCapped) {
  Opts o;
  o.timeout_ms = 20000;
  Outcome x = exec(sb_,
                   "import os, time\n"
                   "n, err = 0, None\n"
                   "for _ in range(200):\n"
                   "    try:\n"
                   "        pid = os.fork()\n"
                   "    except OSError as e:\n"
                   "        err = e.errno\n"
                   "        break\n"
                   "    if pid == 0:\n"
                   "        time.sleep(60)\n"
                   "        os._exit(0)\n"
                   "    n += 1\n"
                   "print(n, err)\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  int n = -1, err = -1;
  ASSERT_EQ(sscanf(x.out.c_str(), "%d %d", &n, &err), 2) << x.out;
  EXPECT_EQ(err, EAGAIN);
  EXPECT_LT(n, 16);  // RLIMIT_NPROC 16 for the uid, minus launcher, bwrap, init, python
  EXPECT_GT(n, 0);
  expect_clean(x);  // the 60 s sleepers are gone when the run returns
}

TEST_F(Escape, ExponentialForkBombStopsAtTimeout) {
  Opts o;
  o.timeout_ms = 2000;
  Outcome x = exec(sb_,
                   "import os\n"
                   "while True:\n"
                   "    try:\n"
                   "        os.fork()\n"
                   "    except OSError:\n"
                   "        pass\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.timed_out);
  expect_clean(x);
}

TEST_F(Escape, ThreadBombIsCapped) {
  Outcome x = exec(sb_,
                   "import threading, time\n"
                   "n = 0\n"
                   "try:\n"
                   "    for _ in range(200):\n"
                   "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
                   "        n += 1\n"
                   "except RuntimeError as e:\n"
                   "    print('capped', n < 16, e)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  EXPECT_EQ(x.out.rfind("capped True can't start new thread", 0), 0u) << x.out;
  expect_clean(x);
}

// ---- memory (row 32) -----------------------------------------------------------------------

TEST_F(Escape, OneGigabyteAllocation) {
  Outcome x = exec(sb_, "x = bytearray(1 << 30)\nprint('allocated')\n");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.memory_exceeded);
  EXPECT_FALSE(x.success);
  EXPECT_EQ(x.exit_code, 1);
  EXPECT_EQ(x.out, "");
  EXPECT_NE(x.err.find("MemoryError"), std::string::npos);
  EXPECT_EQ(x.error, "memory limit exceeded (256 MiB): MemoryError");
  expect_clean(x);
}

TEST_F(Escape, GrowingAllocationHitsLimit) {
  Opts o;
  o.memory = 128ull << 20;
  Outcome x = exec(sb_,
                   "chunks = []\n"
                   "for i in range(1024):\n"
                   "    chunks.append(b'x' * (1 << 20))\n"  // 1 GiB in 1 MiB steps
                   "print(len(chunks))\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.memory_exceeded);
  EXPECT_FALSE(x.success);
  EXPECT_EQ(x.out, "");
  expect_clean(x);
}

// ---- network (row 34) ----------------------------------------------------------------------

TEST_F(Escape, OnlyLoopbackInterfaceAndNoRoute) {
  Outcome x = exec(sb_,
                   "import os\n"
                   "dev = open('/proc/net/dev').read().splitlines()[2:]\n"
                   "print([l.split(':')[0].strip() for l in dev])\n"
                   "print(len(open('/proc/net/route').read().splitlines()[1:]))\n"
                   "v6 = open('/proc/net/ipv6_route').read().splitlines()"
                   " if os.path.exists('/proc/net/ipv6_route') else []\n"
                   "print(sorted(set(l.split()[-1] for l in v6)))\n"
                   "print(os.path.exists('/sys/class/net'))\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  // No IPv4 route at all in the main table; the only IPv6 routes are lo's own local ones.
  EXPECT_TRUE(x.out == "['lo']\n0\n['lo']\nFalse\n" || x.out == "['lo']\n0\n[]\nFalse\n")
      << x.out;
}

// A listener of the TEST on 127.0.0.1 (host netns) and a sandboxed program trying to reach it.
static int listen_tcp(int family, int *port) {
  int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  if (family == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    if (bind(s, (sockaddr *)&a, sizeof a) || listen(s, 4) || getsockname(s, (sockaddr *)&a, &l)) {
      close(s);
      return -1;
    }
    *port = ntohs(a.sin_port);
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    socklen_t l = sizeof a;
    if (bind(s, (sockaddr *)&a, sizeof a) || listen(s, 4) || getsockname(s, (sockaddr *)&a, &l)) {
      close(s);
      return -1;
    }
    *port = ntohs(a.sin6_port);
  }
  return s;
}

static bool nothing_accepted(int s) {
  int c = accept(s, nullptr, nullptr);
  if (c >= 0) close(c);
  return c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

TEST_F(Escape, InetSocketCannotReachHostLoopbackPort) {
  int port = 0;
  int s = listen_tcp(AF_INET, &port);
  ASSERT_GE(s, 0);
  Outcome x = exec(sb_,
                   "import socket\n"
                   "try:\n"
                   "    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                   "    c.settimeout(2)\n"
                   "    c.connect(('127.0.0.1', " + std::to_string(port) + "))\n"
                   "    print('CONNECTED')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(EACCES) + "\n");  // seccomp: AF_INET sockets denied
  EXPECT_TRUE(nothing_accepted(s));
  close(s);
}

TEST_F(Escape, Inet6SocketCannotReachHostLoopbackPort) {
  int port = 0;
  int s = listen_tcp(AF_INET6, &port);  // ::1 may be missing on some hosts
  Outcome x = exec(sb_,
                   "import socket\n"
                   "try:\n"
                   "    c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
                   "    c.settimeout(2)\n"
                   "    c.connect(('::1', " + std::to_string(s >= 0 ? port : 9) + "))\n"
                   "    print('CONNECTED')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(EACCES) + "\n");
  if (s >= 0) {
    EXPECT_TRUE(nothing_accepted(s));
    close(s);
  }
}

TEST_F(Escape, RawNetlinkAndPacketSocketsDenied) {
  Outcome x = exec(sb_,
                   "import socket\n"
                   "for fam, typ in [(socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, "
                   "socket.SOCK_RAW), (socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET, "
                   "socket.SOCK_RAW)]:\n"
                   "    try:\n"
                   "        socket.socket(fam, typ); print('OPEN')\n"
                   "    except OSError as e:\n"
                   "        print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string e = std::to_string(EACCES) + "\n";
  EXPECT_EQ(x.out, e + e + e + e);
}

TEST_F(Escape, HostAbstractUnixSocketUnreachable) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  const std::string name = "nc-sbx-test-" + std::to_string(getpid());
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path + 1, name.data(), name.size());  // leading NUL: abstract namespace
  socklen_t len = (socklen_t)(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(bind(s, (sockaddr *)&a, len), 0);
  ASSERT_EQ(listen(s, 4), 0);
  Outcome x = exec(sb_,
                   "import socket\n"
                   "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                   "try:\n"
                   "    c.connect(b'\\0" + name + "')\n"
                   "    print('CONNECTED')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(ECONNREFUSED) + "\n");  // abstract sockets are per netns
  EXPECT_TRUE(nothing_accepted(s));
  close(s);
}

TEST_F(Escape, HostPathUnixSocketInvisible) {
  TempDir d;
  std::string path = d.path + "/svc.sock";
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(s, (sockaddr *)&a, sizeof a), 0);
  ASSERT_EQ(listen(s, 4), 0);
  chmod(path.c_str(), 0777);
  Outcome x = exec(sb_,
                   "import socket\n"
                   "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                   "try:\n"
                   "    c.connect('" + path + "')\n"
                   "    print('CONNECTED')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(ENOENT) + "\n");
  EXPECT_TRUE(nothing_accepted(s));
  close(s);
}

// ---- filesystem (row 35) ---------------------------------------------------------------------

static std::string try_read(const std::string &path) {
  return "try:\n"
         "    open('" + path + "', 'rb').read(); print('READ')\n"
         "except OSError as e:\n"
         "    print(e.errno)\n";
}

TEST_F(Escape, EtcShadowAbsent) {
  Outcome x = exec(sb_, try_read("/etc/shadow") + try_read("/etc/passwd"));
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.out, std::to_string(ENOENT) + "\n" + std::to_string(ENOENT) + "\n");
}

TEST_F(Escape, TokenFileOutsideSandboxAbsent) {
  TempDir d;
  std::string tok = d.path + "/token";
  std::ofstream(tok) << "secret-token-value";
  chmod(tok.c_str(), 0644);  // even world-readable, it must not be visible
  Outcome x = exec(sb_, try_read(tok) +
                            "import os\n"
                            "try:\n"
                            "    print(os.listdir('" + d.path + "'))\n"
                            "except OSError as e:\n"
                            "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.out, std::to_string(ENOENT) + "\n" + std::to_string(ENOENT) + "\n");
  EXPECT_EQ(x.out.find("secret"), std::string::npos);
}

TEST_F(Escape, DataAndSourceDirsAbsent) {
  Outcome x = exec(sb_,
                   "import os\n"
                   "for p in ['" NC_SHARED_DATA "', '" NC_SOURCE_DIR "', '" NC_BINARY_DIR
                   "', '/run/nc-sandbox', '/root', '/home', '/var', '/sys']:\n"
                   "    try:\n"
                   "        os.listdir(p); print('LISTED', p)\n"
                   "    except OSError as e:\n"
                   "        print(e.errno)\n"
                   "print(sorted(os.listdir('/')))\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  std::string want;
  for (int i = 0; i < 8; i++) want += std::to_string(ENOENT) + "\n";
  want += "['bin', 'dev', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr', 'work']\n";
  EXPECT_EQ(x.out, want);
}

TEST_F(Escape, WritesOutsideWorkFail) {
  Outcome x = exec(sb_,
                   "for p in ['/usr/evil', '/evil', '/dev/evil', '/etc/evil', '/proc/sys/kernel/hostname']:\n"
                   "    try:\n"
                   "        open(p, 'w').write('x'); print('WROTE', p)\n"
                   "    except OSError as e:\n"
                   "        print(e.errno)\n"
                   "open('/work/ok.txt', 'w').write('fine')\n"
                   "open('/tmp/ok.txt', 'w').write('fine')\n"
                   "print(open('/work/ok.txt').read(), open('/tmp/ok.txt').read())\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string rofs = std::to_string(EROFS) + "\n";
  const std::string noent = std::to_string(ENOENT) + "\n";
  // /usr, the root and /dev are read-only mounts, /etc does not exist, and the hostname
  // sysctl belongs to a namespace the (capability-less) program does not own.
  EXPECT_EQ(x.out, rofs + rofs + rofs + noent + std::to_string(EACCES) + "\nfine fine\n");
}

TEST_F(Escape, FillTmpIsCapped) {
  Outcome x = exec(sb_,
                   "import errno\n"
                   "total = 0\n"
                   "try:\n"
                   "    for i in range(64):\n"
                   "        with open('/tmp/f%d' % i, 'wb') as f:\n"
                   "            for _ in range(4):\n"
                   "                f.write(b'x' * (1 << 20)); f.flush(); total += 1 << 20\n"
                   "    print('NO LIMIT')\n"
                   "except OSError as e:\n"
                   "    print(e.errno, total <= 16 << 20)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(ENOSPC) + " True\n");
}

TEST_F(Escape, FileSizeLimitGivesEFBIG) {
  Outcome x = exec(sb_,
                   "try:\n"
                   "    with open('/work/big', 'wb') as f:\n"
                   "        for _ in range(12):\n"
                   "            f.write(b'x' * (1 << 20)); f.flush()\n"
                   "    print('NO LIMIT')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(EFBIG) + "\n");  // RLIMIT_FSIZE 8 MiB; SIGXFSZ ignored by Python
}

TEST_F(Escape, FillDevShmIsCapped) {
  Outcome x = exec(sb_,
                   "try:\n"
                   "    with open('/dev/shm/x', 'wb') as f:\n"
                   "        for _ in range(8):\n"
                   "            f.write(b'x' * (1 << 20)); f.flush()\n"
                   "    print('NO LIMIT')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(ENOSPC) + "\n");
}

// ---- output (row 36) -------------------------------------------------------------------------

TEST_F(Escape, OneGigabyteOfStdoutIsCapped) {
  Opts o;
  o.timeout_ms = 60000;
  Outcome x = exec(sb_,
                   "import sys\n"
                   "b = b'y' * (1 << 20)\n"
                   "for _ in range(1024):\n"
                   "    sys.stdout.buffer.write(b)\n"
                   "sys.stdout.flush()\n"
                   "sys.stderr.write('done\\n')\n",
                   o);
  ASSERT_EQ(x.rc, NC_OK) << x.error;
  EXPECT_FALSE(x.timed_out);
  EXPECT_TRUE(x.success);
  EXPECT_TRUE(x.truncated);
  EXPECT_TRUE(x.stdout_truncated);
  EXPECT_FALSE(x.stderr_truncated);
  EXPECT_EQ(x.out.size(), 64u * 1024);
  EXPECT_EQ(x.out, std::string(64 * 1024, 'y'));
  EXPECT_EQ(x.err, "done\n");
  expect_clean(x);
}

TEST_F(Escape, StderrFloodIsCapped) {
  Opts o;
  o.out_cap = 1000;
  Outcome x = exec(sb_, "import sys\nfor i in range(100000): sys.stderr.write('e' * 99 + '\\n')\n", o);
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_TRUE(x.stderr_truncated);
  EXPECT_TRUE(x.truncated);
  EXPECT_EQ(x.err.size(), 1000u);
}

TEST_F(Escape, SpecialTokenStringsReturnedVerbatim) {
  const std::string toks =
      "<|bos|><|user_start|>x<|user_end|><|assistant_start|><|python_start|>1+1"
      "<|python_end|><|output_start|>2<|output_end|><|assistant_end|>";
  Outcome x = exec(sb_, "import sys\nsys.stdout.write('" + toks + "')\nsys.stderr.write('" + toks + "')\n");
  ASSERT_EQ(x.rc, NC_OK);
  EXPECT_EQ(x.out, toks);
  EXPECT_EQ(x.err, toks);
}

TEST_F(Escape, BinaryOutputReturnedVerbatim) {
  Outcome x = exec(sb_, "import sys\nsys.stdout.buffer.write(bytes(range(256)))\n");
  ASSERT_EQ(x.rc, NC_OK);
  ASSERT_EQ(x.out.size(), 256u);
  for (int i = 0; i < 256; i++) EXPECT_EQ((unsigned char)x.out[i], i);
}

// ---- environment and fds (row 37) -------------------------------------------------------------

TEST_F(Escape, EnvironmentIsScrubbed) {
  setenv("NC_SECRET_TOKEN", "do-not-leak", 1);
  Outcome x = exec(sb_, "import os\nprint(sorted(os.environ.items()))\n");
  unsetenv("NC_SECRET_TOKEN");
  ASSERT_EQ(x.rc, NC_OK);
  // PATH from the launcher's --setenv, PWD from bubblewrap's --chdir, LC_CTYPE from Python's
  // own PEP 538 locale coercion. Nothing inherited.
  EXPECT_EQ(x.out, "[('LC_CTYPE', 'C.UTF-8'), ('PATH', '/usr/bin:/bin'), ('PWD', '/work')]\n");
}

TEST_F(Escape, OnlyStdFdsOpen) {
  Outcome x = exec(sb_,
                   "import os\n"
                   "open_fds = []\n"
                   "for fd in range(1024):\n"
                   "    try:\n"
                   "        os.fstat(fd); open_fds.append(fd)\n"
                   "    except OSError:\n"
                   "        pass\n"
                   "print(open_fds)\n"
                   "print(sorted(int(f) for f in os.listdir('/proc/self/fd')))\n");
  ASSERT_EQ(x.rc, NC_OK);
  // fd 3 in the listing is the /proc/self/fd directory being read (the fstat scan before
  // it shows that only 0, 1 and 2 exist otherwise).
  EXPECT_EQ(x.out, "[0, 1, 2]\n[0, 1, 2, 3]\n");
}

// ---- privileges (ptrace, mount, namespaces) -------------------------------------------------

TEST_F(Escape, PtraceDenied) {
  Outcome x = exec(sb_,
                   "import ctypes\n"
                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                   "print(libc.ptrace(0, 0, 0, 0), ctypes.get_errno())\n"   // PTRACE_TRACEME
                   "print(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\n"); // PTRACE_ATTACH pid 1
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string l = "-1 " + std::to_string(EPERM) + "\n";
  EXPECT_EQ(x.out, l + l);
}

TEST_F(Escape, MountAndUnmountDenied) {
  Outcome x = exec(sb_,
                   "import ctypes\n"
                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                   "print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())\n"
                   "print(libc.umount2(b'/usr', 2), ctypes.get_errno())\n"
                   "print(libc.chroot(b'/tmp'), ctypes.get_errno())\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string l = "-1 " + std::to_string(EPERM) + "\n";
  EXPECT_EQ(x.out, l + l + l);
}

TEST_F(Escape, NewNamespacesDenied) {
  Outcome x = exec(sb_,
                   "import ctypes, os\n"
                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                   "for flag in [0x10000000, 0x40000000, 0x20000000, 0x00020000]:\n"  // USER NET PID NS
                   "    print(libc.unshare(flag), ctypes.get_errno())\n"
                   "print(libc.setns(0, 0), ctypes.get_errno())\n"
                   "r = os.system('/usr/bin/unshare -U true 2>/dev/null')\n"
                   "print(r != 0)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string l = "-1 " + std::to_string(EPERM) + "\n";
  EXPECT_EQ(x.out, l + l + l + l + l + "True\n");
}

TEST_F(Escape, DangerousSyscallsDenied) {
  // bpf, keyctl, perf_event_open, userfaultfd, add_key, kexec_load, init_module,
  // memfd_create, io_uring_setup (x86-64 numbers).
  Outcome x = exec(sb_,
                   "import ctypes, platform\n"
                   "if platform.machine() != 'x86_64':\n"
                   "    print('skip'); raise SystemExit\n"
                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                   "for nr in [321, 250, 298, 323, 248, 246, 175, 319, 425]:\n"
                   "    print(nr, libc.syscall(nr, 0, 0, 0, 0, 0), ctypes.get_errno())\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  if (x.out == "skip\n") GTEST_SKIP() << "syscall numbers are x86-64 only";
  std::string want;
  for (int nr : {321, 250, 298, 323, 248, 246, 175, 319, 425})
    want += std::to_string(nr) + " -1 " + std::to_string(EPERM) + "\n";
  EXPECT_EQ(x.out, want);
}

TEST_F(Escape, X32SyscallKillsTheProgram) {
  // A syscall through the x32 ABI (nr | 0x40000000) would dodge a naive x86-64 filter;
  // ours treats it as a foreign architecture: SIGSYS kills the process.
  Outcome x = exec(sb_,
                   "import ctypes, platform\n"
                   "if platform.machine() != 'x86_64':\n"
                   "    print('skip'); raise SystemExit\n"
                   "libc = ctypes.CDLL(None, use_errno=True)\n"
                   "print('before', flush=True)\n"
                   "libc.syscall(0x40000000 + 39)\n"  // x32 getpid
                   "print('SURVIVED')\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  if (x.out == "skip\n") GTEST_SKIP() << "x32 exists on x86-64 only";
  EXPECT_EQ(x.out, "before\n");
  EXPECT_EQ(x.signal, SIGSYS);
  EXPECT_EQ(x.exit_code, 128 + SIGSYS);
  EXPECT_FALSE(x.success);
}

TEST_F(Escape, TiocstiDenied) {
  Outcome x = exec(sb_,
                   "import fcntl, termios\n"
                   "try:\n"
                   "    fcntl.ioctl(1, termios.TIOCSTI, b'x'); print('INJECTED')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, std::to_string(EPERM) + "\n");
}

TEST_F(Escape, RunsAsUnprivilegedPoolUid) {
  Outcome x = exec(sb_,
                   "import os\n"
                   "print(os.getuid(), os.geteuid(), os.getgid())\n"
                   "st = open('/proc/self/status').read()\n"
                   "print([l for l in st.splitlines() if l.startswith(('CapEff', 'NoNewPrivs', 'Seccomp:'))])\n"
                   "try:\n"
                   "    os.setuid(0); print('ROOT')\n"
                   "except OSError as e:\n"
                   "    print(e.errno)\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  const std::string u = std::to_string(x.uid);
  EXPECT_EQ(x.out, u + " " + u + " " + u + "\n" +
                       "['CapEff:\\t0000000000000000', 'NoNewPrivs:\\t1', 'Seccomp:\\t2']\n" +
                       std::to_string(EPERM) + "\n");
}

TEST_F(Escape, OwnPidAndUtsNamespaces) {
  Outcome x = exec(sb_,
                   "import os, socket\n"
                   "print(os.getpid(), socket.gethostname())\n"
                   "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n");
  ASSERT_EQ(x.rc, NC_OK) << x.err;
  EXPECT_EQ(x.out, "2 sandbox\n[1, 2]\n");  // bubblewrap's init is pid 1, the program pid 2
}
