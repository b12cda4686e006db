// ref_stream_server.cc — the reference for bench_status_stream: a minimal grpc++ async
// generic server that answers ANY method by reading one request message and streaming
// `--messages` copies of a `--size`-byte payload (one write in flight, like nanochatd),
// then OK. It measures the transport ceiling the C-core server is compared with.
//
//   ref_stream_server --port 0 --messages N --size B [--threads T]
// prints "port P" on stdout once listening; stops on SIGTERM/SIGINT or stdin EOF.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

int g_messages = 1000;
std::string g_payload;

struct Call {
  enum State { REQUESTED, READ, WRITING, FINISHING } state = REQUESTED;
  grpc::GenericServerContext ctx;
  grpc::GenericServerAsyncReaderWriter stream{&ctx};
  grpc::ByteBuffer req;
  int sent = 0;
};

void serve(grpc::AsyncGenericService *svc, grpc::ServerCompletionQueue *cq) {
  grpc::Slice slice(g_payload);
  grpc::ByteBuffer msg(&slice, 1);
  auto post = [&]() {
    Call *c = new Call;
    svc->RequestCall(&c->ctx, &c->stream, cq, cq, c);
  };
  post();
  void *tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
    Call *c = static_cast<Call *>(tag);
    switch (c->state) {
      case Call::REQUESTED:
        if (!ok) {  // shutting down
          delete c;
          continue;
        }
        post();
        c->state = Call::READ;
        c->stream.Read(&c->req, c);
        break;
      case Call::READ:
      case Call::WRITING:
        if (ok && c->sent < g_messages) {
          c->state = Call::WRITING;
          c->sent++;
          c->stream.Write(msg, c);
        } else {
          c->state = Call::FINISHING;
          c->stream.Finish(grpc::Status::OK, c);
        }
        break;
      case Call::FINISHING:
        delete c;
        break;
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  int port = 0, size = 100, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--port") port = v;
    else if (k == "--messages") g_messages = v;
    else if (k == "--size") size = v;
    else if (k == "--threads") threads = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (size < 0 || size > (16 << 20) || g_messages < 0 || threads < 1 || threads > 64) return 2;
  g_payload.assign((size_t)size, 'x');
  grpc::AsyncGenericService svc;
  grpc::ServerBuilder b;
  int bound = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  b.RegisterAsyncGenericService(&svc);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < threads; i++) cqs.push_back(b.AddCompletionQueue());
  auto server = b.BuildAndStart();
  if (!server) return 1;
  std::printf("port %d\n", bound);
  std::fflush(stdout);
  std::vector<std::thread> th;
  for (auto &cq : cqs) th.emplace_back(serve, &svc, cq.get());
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {  // stop when the driver closes our stdin
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto &cq : cqs) cq->Shutdown();
  for (auto &t : th) t.join();
  return 0;
}
