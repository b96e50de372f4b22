#!/usr/bin/env python3
"""gRPC (Python's grpcio) through the mesh, for tests/e2e/data-plane.sh.

Stubs are generated at run time from greeter.proto with grpcio-tools.

  greeter.py serve                      (listens on $STARLING_WORKLOAD_ADDRESS:$PORT, h2c)
  greeter.py call --target H:P --authority greeter.test:50051 --name N [--expect-code NOT_FOUND]

`call` speaks HTTP/2 prior knowledge to H:P (a proxy's outbound listener) with :authority set to
--authority. Without --expect-code it exits 0 when the call succeeds and prints the reply and the
trailers; with it, it exits 0 only when the call fails with exactly that status code.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def load_stubs():
    out = tempfile.mkdtemp(prefix="starling-greeter-")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", HERE, f"--python_out={out}",
                    f"--grpc_python_out={out}", "greeter.proto"], check=True, cwd=HERE)
    sys.path.insert(0, out)
    import greeter_pb2, greeter_pb2_grpc
    # Imported modules stay loaded; the generated files are not needed any more.
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)
    return greeter_pb2, greeter_pb2_grpc


def serve(_args):
    from concurrent import futures
    import grpc
    pb, pb_grpc = load_stubs()

    class Greeter(pb_grpc.GreeterServicer):
        def SayHello(self, request, context):
            client = dict(context.invocation_metadata()).get("starling-client-id", "")
            print(f"SayHello name={request.name} starling-client-id={client}", flush=True)
            context.set_trailing_metadata((("greeter-trailer", "kept"),))
            if request.name == "missing":
                context.abort(grpc.StatusCode.NOT_FOUND, f"no greeting for {request.name}")
            return pb.HelloReply(message=f"hello {request.name}", client_id=client)

    host = os.environ.get("STARLING_WORKLOAD_ADDRESS", "127.0.0.1")
    port = os.environ.get("PORT", "50051")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_GreeterServicer_to_server(Greeter(), server)
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    print(f"greeter listening on {host}:{port}", flush=True)
    server.wait_for_termination()


def call(args):
    import grpc
    pb, pb_grpc = load_stubs()
    channel = grpc.insecure_channel(args.target, options=[
        ("grpc.default_authority", args.authority),
        ("grpc.enable_http_proxy", 0),   # straight to the outbound listener, never via $http_proxy
    ])
    stub = pb_grpc.GreeterStub(channel)
    try:
        reply, call_ = stub.SayHello.with_call(pb.HelloRequest(name=args.name), timeout=args.timeout)
    except grpc.RpcError as e:
        trailers = dict(e.trailing_metadata() or ())
        print(f"status={e.code().name} details={e.details()!r} trailers={trailers}")
        return 0 if args.expect_code == e.code().name else 1
    trailers = dict(call_.trailing_metadata() or ())
    print(f"status=OK message={reply.message!r} client_id={reply.client_id} trailers={trailers}")
    return 0 if args.expect_code is None else 1


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve")
    c = sub.add_parser("call")
    c.add_argument("--target", required=True)
    c.add_argument("--authority", required=True)
    c.add_argument("--name", default="mesh")
    c.add_argument("--expect-code")
    c.add_argument("--timeout", type=float, default=10)
    args = p.parse_args()
    return serve(args) if args.cmd == "serve" else call(args)


if __name__ == "__main__":
    sys.exit(main())
