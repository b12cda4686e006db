// grpc_ref_server.cc — the reference for bench/bench_grpc.py: a minimal grpc++ SYNC server
// (ServerBuilder defaults, generated C++ services) that does nanochatd's work for the two
// benchmarked methods:
//
//   nanochat.v1.Health/Check  builds the same 13-field HealthCheckResponse nanochatd sends
//                             (field values taken from a response captured from nanochatd;
//                             uptime_s and calls_in_flight computed per call) and serializes it;
//   nanochat.v1.Train/Status  replays a job like nanochatd: a SNAPSHOT event (time_ms set per
//                             call), then every stored event with seq >= from_seq, one
//                             ServerWriter::Write each (one message in flight), then OK;
//                             like nanochatd, all but the last of every 64 events carry the
//                             write-buffer hint (--buffer-hint 0: every Write unbuffered).
//                             The events are the ones captured from nanochatd's replay of
//                             the same job, held in memory as parsed C++ messages (nanochatd
//                             reads them from LMDB in batches of 64 — the reference does
//                             strictly less work there). Unknown job ids get NOT_FOUND.
//
//   grpc_ref_server --health FILE --events FILE [--port 0] [--max-streams N] [--stdin-eof-stop 1]
//                   [--buffer-hint 0|1]
//
// FILE formats (written by `grpc_loadgen dump`): --health holds one serialized
// HealthCheckResponse; --events holds the Status replay as <u32 little-endian length><bytes>
// records, the SNAPSHOT first. Prints "listening on 127.0.0.1:PORT" once serving; stops on
// SIGTERM/SIGINT (and, with --stdin-eof-stop 1, when stdin reaches EOF, so it never outlives
// its driver). Loopback only.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "nanochat/v1/services.grpc.pb.h"

namespace nc = nanochat::v1;

namespace {

bool read_all(const std::string &path, std::string *out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class HealthImpl final : public nc::Health::Service {
 public:
  explicit HealthImpl(const nc::HealthCheckResponse &tmpl) : tmpl_(tmpl) {}

  grpc::Status Check(grpc::ServerContext *, const nc::HealthCheckRequest *,
                     nc::HealthCheckResponse *resp) override {
    unsigned others = inflight_.fetch_add(1, std::memory_order_relaxed);
    resp->set_status(tmpl_.status());
    resp->set_model_loaded(tmpl_.model_loaded());
    resp->set_device(tmpl_.device());
    resp->set_version(tmpl_.version());
    resp->set_uptime_s(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    resp->set_sandbox_level(tmpl_.sandbox_level());
    resp->set_jobs_running(tmpl_.jobs_running());
    resp->set_jobs_queued(tmpl_.jobs_queued());
    resp->set_calls_in_flight(others);
    resp->set_worker(tmpl_.worker());
    inflight_.fetch_sub(1, std::memory_order_relaxed);
    return grpc::Status::OK;
  }

 private:
  nc::HealthCheckResponse tmpl_;
  std::atomic<unsigned> inflight_{0};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

class TrainImpl final : public nc::Train::Service {
 public:
  TrainImpl(nc::JobEvent snapshot, std::vector<nc::JobEvent> events, bool buffer_hint)
      : snapshot_(std::move(snapshot)), events_(std::move(events)), buffer_hint_(buffer_hint) {}

  grpc::Status Status(grpc::ServerContext *ctx, const nc::TrainStatusRequest *req,
                      grpc::ServerWriter<nc::JobEvent> *w) override {
    if (req->job_id() != snapshot_.job_id())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "job_id: no such job");
    nc::JobEvent snap = snapshot_;
    snap.set_time_ms(unix_ms());
    if (!w->Write(snap)) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    uint64_t from = req->from_seq();
    if (from == 0) return grpc::Status::OK;
    // Like nanochatd: events go out in batches of 64 (its store read size); all but the
    // last of a batch carry the write-buffer hint, so a batch leaves in a few TCP writes.
    size_t first = 0;
    while (first < events_.size() && events_[first].seq() < from) first++;
    for (size_t i = first; i < events_.size(); i++) {
      bool last_of_batch = (i - first) % 64 == 63 || i + 1 == events_.size();
      grpc::WriteOptions wo;
      if (!last_of_batch && buffer_hint_) wo.set_buffer_hint();
      if (ctx->IsCancelled() || !w->Write(events_[i], wo))
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    return grpc::Status::OK;
  }

 private:
  nc::JobEvent snapshot_;
  std::vector<nc::JobEvent> events_;
  bool buffer_hint_;
};

bool load_events(const std::string &path, nc::JobEvent *snap, std::vector<nc::JobEvent> *evs) {
  std::string data;
  if (!read_all(path, &data)) return false;
  size_t pos = 0;
  bool first = true;
  while (pos < data.size()) {
    if (data.size() - pos < 4) return false;
    const unsigned char *p = reinterpret_cast<const unsigned char *>(data.data() + pos);
    uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24);
    pos += 4;
    if (n > data.size() - pos) return false;
    nc::JobEvent ev;
    if (!ev.ParseFromArray(data.data() + pos, static_cast<int>(n))) return false;
    pos += n;
    if (first) *snap = std::move(ev);
    else evs->push_back(std::move(ev));
    first = false;
  }
  return !first;
}

}  // namespace

int main(int argc, char **argv) {
  std::string health_path, events_path;
  int port = 0, max_streams = 0, stdin_eof_stop = 0, buffer_hint = 1;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "grpc_ref_server: %s needs a value\n", k.c_str());
      return 2;
    }
    std::string v = argv[++i];
    if (k == "--health") health_path = v;
    else if (k == "--events") events_path = v;
    else if (k == "--port") port = std::atoi(v.c_str());
    else if (k == "--max-streams") max_streams = std::atoi(v.c_str());
    else if (k == "--stdin-eof-stop") stdin_eof_stop = std::atoi(v.c_str());
    else if (k == "--buffer-hint") buffer_hint = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "grpc_ref_server: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (health_path.empty() || events_path.empty() || port < 0 || port > 65535 || max_streams < 0) {
    std::fprintf(stderr, "usage: grpc_ref_server --health FILE --events FILE [--port P] [--max-streams N] [--stdin-eof-stop 1] [--buffer-hint 0|1]\n");
    return 2;
  }
  std::string hbytes;
  nc::HealthCheckResponse tmpl;
  if (!read_all(health_path, &hbytes) || !tmpl.ParseFromString(hbytes)) {
    std::fprintf(stderr, "grpc_ref_server: cannot read a HealthCheckResponse from %s\n", health_path.c_str());
    return 1;
  }
  nc::JobEvent snap;
  std::vector<nc::JobEvent> evs;
  if (!load_events(events_path, &snap, &evs)) {
    std::fprintf(stderr, "grpc_ref_server: cannot read job events from %s\n", events_path.c_str());
    return 1;
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // before gRPC starts its threads

  HealthImpl health(tmpl);
  TrainImpl train(std::move(snap), std::move(evs), buffer_hint != 0);
  grpc::ServerBuilder b;
  int bound = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  if (max_streams > 0) b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, max_streams);
  b.RegisterService(&health);
  b.RegisterService(&train);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (!server || bound <= 0) {
    std::fprintf(stderr, "grpc_ref_server: cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("listening on 127.0.0.1:%d\n", bound);
  std::fflush(stdout);

  if (stdin_eof_stop) {  // the driver went away: stop too
    std::thread([] {
      char buf[64];
      while (read(0, buf, sizeof buf) > 0) {
      }
      kill(getpid(), SIGTERM);
    }).detach();
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}
