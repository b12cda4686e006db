// grpc_loadgen.cc — load generator of bench/bench_grpc.py (grpc++, loopback). One JSON object
// per run on stdout.
//
//   grpc_loadgen unary  --target HOST:PORT [--callers N] [--channels C] [--seconds S]
//                       [--warmup W] [--pid PID]
//       N threads call nanochat.v1.Health/Check back to back with generated sync stubs,
//       caller i on channel i % C (each channel its own HTTP/2 connection). Calls completing
//       inside the S-second window (after W seconds of warm-up) count: calls/s, p50/p90/p99/
//       mean latency, response bytes, errors.
//   grpc_loadgen stream --target HOST:PORT --job-id ID [--streams K] [--seconds S]
//                       [--warmup W] [--pid PID]
//       K threads (each its own connection) replay nanochat.v1.Train/Status {job_id,
//       follow=false, from_seq=1} over and over with a generic stub (messages are counted and
//       sized, not parsed); messages/s and MB/s received inside the window.
//   grpc_loadgen make-job --target HOST:PORT [--steps N]
//       starts Train.TestJob {steps N, step_ms 0} and follows it to its end; prints job_id and
//       the number of events.
//   grpc_loadgen dump --target HOST:PORT --job-id ID --health FILE --events FILE
//       writes one Health/Check response and the job's Status replay (<u32 LE length><bytes>
//       records) for grpc_ref_server.
//
// With --pid, the server's CPU time (utime+stime of /proc/PID/stat, all its threads) over the
// window is reported as cores and µs per call (or per message), next to this process's own
// CPU (getrusage) and the CPU used by everything else on the machine (/proc/stat busy time
// minus both): on a 2-core machine the client competes with the server, so CPU per call is
// the capacity figure.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nanochat/v1/services.grpc.pb.h"

namespace nc = nanochat::v1;
using Clock = std::chrono::steady_clock;

namespace {

struct Opts {
  std::string cmd, target, job_id, health_path, events_path;
  int callers = 1, channels = 1, streams = 1, steps = 20000;
  double seconds = 3.0, warmup = 0.5;
  long pid = 0;
};

// ---- CPU accounting ------------------------------------------------------------------------

// utime+stime of a process in seconds (all threads, including ended ones); -1 on error.
double proc_cpu_s(long pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 1));
  std::string tok;
  unsigned long long ut = 0, st = 0;
  for (int field = 3; field <= 15 && (in >> tok); field++) {  // field 3 is the state
    if (field == 14) ut = std::strtoull(tok.c_str(), nullptr, 10);
    if (field == 15) st = std::strtoull(tok.c_str(), nullptr, 10);
  }
  return double(ut + st) / double(sysconf(_SC_CLK_TCK));
}

// Busy CPU seconds of the whole machine (all cores) from /proc/stat.
double machine_busy_s() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  unsigned long long v[10] = {0};
  f >> cpu;
  for (auto &x : v) f >> x;
  unsigned long long total = 0;
  for (int i = 0; i < 8; i++) total += v[i];  // guest time is already in user
  unsigned long long idle = v[3] + v[4];
  return double(total - idle) / double(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

struct CpuSnap {
  double server = 0, self = 0, machine = 0;
  Clock::time_point t;
};

CpuSnap snap(long pid) {
  CpuSnap c;
  c.t = Clock::now();
  c.server = pid > 0 ? proc_cpu_s(pid) : 0;
  c.self = self_cpu_s();
  c.machine = machine_busy_s();
  return c;
}

// Prints the common CPU fields: "wall_s", cores of server/client/others, µs per unit.
void print_cpu(const CpuSnap &a, const CpuSnap &b, long pid, uint64_t units, const char *unit) {
  double wall = std::chrono::duration<double>(b.t - a.t).count();
  double srv = b.server - a.server, self = b.self - a.self, mach = b.machine - a.machine;
  std::printf("\"wall_s\": %.3f, \"client_cpu_cores\": %.3f, ", wall, self / wall);
  if (pid > 0) {
    std::printf("\"server_cpu_cores\": %.3f, \"server_cpu_us_per_%s\": %.2f, ", srv / wall, unit,
                units ? srv * 1e6 / double(units) : 0.0);
    std::printf("\"other_cpu_cores\": %.3f", std::max(0.0, (mach - srv - self) / wall));
  } else {
    std::printf("\"other_cpu_cores\": %.3f", std::max(0.0, (mach - self) / wall));
  }
}

std::shared_ptr<grpc::Channel> make_channel(const std::string &target, int index) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt("nc.bench.channel", index);  // distinct args: a connection of its own
  auto ch = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) return nullptr;
  return ch;
}

