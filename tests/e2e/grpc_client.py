#!/usr/bin/env python3
"""A gRPC client we did not write (Python's grpcio), talking to a Starling controller.

Stubs are generated at run time from the committed Protos/ with grpcio-tools, so this checks the
wire contract, not our Swift client.

  grpc_client.py certify --server H:P --ca CA.pem --token T --identity ID --out DIR
  grpc_client.py destination-get --server H:P --ca CA.pem --token T --path AUTH --expect N [--timeout S]
  grpc_client.py certify-forged ...   (a CSR whose signature is broken: must be refused)
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_stubs():
    out = tempfile.mkdtemp(prefix="starling-stubs-")
    protos = os.path.join(ROOT, "Protos")
    files = [os.path.join("starling", "v1", f) for f in ("identity.proto", "destination.proto", "mesh.proto")]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", protos, f"--python_out={out}", f"--grpc_python_out={out}"] + files,
        check=True, cwd=protos)
    sys.path.insert(0, out)
    from starling.v1 import identity_pb2, identity_pb2_grpc, destination_pb2, destination_pb2_grpc
    # Imported modules stay loaded; the generated files are not needed any more.
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)
    return identity_pb2, identity_pb2_grpc, destination_pb2, destination_pb2_grpc


def channel(args):
    import grpc
    with open(args.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(args.server, creds)


def make_csr(identity):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    ns_sa = identity.split(".serviceaccount.identity.starling.")
    sa, ns = ns_sa[0].split(".")
    domain = ns_sa[1]
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
           .add_extension(x509.SubjectAlternativeName([
               x509.DNSName(identity),
               x509.UniformResourceIdentifier(f"spiffe://{domain}/ns/{ns}/sa/{sa}")]), critical=False)
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return csr.public_bytes(serialization.Encoding.DER), key_pem


def certify(args, forge=False):
    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    identity_pb2, identity_pb2_grpc, _, _ = load_stubs()
    csr_der, key_pem = make_csr(args.identity)
    if forge:
        csr_der = csr_der[:-4] + bytes(b ^ 0xFF for b in csr_der[-4:])
    stub = identity_pb2_grpc.IdentityStub(channel(args))
    try:
        response = stub.Certify(identity_pb2.CertifyRequest(
            identity=args.identity, token=args.token, certificate_signing_request=csr_der), timeout=10)
    except grpc.RpcError as e:
        print(f"refused: {e.code().name}: {e.details()}")
        return 3
    os.makedirs(args.out, exist_ok=True)
    pems = [x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in response.chain]
    with open(os.path.join(args.out, "leaf.pem"), "wb") as f:
        f.write(pems[0])
    with open(os.path.join(args.out, "chain.pem"), "wb") as f:
        f.write(b"".join(pems[1:]))
    with open(os.path.join(args.out, "anchors.pem"), "w") as f:
        f.write(response.trust_anchors_pem)
    fd = os.open(os.path.join(args.out, "leaf.key"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, key_pem)
    os.close(fd)
    leaf = x509.load_der_x509_certificate(response.chain[0])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    print("certified", ",".join(str(n.value) for n in sans), "valid-until", response.valid_until,
          "lifetime-hours", round((leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() / 3600, 2))
    return 0


def destination_get(args):
    import grpc
    _, _, destination_pb2, destination_pb2_grpc = load_stubs()
    stub = destination_pb2_grpc.DestinationStub(channel(args))
    metadata = [("authorization", f"Bearer {args.token}")]
    stream = stub.Get(destination_pb2.GetDestination(path=args.path), metadata=metadata, timeout=args.timeout)
    endpoints = set()
    deadline = time.time() + args.timeout
    try:
        for update in stream:
            kind = update.WhichOneof("update")
            if kind == "add":
                for a in update.add.addrs:
                    endpoints.add((a.ip, a.port, a.identity))
            elif kind == "remove":
                for a in update.remove.addrs:
                    endpoints.discard((a.ip, a.port, a.identity))
            print(kind, sorted(endpoints), flush=True)
            if len(endpoints) == args.expect:
                stream.cancel()
                print("endpoints", len(endpoints))
                return 0
            if time.time() > deadline:
                break
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            print(f"stream failed: {e.code().name}: {e.details()}")
            return 3
    print(f"expected {args.expect} endpoints, saw {len(endpoints)}")
    return 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["certify", "certify-forged", "destination-get"])
    p.add_argument("--server", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--identity")
    p.add_argument("--out", default=".")
    p.add_argument("--path")
    p.add_argument("--expect", type=int, default=1)
    p.add_argument("--timeout", type=float, default=10)
    args = p.parse_args()
    if args.command == "certify":
        return certify(args)
    if args.command == "certify-forged":
        return certify(args, forge=True)
    return destination_get(args)


if __name__ == "__main__":
    sys.exit(main())
