#!/usr/bin/python3
"""Talks to a running nanochatd with the Python stubs generated at build time (build/gen/python)
and prints what it answers: nanochat.v1.Health/Check, grpc.health.v1.Health/Check,
Model.Status, Checkpoint.List, Chat.History and the services listed by server reflection.

    demo_client.py HOST:PORT [--token TOKEN]

Used by scripts/demo (README command 1). Exit status 0 when every call answered."""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "gen", "python"))

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from nanochat.v1 import (chat_pb2, checkpoint_pb2, health_pb2, model_pb2,  # noqa: E402
                         services_pb2_grpc)
from nc_grpc_std.health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc  # noqa: E402
from nc_grpc_std.reflection.v1alpha import reflection_pb2, reflection_pb2_grpc  # noqa: E402


def show(title, msg):
    text = json_format.MessageToJson(msg, preserving_proto_field_name=True, indent=2)
    print("== %s\n%s" % (title, text))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--token", default=os.environ.get("NANOCHAT_TOKEN"))
    a = ap.parse_args()
    md = (("authorization", "Bearer " + a.token),) if a.token else ()
    ch = grpc.insecure_channel(a.target)
    grpc.channel_ready_future(ch).result(timeout=10)

    show("nanochat.v1.Health/Check",
         services_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10))
    r = std_health_grpc.HealthStub(ch).Check(std_health.HealthCheckRequest(service=""), timeout=10)
    print("== grpc.health.v1.Health/Check\n%s" % std_health.HealthCheckResponse.ServingStatus.Name(r.status))
    show("nanochat.v1.Model/Status",
         services_pb2_grpc.ModelStub(ch).Status(model_pb2.ModelStatusRequest(), timeout=10, metadata=md))
    show("nanochat.v1.Checkpoint/List",
         services_pb2_grpc.CheckpointStub(ch).List(checkpoint_pb2.CheckpointListRequest(), timeout=10,
                                                   metadata=md))
    show("nanochat.v1.Chat/History (sessions)",
         services_pb2_grpc.ChatStub(ch).History(chat_pb2.ChatHistoryRequest(page_size=10), timeout=10,
                                                metadata=md))
    refl = reflection_pb2_grpc.ServerReflectionStub(ch)
    resp = next(iter(refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)))
    print("== server reflection: services")
    for s in resp.list_services_response.service:
        print("  " + s.name)
    ch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
