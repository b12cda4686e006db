// bench_status_stream.cc — messages/s of a server-streaming replay, measured with a grpc++
// generic client (no generated C++ stubs: the request is packed with protobuf-c).
//
//   bench_status_stream --target 127.0.0.1:PORT --job-id ID [--streams N] [--from-seq S]
//                       [--token TOKEN] [--method /nanochat.v1.Train/Status] [--repeat R]
//
// Each of N streams (own thread, own completion queue) calls the method with a
// TrainStatusRequest{job_id, follow=false, from_seq} and reads every message until the
// server finishes; R repeats per stream. Prints one JSON object: messages, bytes, wall
// seconds, messages/s and MB/s over all streams, and the status of the last call. The same
// client against bench/ref_stream_server (which streams pre-serialized messages of the same
// size from memory) gives the reference in the same run.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "nanochat/v1/train.pb-c.h"

namespace {

struct Opts {
  std::string target = "127.0.0.1:50051";
  std::string method = "/nanochat.v1.Train/Status";
  std::string job_id;
  std::string token;
  int streams = 1;
  int repeat = 1;
  uint64_t from_seq = 1;
};

struct Result {
  uint64_t messages = 0, bytes = 0;
  int code = 0;
  std::string message;
};

bool wait(grpc::CompletionQueue &cq, void *want) {
  void *tag;
  bool ok = false;
  if (!cq.Next(&tag, &ok)) return false;
  return tag == want && ok;
}

void run_stream(const Opts &o, std::shared_ptr<grpc::Channel> ch, const grpc::ByteBuffer &req,
                Result *r) {
  grpc::GenericStub stub(ch);
  for (int rep = 0; rep < o.repeat; rep++) {
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    if (!o.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o.token);
    auto call = stub.PrepareCall(&ctx, o.method, &cq);
    int t_start, t_write, t_done, t_read, t_fin;
    call->StartCall(&t_start);
    if (!wait(cq, &t_start)) break;
    call->Write(req, &t_write);
    if (!wait(cq, &t_write)) break;
    call->WritesDone(&t_done);
    if (!wait(cq, &t_done)) break;
    for (;;) {
      grpc::ByteBuffer bb;
      call->Read(&bb, &t_read);
      if (!wait(cq, &t_read)) break;
      r->messages++;
      r->bytes += bb.Length();
    }
    grpc::Status st;
    call->Finish(&st, &t_fin);
    wait(cq, &t_fin);
    r->code = st.error_code();
    r->message = st.error_message();
    cq.Shutdown();
    void *tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  Opts o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--target") o.target = v;
    else if (k == "--method") o.method = v;
    else if (k == "--job-id") o.job_id = v;
    else if (k == "--token") o.token = v;
    else if (k == "--streams") o.streams = std::atoi(v.c_str());
    else if (k == "--repeat") o.repeat = std::atoi(v.c_str());
    else if (k == "--from-seq") o.from_seq = std::strtoull(v.c_str(), nullptr, 10);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.streams < 1 || o.streams > 256 || o.repeat < 1) {
    std::fprintf(stderr, "--streams 1..256, --repeat >= 1\n");
    return 2;
  }
  Nanochat__V1__TrainStatusRequest r = NANOCHAT__V1__TRAIN_STATUS_REQUEST__INIT;
  r.job_id = (char *)o.job_id.c_str();
  r.has_follow = 1;
  r.follow = 0;
  r.has_from_seq = 1;
  r.from_seq = o.from_seq;
  std::string packed(nanochat__v1__train_status_request__get_packed_size(&r), '\0');
  nanochat__v1__train_status_request__pack(&r, (uint8_t *)&packed[0]);
  grpc::Slice slice(packed);
  grpc::ByteBuffer req(&slice, 1);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  for (int i = 0; i < o.streams; i++) {
    args.SetInt("bench.channel", i);  // one connection per stream
    chans.push_back(grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
  }
  std::vector<Result> res(o.streams);
  std::vector<std::thread> th;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.streams; i++)
    th.emplace_back(run_stream, std::cref(o), chans[i], std::cref(req), &res[i]);
  for (auto &t : th) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t msgs = 0, bytes = 0;
  int code = 0;
  std::string msg;
  for (auto &x : res) {
    msgs += x.messages;
    bytes += x.bytes;
    if (x.code) {
      code = x.code;
      msg = x.message;
    }
  }
  std::printf("{\"method\": \"%s\", \"streams\": %d, \"repeat\": %d, \"messages\": %llu, "
              "\"bytes\": %llu, \"seconds\": %.4f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f, "
              "\"status\": %d}\n",
              o.method.c_str(), o.streams, o.repeat, (unsigned long long)msgs,
              (unsigned long long)bytes, secs, secs > 0 ? msgs / secs : 0.0,
              secs > 0 ? bytes / secs / 1e6 : 0.0, code);
  if (code) std::fprintf(stderr, "last status %d: %s\n", code, msg.c_str());
  return code ? 1 : 0;
}
