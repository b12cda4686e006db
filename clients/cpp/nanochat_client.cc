// nanochat_client.cc — the C++ SDK's wrapper over the generated stubs (see nanochat_client.h).
#include "nanochat_client.h"

namespace nanochat {

namespace {
const char *const kCodeNames[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"};

std::string What(grpc::StatusCode code, const std::string &m) {
  std::string w = Error::CodeName(code);
  if (!m.empty()) w += ": " + m;
  return w;
}
}  // namespace

Error::Error(grpc::StatusCode code, const std::string &message)
    : std::runtime_error(What(code, message)), code_(code), message_(message) {}

const char *Error::CodeName(grpc::StatusCode code) {
  int c = static_cast<int>(code);
  return c >= 0 && c <= 16 ? kCodeNames[c] : "UNKNOWN";
}

void ThrowIfError(const grpc::Status &st) {
  const std::string &m = st.error_message();
  switch (st.error_code()) {
    case grpc::StatusCode::OK: return;
    case grpc::StatusCode::CANCELLED: throw Cancelled(m);
    case grpc::StatusCode::INVALID_ARGUMENT: throw InvalidArgument(m);
    case grpc::StatusCode::DEADLINE_EXCEEDED: throw DeadlineExceeded(m);
    case grpc::StatusCode::NOT_FOUND: throw NotFound(m);
    case grpc::StatusCode::ALREADY_EXISTS: throw AlreadyExists(m);
    case grpc::StatusCode::PERMISSION_DENIED: throw PermissionDenied(m);
    case grpc::StatusCode::RESOURCE_EXHAUSTED: throw ResourceExhausted(m);
    case grpc::StatusCode::FAILED_PRECONDITION: throw FailedPrecondition(m);
    case grpc::StatusCode::ABORTED: throw Aborted(m);
    case grpc::StatusCode::OUT_OF_RANGE: throw OutOfRange(m);
    case grpc::StatusCode::UNIMPLEMENTED: throw Unimplemented(m);
    case grpc::StatusCode::INTERNAL: throw Internal(m);
    case grpc::StatusCode::UNAVAILABLE: throw Unavailable(m);
    case grpc::StatusCode::DATA_LOSS: throw DataLoss(m);
    case grpc::StatusCode::UNAUTHENTICATED: throw Unauthenticated(m);
    default: throw Unknown(m);
  }
}

// ---- ChatStream ---------------------------------------------------------------------------------
bool ChatStream::Next(std::string *piece) {
  v1::ChatStreamResponse ev;
  while (!has_done_ && s_->Next(&ev)) {
    if (ev.has_done()) {
      done_ = ev.done();
      has_done_ = true;
      break;
    }
    if (ev.has_delta() && !ev.delta().text().empty()) {
      *piece = ev.delta().text();
      text_ += *piece;
      return true;
    }
  }
  return false;
}

// ---- Job ----------------------------------------------------------------------------------------
bool Job::Terminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED ||
         s == v1::JOB_INTERRUPTED;
}

namespace {
std::unique_ptr<Stream<v1::JobEvent>> OpenStatus(Client *c, const v1::TrainStatusRequest &req,
                                                 std::chrono::milliseconds timeout) {
  auto ctx = c->Context(timeout);
  auto reader = c->stubs().train->Status(ctx.get(), req);
  return std::make_unique<Stream<v1::JobEvent>>(std::move(ctx), std::move(reader));
}

void ReadSnapshot(Stream<v1::JobEvent> *s, v1::JobEvent *snap) {
  if (!s->Next(snap) || snap->kind() != v1::EVENT_SNAPSHOT) throw NotFound("no snapshot for the job");
}
}  // namespace

v1::JobInfo Job::Status() {
  v1::TrainStatusRequest req;
  req.set_job_id(id());
  req.set_follow(false);
  req.set_from_seq(0);
  auto s = OpenStatus(client_, req, client_->timeout());
  v1::JobEvent snap;
  ReadSnapshot(s.get(), &snap);
  return snap.job();
}

std::unique_ptr<Stream<v1::JobEvent>> Job::Progress(uint64_t from_seq, bool follow,
                                                    std::chrono::milliseconds timeout,
                                                    bool include_snapshot) {
  v1::TrainStatusRequest req;
  req.set_job_id(id());
  req.set_follow(follow);
  req.set_from_seq(from_seq);
  auto s = OpenStatus(client_, req, timeout);
  if (!include_snapshot) {
    v1::JobEvent snap;
    ReadSnapshot(s.get(), &snap);
  }
  return s;
}

v1::JobInfo Job::Cancel() {
  v1::TrainCancelRequest req;
  req.set_job_id(id());
  v1::JobInfo info;
  auto ctx = client_->Context(client_->timeout());
  ThrowIfError(client_->stubs().train->Cancel(ctx.get(), req, &info));
  return info;
}

v1::JobInfo Job::Wait(std::chrono::milliseconds timeout) {
  {
    auto s = Progress(0, true, timeout);
    v1::JobEvent ev;
    while (s->Next(&ev)) {
    }
  }
  v1::JobInfo info = Status();
  if (!Terminal(info.state())) throw Internal("the job's stream ended before the job did");
  return info;
}

// ---- Client -------------------------------------------------------------------------------------
Client::Client(ClientOptions options) : opts_(std::move(options)) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (opts_.tls || !opts_.root_pem.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = opts_.root_pem;
    creds = grpc::SslCredentials(ssl);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  if (!opts_.server_name.empty()) args.SetSslTargetNameOverride(opts_.server_name);
  channel_ = grpc::CreateCustomChannel(opts_.address, creds, args);
  stubs_.chat = v1::Chat::NewStub(channel_);
  stubs_.checkpoint = v1::Checkpoint::NewStub(channel_);
  stubs_.eval = v1::Eval::NewStub(channel_);
  stubs_.health = v1::Health::NewStub(channel_);
  stubs_.model = v1::Model::NewStub(channel_);
  stubs_.tokenizer = v1::Tokenizer::NewStub(channel_);
  stubs_.tools = v1::Tools::NewStub(channel_);
  stubs_.train = v1::Train::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> Client::Context(std::chrono::milliseconds timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!opts_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + opts_.token);
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

void Client::WaitReady(std::chrono::milliseconds timeout) {
  if (!channel_->WaitForConnected(std::chrono::system_clock::now() + timeout))
    throw Unavailable("cannot connect to " + opts_.address);
}

// One unary call through stub method `fn` with the client's timeout (or none when the server
// has a default deadline for the method: `server_default`).
#define NC_UNARY(stub, Method, req, Resp, server_default)                          \
  [&]() {                                                                          \
    Resp resp;                                                                     \
    auto ctx = Context(server_default ? std::chrono::milliseconds(0) : opts_.timeout); \
    ThrowIfError(stubs_.stub->Method(ctx.get(), req, &resp));                      \
    return resp;                                                                   \
  }()

v1::HealthCheckResponse Client::Health() {
  v1::HealthCheckRequest req;
  return NC_UNARY(health, Check, req, v1::HealthCheckResponse, false);
}

v1::ModelStatus Client::ModelStatus() {
  v1::ModelStatusRequest req;
  return NC_UNARY(model, Status, req, v1::ModelStatus, false);
}

v1::ModelStatus Client::LoadModel(const v1::ModelLoadRequest &req) {
  return NC_UNARY(model, Load, req, v1::ModelStatus, true);
}

v1::ModelStatus Client::UnloadModel() {
  v1::ModelUnloadRequest req;
  return NC_UNARY(model, Unload, req, v1::ModelStatus, false);
}

v1::SampleResponse Client::Sample(const v1::SampleRequest &req) {
  return NC_UNARY(model, Sample, req, v1::SampleResponse, true);
}

std::unique_ptr<ChatStream> Client::Chat(const v1::ChatRequest &req) {
  auto ctx = Context(std::chrono::milliseconds(0));
  auto reader = stubs_.chat->Stream(ctx.get(), req);
  return std::make_unique<ChatStream>(
      std::make_unique<Stream<v1::ChatStreamResponse>>(std::move(ctx), std::move(reader)));
}

std::unique_ptr<ChatStream> Client::Chat(const std::string &prompt, v1::ChatRequest opts) {
  opts.clear_messages();
  v1::ChatMessage *m = opts.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(prompt);
  return Chat(opts);
}

v1::ChatResponse Client::Complete(const std::string &prompt, v1::ChatRequest opts) {
  opts.clear_messages();
  v1::ChatMessage *m = opts.add_messages();
  m->set_role(v1::ROLE_USER);
  m->set_content(prompt);
  return NC_UNARY(chat, Complete, opts, v1::ChatResponse, true);
}

v1::ChatHistoryResponse Client::History(const v1::ChatHistoryRequest &req) {
  return NC_UNARY(chat, History, req, v1::ChatHistoryResponse, false);
}

std::vector<v1::CheckpointInfo> Client::Checkpoints(const v1::CheckpointListRequest &req) {
  v1::CheckpointListResponse r = NC_UNARY(checkpoint, List, req, v1::CheckpointListResponse, false);
  return {r.checkpoints().begin(), r.checkpoints().end()};
}

v1::ExecuteResponse Client::Execute(const v1::ExecuteRequest &req) {
  return NC_UNARY(tools, Execute, req, v1::ExecuteResponse, true);
}

Job Client::TrainTokenizer(const v1::TrainTokenizerRequest &req) {
  return Job(this, NC_UNARY(train, Tokenizer, req, v1::JobRef, false));
}
Job Client::TrainBase(const v1::TrainBaseRequest &req) {
  return Job(this, NC_UNARY(train, Base, req, v1::JobRef, false));
}
Job Client::TrainSft(const v1::TrainSftRequest &req) {
  return Job(this, NC_UNARY(train, Sft, req, v1::JobRef, false));
}
Job Client::TrainRl(const v1::TrainRlRequest &req) {
  return Job(this, NC_UNARY(train, Rl, req, v1::JobRef, false));
}
Job Client::TestJob(const v1::TestJobRequest &req) {
  return Job(this, NC_UNARY(train, TestJob, req, v1::JobRef, false));
}
Job Client::EvalCore(const v1::EvalCoreRequest &req) {
  return Job(this, NC_UNARY(eval, Core, req, v1::JobRef, false));
}
Job Client::EvalChat(const v1::EvalChatRequest &req) {
  return Job(this, NC_UNARY(eval, Chat, req, v1::JobRef, false));
}

Job Client::GetJob(const std::string &job_id) {
  v1::JobRef ref;
  ref.set_job_id(job_id);
  return Job(this, ref);
}

std::vector<v1::JobInfo> Client::Jobs(uint32_t limit) {
  v1::TrainStatusRequest req;
  req.set_limit(limit);
  auto ctx = Context(opts_.timeout);
  auto reader = stubs_.train->Status(ctx.get(), req);
  Stream<v1::JobEvent> s(std::move(ctx), std::move(reader));
  std::vector<v1::JobInfo> out;
  for (v1::JobEvent ev; s.Next(&ev);)
    if (ev.kind() == v1::EVENT_SNAPSHOT) out.push_back(ev.job());
  return out;
}

#undef NC_UNARY

}  // namespace nanochat