// n connected channels, each its own connection; false (after a message) when one fails.
bool make_channels(const Opts &o, int n, std::vector<std::shared_ptr<grpc::Channel>> *out) {
  for (int i = 0; i < n; i++) {
    out->push_back(make_channel(o.target, i));
    if (!out->back()) {
      std::fprintf(stderr, "grpc_loadgen: cannot connect to %s\n", o.target.c_str());
      return false;
    }
  }
  return true;
}

void set_deadline(grpc::ClientContext *ctx, int seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// Runs `body` on `n` threads for warm-up + window; `measuring` is true during the window.
// Returns the CPU snapshots at the window's edges.
template <class Body>
std::pair<CpuSnap, CpuSnap> run_window(const Opts &o, int n, std::atomic<bool> &measuring,
                                       std::atomic<bool> &stop, Body body) {
  std::vector<std::thread> th;
  for (int i = 0; i < n; i++) th.emplace_back(body, i);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  CpuSnap a = snap(o.pid);
  measuring.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  measuring.store(false);
  CpuSnap b = snap(o.pid);
  stop.store(true);
  for (auto &t : th) t.join();
  return {a, b};
}

// ---- unary ------------------------------------------------------------------------------------

struct UnaryThread {
  std::vector<uint32_t> lat_ns;
  uint64_t bytes = 0, errors = 0;
  std::string first_error;
};

double pct(std::vector<uint32_t> &v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k] / 1000.0;
}

int cmd_unary(const Opts &o) {
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  if (!make_channels(o, o.channels, &chans)) return 1;
  std::vector<UnaryThread> res(o.callers);
  std::atomic<bool> measuring{false}, stop{false};
  auto body = [&](int i) {
    auto stub = nc::Health::NewStub(chans[i % o.channels]);
    UnaryThread &r = res[i];
    r.lat_ns.reserve(1 << 18);
    nc::HealthCheckRequest req;
    while (!stop.load(std::memory_order_relaxed)) {
      grpc::ClientContext ctx;
      set_deadline(&ctx, 30);
      nc::HealthCheckResponse resp;
      auto t0 = Clock::now();
      grpc::Status st = stub->Check(&ctx, req, &resp);
      auto dt = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
      if (!measuring.load(std::memory_order_relaxed)) continue;
      if (!st.ok()) {
        if (!r.errors++) r.first_error = st.error_message();
        continue;
      }
      r.lat_ns.push_back(uint32_t(std::min<int64_t>(dt, UINT32_MAX)));
      r.bytes += resp.ByteSizeLong();
    }
  };
  auto [a, b] = run_window(o, o.callers, measuring, stop, body);
  std::vector<uint32_t> all;
  uint64_t bytes = 0, errors = 0;
  std::string err;
  for (auto &r : res) {
    all.insert(all.end(), r.lat_ns.begin(), r.lat_ns.end());
    bytes += r.bytes;
    errors += r.errors;
    if (err.empty()) err = r.first_error;
  }
  double wall = std::chrono::duration<double>(b.t - a.t).count();
  double mean = 0;
  for (uint32_t x : all) mean += x;
  mean = all.empty() ? 0 : mean / double(all.size()) / 1000.0;
  uint64_t calls = all.size();
  std::printf("{\"mode\": \"unary\", \"method\": \"/nanochat.v1.Health/Check\", \"callers\": %d, "
              "\"channels\": %d, \"calls\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"qps\": %.1f, ",
              o.callers, o.channels, calls, errors, calls / wall);
  double p50 = pct(all, 0.50), p90 = pct(all, 0.90), p99 = pct(all, 0.99);
  std::printf("\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"mean_us\": %.1f, "
              "\"resp_bytes\": %.1f, ",
              p50, p90, p99, mean, calls ? double(bytes) / double(calls) : 0.0);
  print_cpu(a, b, o.pid, calls, "call");
  std::printf("}\n");
  if (errors) std::fprintf(stderr, "grpc_loadgen: %" PRIu64 " errors, first: %s\n", errors, err.c_str());
  return errors ? 1 : 0;
}

// ---- stream -------------------------------------------------------------------------------------

grpc::ByteBuffer status_request(const std::string &job_id) {
  nc::TrainStatusRequest r;
  r.set_job_id(job_id);
  r.set_follow(false);
  r.set_from_seq(1);
  std::string packed = r.SerializeAsString();
  grpc::Slice slice(packed);
  return grpc::ByteBuffer(&slice, 1);
}

