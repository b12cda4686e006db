#!/usr/bin/python3
"""Python SDK example: health, model status, one streamed chat reply of at most 32 tokens
(without a loaded model: its typed FailedPrecondition error), checkpoints, and (with --test-job,
on a server started with --enable-test-jobs) a job followed to its end.

    PYTHONPATH=build/gen/python:clients/python clients/python/example.py 127.0.0.1:50051 \
        [--token TOKEN] [--prompt TEXT] [--test-job]
Exit status 0 when every call answered as expected (a chat without a loaded model prints its
typed error and does not count as a failure)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nanochat_client as nc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("--token", default=os.environ.get("NANOCHAT_TOKEN"))
    ap.add_argument("--prompt", default="Why is the sky blue?")
    ap.add_argument("--test-job", action="store_true")
    a = ap.parse_args()
    with nc.Client(a.address, token=a.token) as c:
        c.wait_ready(10)
        h = c.health()
        print("health: %s (version %s, model loaded: %s)" % (h.status, h.version, h.model_loaded))
        m = c.model_status()
        if m.loaded:
            print("model: %s %s step %d (%d layers, context %d)" % (
                nc.common_pb2.Phase.Name(m.phase), m.model_tag, m.step, m.config.n_layer, m.config.sequence_len))
        else:
            print("model: none loaded")
        print("chat: ", end="", flush=True)
        try:
            stream = c.chat(a.prompt, max_tokens=32)
            for piece in stream:
                print(piece, end="", flush=True)
            d = stream.done
            print("\nchat: done: %d tokens, %s, session %s" % (
                d.usage.completion_tokens, nc.common_pb2.FinishReason.Name(d.finish_reason), d.session_id))
        except nc.FailedPrecondition as e:      # no model loaded
            print("not available: %s" % e)
        print("checkpoints: %d" % len(c.checkpoints()))
        if a.test_job:
            job = c.test_job(steps=5, step_ms=20)
            for ev in job.progress():
                if ev.kind == nc.train_pb2.EVENT_PROGRESS:
                    print("job %s: step %d/%d loss %.3f" % (job.id, ev.progress.step,
                                                            ev.progress.total_steps, ev.progress.loss))
            print("job %s: %s" % (job.id, nc.state_name(job.wait().state)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except nc.NanochatError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(e.exit_code)
