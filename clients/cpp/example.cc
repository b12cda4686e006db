// example.cc — C++ SDK example: health, model status, one streamed chat reply of at most 32
// tokens (without a loaded model: its typed FailedPrecondition error), checkpoints, and with
// --test-job a job followed to its end (server started with --enable-test-jobs).
//
//   build/bin/nanochat-cpp-example 127.0.0.1:50051 [--test-job]    (token from $NANOCHAT_TOKEN)
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "nanochat_client.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " HOST:PORT [--test-job]\n";
    return 2;
  }
  nanochat::ClientOptions o;
  o.address = argv[1];
  if (const char *t = getenv("NANOCHAT_TOKEN")) o.token = t;
  try {
    nanochat::Client c(o);
    auto h = c.Health();
    std::cout << "health: " << h.status() << " (version " << h.version() << ")\n";
    auto m = c.ModelStatus();
    if (m.loaded())
      std::cout << "model: " << nanochat::v1::Phase_Name(m.phase()) << " " << m.model_tag() << " step "
                << m.step() << " (" << m.config().n_layer() << " layers, context "
                << m.config().sequence_len() << ")\n";
    else
      std::cout << "model: none loaded\n";
    std::cout << "chat: " << std::flush;
    try {
      nanochat::v1::ChatRequest opts;
      opts.set_max_tokens(32);
      auto chat = c.Chat("Why is the sky blue?", opts);
      for (const std::string &piece : *chat) std::cout << piece << std::flush;
      const nanochat::v1::ChatDone &done = *chat->done();
      std::cout << "\nchat: done: " << done.usage().completion_tokens() << " tokens, "
                << nanochat::v1::FinishReason_Name(done.finish_reason()) << ", session "
                << done.session_id() << "\n";
    } catch (const nanochat::FailedPrecondition &e) {   // no model loaded
      std::cout << "not available: " << e.what() << "\n";
    }
    std::cout << "checkpoints: " << c.Checkpoints().size() << "\n";
    if (argc > 2 && strcmp(argv[2], "--test-job") == 0) {
      nanochat::v1::TestJobRequest rq;
      rq.set_steps(5);
      rq.set_step_ms(20);
      nanochat::Job job = c.TestJob(rq);
      auto events = job.Progress();
      for (nanochat::v1::JobEvent ev; events->Next(&ev);)
        if (ev.kind() == nanochat::v1::EVENT_PROGRESS)
          std::cout << "job " << job.id() << ": step " << ev.progress().step() << "/"
                    << ev.progress().total_steps() << " loss " << ev.progress().loss() << "\n";
      std::cout << "job " << job.id() << ": "
                << nanochat::v1::JobState_Name(job.Wait().state()) << "\n";
    }
  } catch (const nanochat::Error &e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