bool next_ok(grpc::CompletionQueue &cq, void *want) {
  void *tag;
  bool ok = false;
  return cq.Next(&tag, &ok) && tag == want && ok;
}

struct StreamThread {
  std::atomic<uint64_t> msgs{0}, bytes{0};
  uint64_t calls = 0, errors = 0, msgs_last_call = 0;
  std::string first_error;
};

// One Train/Status replay; counts messages into r. Returns false when the call failed.
bool replay_once(grpc::GenericStub &stub, const grpc::ByteBuffer &req, std::atomic<bool> &stop,
                 std::atomic<bool> &measuring, StreamThread &r) {
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  set_deadline(&ctx, 120);
  auto call = stub.PrepareCall(&ctx, "/nanochat.v1.Train/Status", &cq);
  int t_start, t_write, t_done, t_read, t_fin;
  uint64_t n = 0;
  call->StartCall(&t_start);
  bool ok = next_ok(cq, &t_start);
  if (ok) {
    call->Write(req, &t_write);
    ok = next_ok(cq, &t_write);
  }
  if (ok) {
    call->WritesDone(&t_done);
    ok = next_ok(cq, &t_done);
  }
  bool cancelled = false;
  while (ok) {
    grpc::ByteBuffer bb;
    call->Read(&bb, &t_read);
    if (!next_ok(cq, &t_read)) break;
    n++;
    if (measuring.load(std::memory_order_relaxed)) {
      r.msgs.fetch_add(1, std::memory_order_relaxed);
      r.bytes.fetch_add(bb.Length(), std::memory_order_relaxed);
    }
    if (stop.load(std::memory_order_relaxed)) {
      ctx.TryCancel();
      cancelled = true;
    }
  }
  grpc::Status st;
  call->Finish(&st, &t_fin);
  next_ok(cq, &t_fin);
  cq.Shutdown();
  void *tag;
  bool ok2;
  while (cq.Next(&tag, &ok2)) {
  }
  if (cancelled) return true;
  r.calls++;
  r.msgs_last_call = n;
  if (!st.ok()) {
    if (!r.errors++) r.first_error = st.error_message();
    return false;
  }
  return true;
}

int cmd_stream(const Opts &o) {
  grpc::ByteBuffer req = status_request(o.job_id);
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  if (!make_channels(o, o.streams, &chans)) return 1;
  std::vector<StreamThread> res(o.streams);
  std::atomic<bool> measuring{false}, stop{false};
  auto body = [&](int i) {
    grpc::GenericStub stub(chans[i]);
    while (!stop.load(std::memory_order_relaxed))
      if (!replay_once(stub, req, stop, measuring, res[i])) break;
  };
  auto [a, b] = run_window(o, o.streams, measuring, stop, body);
  uint64_t msgs = 0, bytes = 0, calls = 0, errors = 0, per_call = 0;
  std::string err;
  for (auto &r : res) {
    msgs += r.msgs.load();
    bytes += r.bytes.load();
    calls += r.calls;
    errors += r.errors;
    per_call = std::max(per_call, r.msgs_last_call);
    if (err.empty()) err = r.first_error;
  }
  double wall = std::chrono::duration<double>(b.t - a.t).count();
  std::printf("{\"mode\": \"stream\", \"method\": \"/nanochat.v1.Train/Status\", \"streams\": %d, "
              "\"messages\": %" PRIu64 ", \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f, "
              "\"msg_bytes\": %.1f, \"replays\": %" PRIu64 ", \"msgs_per_replay\": %" PRIu64
              ", \"errors\": %" PRIu64 ", ",
              o.streams, msgs, msgs / wall, bytes / wall / 1e6, msgs ? double(bytes) / double(msgs) : 0.0,
              calls, per_call, errors);
  print_cpu(a, b, o.pid, msgs, "msg");
  std::printf("}\n");
  if (errors) std::fprintf(stderr, "grpc_loadgen: %" PRIu64 " errors, first: %s\n", errors, err.c_str());
  return errors || calls == 0 ? 1 : 0;
}

// ---- setup: a job with many events, and the captures for the reference ----------------------

