// nanochat_client.h — C++ SDK of nanochatd: the stubs protoc + grpc_cpp_plugin generate from
// proto/ at build time (build/gen/cpp, library nccpp) plus a thin wrapper.
//
//   nanochat::ClientOptions o;
//   o.address = "127.0.0.1:50051";
//   nanochat::Client c(o);
//   std::cout << c.Health().status() << "\n";
//   auto chat = c.Chat("Why is the sky blue?");
//   for (const std::string &piece : *chat) std::cout << piece << std::flush;
//   nanochat::Job job = c.TrainBase(req);          // Train.Base
//   auto events = job.Progress();                   // Stream<JobEvent>
//   for (nanochat::v1::JobEvent ev; events->Next(&ev);) ...
//   nanochat::v1::JobInfo final_info = job.Wait();
//
// Errors: every call that does not end OK throws a subclass of nanochat::Error matching the
// gRPC status code (Unimplemented, FailedPrecondition, Unauthenticated, ...), carrying the code
// and the server's message. The generated stubs stay reachable for every other method
// (client.stubs().train->Status(...)); API reference: docs/api.md.
//
// Threads: a Client may be shared by threads; a Stream / ChatStream by one thread at a time
// (Cancel() from any thread).
#ifndef NANOCHAT_CLIENT_H
#define NANOCHAT_CLIENT_H

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nanochat/v1/services.grpc.pb.h"

namespace nanochat {

// ---- typed errors -----------------------------------------------------------------------------
class Error : public std::runtime_error {
 public:
  Error(grpc::StatusCode code, const std::string &message);
  grpc::StatusCode code() const { return code_; }
  const std::string &message() const { return message_; }
  // "UNIMPLEMENTED", ...
  static const char *CodeName(grpc::StatusCode code);

 private:
  grpc::StatusCode code_;
  std::string message_;
};

#define NANOCHAT_ERROR(Name, CODE) \
  class Name : public Error {      \
   public:                         \
    explicit Name(const std::string &m) : Error(grpc::StatusCode::CODE, m) {} \
  };
NANOCHAT_ERROR(Cancelled, CANCELLED)
NANOCHAT_ERROR(Unknown, UNKNOWN)
NANOCHAT_ERROR(InvalidArgument, INVALID_ARGUMENT)
NANOCHAT_ERROR(DeadlineExceeded, DEADLINE_EXCEEDED)
NANOCHAT_ERROR(NotFound, NOT_FOUND)
NANOCHAT_ERROR(AlreadyExists, ALREADY_EXISTS)
NANOCHAT_ERROR(PermissionDenied, PERMISSION_DENIED)
NANOCHAT_ERROR(ResourceExhausted, RESOURCE_EXHAUSTED)
NANOCHAT_ERROR(FailedPrecondition, FAILED_PRECONDITION)
NANOCHAT_ERROR(Aborted, ABORTED)
NANOCHAT_ERROR(OutOfRange, OUT_OF_RANGE)
NANOCHAT_ERROR(Unimplemented, UNIMPLEMENTED)
NANOCHAT_ERROR(Internal, INTERNAL)
NANOCHAT_ERROR(Unavailable, UNAVAILABLE)
NANOCHAT_ERROR(DataLoss, DATA_LOSS)
NANOCHAT_ERROR(Unauthenticated, UNAUTHENTICATED)
#undef NANOCHAT_ERROR

// Throws the Error subclass for status (no-op when it is OK).
void ThrowIfError(const grpc::Status &status);

// ---- connection ---------------------------------------------------------------------------------
struct ClientOptions {
  std::string address = "127.0.0.1:50051";
  std::string token;        // bearer token, empty = none
  bool tls = false;         // TLS with root_pem (empty = system roots)
  std::string root_pem;
  std::string server_name;  // certificate name override
  std::chrono::milliseconds timeout{30000};  // unary calls without a server default deadline
};

// The generated stubs, one per service of proto/nanochat/v1/services.proto.
struct Stubs {
  std::unique_ptr<v1::Chat::Stub> chat;
  std::unique_ptr<v1::Checkpoint::Stub> checkpoint;
  std::unique_ptr<v1::Eval::Stub> eval;
  std::unique_ptr<v1::Health::Stub> health;
  std::unique_ptr<v1::Model::Stub> model;
  std::unique_ptr<v1::Tokenizer::Stub> tokenizer;
  std::unique_ptr<v1::Tools::Stub> tools;
  std::unique_ptr<v1::Train::Stub> train;
};

class Client;

// A server stream of T. Next() returns false at the end of a stream that ended OK and throws
// the typed error otherwise.
template <class T>
class Stream {
 public:
  Stream(std::unique_ptr<grpc::ClientContext> ctx, std::unique_ptr<grpc::ClientReader<T>> reader)
      : ctx_(std::move(ctx)), reader_(std::move(reader)) {}
  ~Stream() {
    if (!finished_) {
      ctx_->TryCancel();
      grpc::Status ignored = reader_->Finish();
      (void)ignored;
    }
  }
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;