int cmd_make_job(const Opts &o) {
  auto ch = make_channel(o.target, 0);
  if (!ch) return 1;
  auto train = nc::Train::NewStub(ch);
  nc::TestJobRequest tj;
  tj.set_steps(o.steps);
  tj.set_step_ms(0);
  nc::JobRef ref;
  grpc::ClientContext c1;
  set_deadline(&c1, 30);
  grpc::Status st = train->TestJob(&c1, tj, &ref);
  if (!st.ok()) {
    std::fprintf(stderr, "grpc_loadgen: Train.TestJob: %s\n", st.error_message().c_str());
    return 1;
  }
  nc::TrainStatusRequest sr;
  sr.set_job_id(ref.job_id());
  sr.set_follow(true);
  sr.set_from_seq(1);
  grpc::ClientContext c2;
  set_deadline(&c2, 600);
  auto reader = train->Status(&c2, sr);
  nc::JobEvent ev;
  uint64_t n = 0;
  int state = 0;
  while (reader->Read(&ev)) {
    n++;
    if (ev.kind() == nc::EVENT_STATE) state = ev.state();
  }
  st = reader->Finish();
  if (!st.ok() || state != nc::JOB_SUCCEEDED) {
    std::fprintf(stderr, "grpc_loadgen: job %s ended in state %d (%s)\n", ref.job_id().c_str(), state,
                 st.error_message().c_str());
    return 1;
  }
  std::printf("{\"job_id\": \"%s\", \"events\": %" PRIu64 "}\n", ref.job_id().c_str(), n);
  return 0;
}

int cmd_dump(const Opts &o) {
  auto ch = make_channel(o.target, 0);
  if (!ch) return 1;
  grpc::ClientContext c1;
  set_deadline(&c1, 10);
  nc::HealthCheckResponse hr;
  grpc::Status st = nc::Health::NewStub(ch)->Check(&c1, nc::HealthCheckRequest(), &hr);
  if (!st.ok()) return 1;
  std::ofstream hf(o.health_path, std::ios::binary);
  hf << hr.SerializeAsString();
  nc::TrainStatusRequest sr;
  sr.set_job_id(o.job_id);
  sr.set_follow(false);
  sr.set_from_seq(1);
  grpc::ClientContext c2;
  set_deadline(&c2, 120);
  auto reader = nc::Train::NewStub(ch)->Status(&c2, sr);
  std::ofstream ef(o.events_path, std::ios::binary);
  nc::JobEvent ev;
  uint64_t n = 0, bytes = 0;
  while (reader->Read(&ev)) {
    std::string b = ev.SerializeAsString();
    uint32_t len = uint32_t(b.size());
    unsigned char hdr[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
    ef.write(reinterpret_cast<const char *>(hdr), 4);
    ef << b;
    n++;
    bytes += len;
  }
  st = reader->Finish();
  if (!st.ok() || !hf || !ef) {
    std::fprintf(stderr, "grpc_loadgen: dump failed: %s\n", st.error_message().c_str());
    return 1;
  }
  std::printf("{\"health_bytes\": %zu, \"events\": %" PRIu64 ", \"event_bytes\": %" PRIu64 "}\n",
              hr.ByteSizeLong(), n, bytes);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: grpc_loadgen unary|stream|make-job|dump --target HOST:PORT [--callers N] "
               "[--channels C] [--streams K] [--seconds S] [--warmup W] [--pid PID] [--job-id ID] "
               "[--steps N] [--health FILE] [--events FILE]\n");
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Opts o;
  if (argc < 2) return usage();
  o.cmd = argv[1];
  for (int i = 2; i < argc; i++) {
    std::string k = argv[i];
    if (i + 1 >= argc) return usage();
    std::string v = argv[++i];
    if (k == "--target") o.target = v;
    else if (k == "--job-id") o.job_id = v;
    else if (k == "--health") o.health_path = v;
    else if (k == "--events") o.events_path = v;
    else if (k == "--callers") o.callers = std::atoi(v.c_str());
    else if (k == "--channels") o.channels = std::atoi(v.c_str());
    else if (k == "--streams") o.streams = std::atoi(v.c_str());
    else if (k == "--steps") o.steps = std::atoi(v.c_str());
    else if (k == "--seconds") o.seconds = std::atof(v.c_str());
    else if (k == "--warmup") o.warmup = std::atof(v.c_str());
    else if (k == "--pid") o.pid = std::atol(v.c_str());
    else return usage();
  }
  if (o.target.empty() || o.callers < 1 || o.callers > 1024 || o.channels < 1 ||
      o.channels > o.callers || o.streams < 1 || o.streams > 256 || o.seconds <= 0 ||
      o.seconds > 3600 || o.warmup < 0 || o.steps < 1 || o.steps > 100000)
    return usage();
  if (o.cmd == "unary") return cmd_unary(o);
  if (o.cmd == "stream" && !o.job_id.empty()) return cmd_stream(o);
  if (o.cmd == "make-job") return cmd_make_job(o);
  if (o.cmd == "dump" && !o.job_id.empty() && !o.health_path.empty() && !o.events_path.empty())
    return cmd_dump(o);
  return usage();
}