  bool Next(T *msg) {
    if (finished_) {
      ThrowIfError(status_);
      return false;
    }
    if (reader_->Read(msg)) return true;
    finished_ = true;
    status_ = reader_->Finish();
    ThrowIfError(status_);
    return false;
  }
  void Cancel() { ctx_->TryCancel(); }

 private:
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<T>> reader_;
  bool finished_ = false;
  grpc::Status status_;
};

// Chat.Stream: iterate the reply's text pieces (also with range-for); done() after the end.
class ChatStream {
 public:
  explicit ChatStream(std::unique_ptr<Stream<v1::ChatStreamResponse>> s) : s_(std::move(s)) {}
  // Next text piece; false once the reply is complete (done() is then set).
  bool Next(std::string *piece);
  const v1::ChatDone *done() const { return has_done_ ? &done_ : nullptr; }
  // The whole reply so far (done().content once complete).
  std::string text() const { return has_done_ && !done_.content().empty() ? done_.content() : text_; }
  void Cancel() { s_->Cancel(); }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string *;
    using reference = const std::string &;
    iterator() = default;
    explicit iterator(ChatStream *s) : s_(s) { ++*this; }
    reference operator*() const { return piece_; }
    iterator &operator++() {
      if (s_ && !s_->Next(&piece_)) s_ = nullptr;
      return *this;
    }
    bool operator==(const iterator &o) const { return s_ == o.s_; }
    bool operator!=(const iterator &o) const { return s_ != o.s_; }

   private:
    ChatStream *s_ = nullptr;
    std::string piece_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::unique_ptr<Stream<v1::ChatStreamResponse>> s_;
  v1::ChatDone done_;
  bool has_done_ = false;
  std::string text_;
};

// A job on the server (Train.*, Eval.Core/Chat, Train.TestJob).
class Job {
 public:
  Job(Client *client, v1::JobRef ref) : client_(client), ref_(std::move(ref)) {}
  const std::string &id() const { return ref_.job_id(); }
  const v1::JobRef &ref() const { return ref_; }
  // The job now (the SNAPSHOT of Train.Status).
  v1::JobInfo Status();
  // Stored events with seq >= from_seq (0 = none), then live ones with follow; the SNAPSHOT
  // that opens the stream is skipped unless include_snapshot. timeout 0 = none.
  std::unique_ptr<Stream<v1::JobEvent>> Progress(uint64_t from_seq = 1, bool follow = true,
                                                 std::chrono::milliseconds timeout = {},
                                                 bool include_snapshot = false);
  v1::JobInfo Cancel();
  // Follows the job until it ends (DeadlineExceeded after timeout, 0 = none).
  v1::JobInfo Wait(std::chrono::milliseconds timeout = {});
  static bool Terminal(v1::JobState s);

 private:
  Client *client_;
  v1::JobRef ref_;
};

class Client {
 public:
  explicit Client(ClientOptions options);
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;

  // Blocks until connected; Unavailable after timeout.
  void WaitReady(std::chrono::milliseconds timeout);

  v1::HealthCheckResponse Health();
  v1::ModelStatus ModelStatus();
  v1::ModelStatus LoadModel(const v1::ModelLoadRequest &req);
  v1::ModelStatus UnloadModel();
  // Model.Sample: raw continuations of a prompt from the served model.
  v1::SampleResponse Sample(const v1::SampleRequest &req);

  // Chat.Stream with one user message (opts: temperature, session_id, ...; its messages are
  // replaced) — iterate the returned ChatStream.
  std::unique_ptr<ChatStream> Chat(const std::string &prompt, v1::ChatRequest opts = {});
  std::unique_ptr<ChatStream> Chat(const v1::ChatRequest &req);
  v1::ChatResponse Complete(const std::string &prompt, v1::ChatRequest opts = {});
  v1::ChatHistoryResponse History(const v1::ChatHistoryRequest &req = {});

  std::vector<v1::CheckpointInfo> Checkpoints(const v1::CheckpointListRequest &req = {});
  v1::ExecuteResponse Execute(const v1::ExecuteRequest &req);

  Job TrainTokenizer(const v1::TrainTokenizerRequest &req);
  Job TrainBase(const v1::TrainBaseRequest &req);
  Job TrainSft(const v1::TrainSftRequest &req);
  Job TrainRl(const v1::TrainRlRequest &req);
  Job TestJob(const v1::TestJobRequest &req);
  Job EvalCore(const v1::EvalCoreRequest &req);
  Job EvalChat(const v1::EvalChatRequest &req);
  Job GetJob(const std::string &job_id);
  std::vector<v1::JobInfo> Jobs(uint32_t limit = 100);

  // A context carrying the token and, when timeout > 0, a deadline.
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds timeout) const;
  std::chrono::milliseconds timeout() const { return opts_.timeout; }
  Stubs &stubs() { return stubs_; }

 private:
  ClientOptions opts_;
  std::shared_ptr<grpc::Channel> channel_;
  Stubs stubs_;
};

}  // namespace nanochat

#endif
