#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/TARGET/ (docs/fuzzing.md).

Resources come from the YAML in Tests/ and tests/e2e; certificates and keys are made with
`starling certs create` (throwaway keys, valid at the fuzzer's fixed time 2026-12-06T12:00Z);
join tokens are signed with the fuzzer's fixed key (bytes 0..31). Run from the repository root
with a built `starling` (default .build/debug/starling, or $STARLING):

    python3 tests/fuzz/make-corpus.py
"""
import base64, glob, hashlib, hmac, json, os, re, shutil, subprocess, tempfile, textwrap

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
STARLING = os.path.abspath(os.environ.get("STARLING", ".build/debug/starling"))
MAX_SEED = 3000  # bytes; keeps each corpus at a few KB


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return False
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)
    return True


# MARK: resources and store-apply

def yaml_documents():
    """Multi-line Swift string literals and shell heredocs that hold a resource."""
    found = []
    for path in sorted(glob.glob("Tests/**/*.swift", recursive=True)):
        text = open(path).read()
        for block in re.findall(r'"""\n(.*?)\n\s*"""', text, re.S):
            if "kind:" in block and "apiVersion:" in block and "\\(" not in block:
                found.append(textwrap.dedent(block) + "\n")
    for path in sorted(glob.glob("tests/e2e/*.sh")):
        text = open(path).read()
        for block in re.findall(r"<<-?'?(\w+)'?\n(.*?)\n\1\n", text, re.S):
            body = block[1]
            if "kind:" in body and "apiVersion:" in body and "$" not in body:
                found.append(textwrap.dedent(body) + "\n")
    return found


def resources():
    seen, kinds = set(), {}
    for doc in yaml_documents():
        try:
            parsed = [d for d in yaml.safe_load_all(doc) if d]
        except yaml.YAMLError:
            parsed = []
        kind = parsed[0].get("kind", "?") if parsed and isinstance(parsed[0], dict) else "invalid"
        digest = hashlib.sha1(doc.encode()).hexdigest()[:10]
        if digest in seen or kinds.get(kind, 0) >= 3:
            continue
        if not write("resources", f"{kind.lower()}-{digest}.yaml", doc):
            continue
        seen.add(digest)
        kinds[kind] = kinds.get(kind, 0) + 1
        # The same resources as JSON, and through the store with each flag (bit 0: a poisoned
        # resource makes the batch fail after its rows are written; bit 1: delete afterwards).
        if parsed and kind != "invalid":
            write("resources", f"{kind.lower()}-{digest}.json", json.dumps(parsed[0] if len(parsed) == 1 else parsed))
            write("store-apply", f"{kind.lower()}-{digest}-{kinds[kind] % 4}", bytes([kinds[kind] % 4]) + doc.encode())
    # A List with two kinds, and a JSON stream.
    write("resources", "list.yaml", textwrap.dedent("""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Namespace
          metadata: {name: test}
        - apiVersion: v1
          kind: Service
          metadata: {name: web, namespace: test, labels: {app: web}}
          spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
        """))
    # A Link naming one gateway per replica (the LinkSpec address lists).
    write("resources", "link-replicas.yaml", textwrap.dedent("""\
        apiVersion: multicluster.starling.io/v1alpha1
        kind: Link
        metadata:
          name: workload2
          namespace: starling-multicluster
        spec:
          targetClusterName: workload2
          apiAddress: 127.2.0.1:8086,127.2.0.4:8086
          credentialsSecret: {name: cluster-credentials-workload2}
          gatewayAddresses: [127.2.0.2, 127.2.0.3, gw.workload2.example]
          gatewayPort: 4143
          gatewayIdentity: starling-gateway.starling-multicluster.serviceaccount.identity.starling.cluster.local
          probeSpec: {path: /ready, period: 3s}
        """))
    write("store-apply", "list-1", b"\x01" + open(os.path.join(ROOT, "resources", "list.yaml"), "rb").read())
    write("store-apply", "list-2", b"\x02" + open(os.path.join(ROOT, "resources", "list.yaml"), "rb").read())
    write("resources", "stream.json",
          '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}\n'
          '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b","labels":{"x":"1"}}}\n')


# MARK: small text targets

def text_targets():
    selectors = {
        "equals": "app=podinfo\napp=podinfo\n",
        "set": "app in (podinfo,web),tier notin (db),!canary\napp=web\ntier=front\n",
        "mixed": "a==b,c!=d,e,mirror.starling.io/exported=true\na=b\ne=\n",
        "empty": "\nx=y\n",
    }
    for name, text in selectors.items():
        write("label-selector", name, text)
    for name, text in {"milli": "500m\n1h30m\n", "binary": "2Ki\n1.5s\n", "exponent": "1e3\n-3m20.5s\n",
                       "fraction": "0.001\n300ms\n", "big": "9223372036854775807m\n2562047h47m16.854775807s\n",
                       "units": "1k\n1µs1ns\n"}.items():
        write("quantity-duration", name, text)
    # flags: bit 0 Exact, bit 1 method line, high nibble: header lines.
    write("route-match", "prefix-exact", b"\x00/api\n\x01/api/users\nGET\n/api/users?x=1\nx-user:1\n")
    write("route-match", "method-headers", b"\x22/\nPOST\nx-canary:true\n\x00/v1/\nPOST\n/v1/items\nx-canary:true\n")
    authorities = ["podinfo.test.svc.cluster.local:9898", "podinfo.test:9898", "PodInfo.Test.svc.", "[::1]:8080",
                   "[fe80::1%25eth0]:443", "127.0.0.1", "example.com:80", "a:b:c", "host:0", "host:65536", ":80",
                   "spiffe://cluster.local/ns/test/sa/podinfo",
                   "podinfo.test.serviceaccount.identity.starling.cluster.local", "127.2.0.2, 127.2.0.3",
                   "http://user@web.test:8080/path?q"]
    write("authority", "hosts", "\n".join(authorities) + "\n")
    for i, a in enumerate(authorities):
        write("authority", f"one-{i}", a + "\n")
    heads = {
        "get": "GET /hello HTTP/1.1\r\nHost: podinfo.test:9898\r\nUser-Agent: curl\r\n\r\n",
        "absolute": "GET http://web.test.svc.cluster.local:8080/a?b=c HTTP/1.1\r\nHost: other\r\n\r\n",
        "connect": "CONNECT web.test:443 HTTP/1.1\r\nHost: web.test:443\r\n\r\n",
        "chunked": "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "smuggle": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "pipelined": "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nHEAD /2 HTTP/1.0\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\n\r\n",
        "upgrade": "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        "options": "OPTIONS * HTTP/1.1\r\nHost: a:80\r\nContent-Length: 0\r\n\r\n",
    }
    for name, text in heads.items():
        write("http1-head", name, text)
    h2 = {
        "request": b"\x00:method:GET\n:scheme:http\n:authority:web.test:8080\n:path:/a\nte:trailers\nx-a:1\n",
        "response": b"\x00:status:200\ncontent-type:text/plain\nconnection:close\n",
        "head-response": b"\x01:status:200\ncontent-length:12\n",
        "no-content": b"\x02:status:204\ntransfer-encoding:chunked\n",
        "grpc-trailers": b"\x00grpc-status:0\ngrpc-message:ok\n",
    }
    for name, data in h2.items():
        write("http2-head", name, data)
    detect = {
        "h2": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
        "h1": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "propfind": b"PROPFIND /x HTTP/1.1\r\n",
        "tls": bytes.fromhex("16030100f5010000f10303") + bytes(32),
        "postgres": bytes.fromhex("0000000804d2162f"),
        "partial": b"PRI * HT",
    }
    for name, data in detect.items():
        write("protocol-detect", name, data)
    for i, authority in enumerate(["podinfo.test.svc.cluster.local:9898", "web.test:80", "[::1]:5432", "x"]):
        raw = authority.encode()
        header = b"SOT1" + len(raw).to_bytes(2, "big") + raw
        write("gateway-target", f"header-{i}", bytes([1 + i * 3]) + header + b"payload")
    write("gateway-target", "bad-magic", b"\x04SOT2\x00\x01x")
    write("gateway-target", "too-long", b"\x02SOT1\x04\x01" + b"a" * 16)


# MARK: certificates, keys, CSRs

def pem_target():
    work = tempfile.mkdtemp()
    try:
        def certs(*args):
            subprocess.run([STARLING, "certs", "create", *args, "--no-password", "--insecure"], check=True,
                           stdout=subprocess.DEVNULL, cwd=work)
        # Valid at the fuzzer's fixed time (2026-12-06T12:00Z), in the walkthrough's shape.
        certs("identity.starling.cluster.local", "root.crt", "root.key", "--profile", "root-ca",
              "--not-before", "2026-12-01T00:00:00Z", "--not-after", "2036-12-01T00:00:00Z")
        certs("identity.starling.cluster.local", "issuer.crt", "issuer.key", "--profile", "intermediate-ca",
              "--not-before", "2026-12-01T00:00:00Z", "--not-after", "2027-12-01T00:00:00Z",
              "--ca", "root.crt", "--ca-key", "root.key")
        certs("podinfo.test.serviceaccount.identity.starling.cluster.local", "leaf.crt", "leaf.key",
              "--not-before", "2026-12-01T00:00:00Z", "--not-after", "2027-01-01T00:00:00Z",
              "--ca", "issuer.crt", "--ca-key", "issuer.key",
              "--san", "spiffe://cluster.local/ns/test/sa/podinfo")
        subprocess.run(["openssl", "req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj",
                        "/CN=podinfo.test.serviceaccount.identity.starling.cluster.local"], check=True, cwd=work)
        subprocess.run(["openssl", "ec", "-in", "leaf.key", "-out", "leaf-sec1.key"], check=True, cwd=work,
                       stderr=subprocess.DEVNULL)
        read = lambda name: open(os.path.join(work, name), "rb").read()
        for name in ["root.crt", "issuer.crt", "leaf.crt", "leaf.key", "leaf-sec1.key", "leaf.csr"]:
            write("pem", name, read(name))
        write("pem", "chain.crt", read("leaf.crt") + read("issuer.crt"))
        write("pem", "cert-and-key", read("leaf.crt") + read("leaf.key"))
        # DER with the fuzzer's mode byte: 0 certificate, 1 PKCS#8, 2 SEC1, 3 CSR.
        def der(name, mode):
            text = read(name).decode()
            body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
            first = text.split("-----END")[0]
            body = "".join(line for line in first.splitlines() if not line.startswith("-----"))
            write("pem", f"{name}.der", bytes([mode]) + base64.b64decode(body))
        # A MeshConfig carrying the generated root and issuer (the one kind with PEM inside).
        indent = lambda pem, n: "".join(" " * n + line + "\n" for line in pem.decode().splitlines())
        mesh = ("apiVersion: config.starling.io/v1alpha1\nkind: MeshConfig\nmetadata:\n  name: mesh\nspec:\n"
                "  clusterName: workload1\n  identity:\n    trustAnchorsPEM: |\n" + indent(read("root.crt"), 6)
                + "    issuer:\n      certificatePEM: |\n" + indent(read("issuer.crt"), 8)
                + "      keySecret:\n        name: issuer-key\n        namespace: starling\n")
        write("resources", "meshconfig.yaml", mesh)
        write("store-apply", "meshconfig-3", b"\x03" + mesh.encode())
        der("leaf.crt", 0); der("root.crt", 4); der("leaf.key", 1); der("leaf-sec1.key", 2); der("leaf.csr", 3)
    finally:
        shutil.rmtree(work)


# MARK: join tokens

KEY = bytes(range(32))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(KEY, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(mac)


def join_tokens():
    now = 1796558400  # the fuzzer's fixed time
    base = {"ns": "test", "sa": "podinfo", "iat": now - 60, "exp": now + 86400, "jti": "0f1e2d3c", "aud": "starling-join"}
    cases = {
        "valid": base,
        "service": dict(base, svc="podinfo", cluster="workload1"),
        "link": dict(base, aud="starling-link", ns="starling-multicluster", sa="workload2"),
        "expired": dict(base, exp=now - 1),
        "future": dict(base, iat=now + 3600),
        "empty-ns": dict(base, ns=""),
    }
    for name, claims in cases.items():
        write("join-token", f"raw-{name}", b"\x00" + token(claims).encode())
        write("join-token", f"signed-{name}", b"\x01" + b'{"alg":"HS256","typ":"JWT"}\n'
              + json.dumps(claims, separators=(",", ":")).encode())
    write("join-token", "raw-none-alg", b"\x00" + token(base, {"alg": "none"}).encode())
    write("join-token", "raw-garbage", b"\x00a.b.c")



# MARK: authorization policy

AUTHZ_SEEDS = {
    'namespace-default': 'curl.test.serviceaccount.identity.starling.cluster.local\n\n::ffff:127.0.0.1\nGET\n/\napiVersion: v1\nkind: Namespace\nmetadata: {name: test, annotations: {config.starling.io/default-inbound-policy: cluster-authenticated}}\n---\napiVersion: policy.starling.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: all, namespace: test}\nspec:\n  targetRef: {kind: Namespace, name: test}\n  requiredAuthenticationRefs: [{kind: MeshTLSAuthentication, name: any}]\n---\napiVersion: policy.starling.io/v1beta1\nkind: MeshTLSAuthentication\nmetadata: {name: any, namespace: test}\nspec: {identities: ["*", "*.test.serviceaccount.identity.starling.cluster.local"]}\n',
    'routes-network': '\nc\n10.1.2.3\nPOST\n/admin/x?y=1\napiVersion: policy.starling.io/v1beta1\nkind: Server\nmetadata: {name: s, namespace: test}\nspec: {podSelector: {}, port: 9898, accessPolicy: audit}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: admin, namespace: test}\nspec:\n  parentRefs: [{group: policy.starling.io, kind: Server, name: s}]\n  rules: [{matches: [{path: {type: PathPrefix, value: /admin}, method: POST, headers: [{name: x-fuzz, value: /admin/x?y=1}]}]}]\n---\napiVersion: policy.starling.io/v1beta1\nkind: NetworkAuthentication\nmetadata: {name: n, namespace: test}\nspec: {networks: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}, {cidr: "fd00::/8"}]}\n---\napiVersion: policy.starling.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: r, namespace: test}\nspec:\n  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin}\n  requiredAuthenticationRefs: [{kind: NetworkAuthentication, name: n}, {kind: ServiceAccount, name: curl}]\n',
    'server-meshtls': 'frontend.test.serviceaccount.identity.starling.cluster.local\ngw-workload1\n127.0.0.5\nGET\n/api\napiVersion: starling.io/v1alpha1\nkind: Workload\nmetadata: {name: podinfo-1, namespace: test, labels: {app: podinfo}}\nspec: {address: 127.0.0.10, ports: [{name: http, port: 4143, appPort: 9898}]}\n---\napiVersion: policy.starling.io/v1beta1\nkind: Server\nmetadata: {name: podinfo-http, namespace: test}\nspec: {podSelector: {matchLabels: {app: podinfo}}, port: http, proxyProtocol: HTTP/1}\n---\napiVersion: policy.starling.io/v1beta1\nkind: MeshTLSAuthentication\nmetadata: {name: frontend, namespace: test}\nspec: {identityRefs: [{kind: ServiceAccount, name: frontend}, {kind: Namespace, name: prod}], clusters: [workload1]}\n---\napiVersion: policy.starling.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: test}\nspec:\n  targetRef: {group: policy.starling.io, kind: Server, name: podinfo-http}\n  requiredAuthenticationRefs: [{group: policy.starling.io, kind: MeshTLSAuthentication, name: frontend}]\n',
}


def authz_policy():
    """A caller (identity, cluster, address, method, path), then policy resources."""
    for name, text in AUTHZ_SEEDS.items():
        write("authz-policy", name, text)


if __name__ == "__main__":
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    resources()
    text_targets()
    authz_policy()
    pem_target()
    join_tokens()
    for target in sorted(os.listdir(ROOT)):
        files = os.listdir(os.path.join(ROOT, target))
        size = sum(os.path.getsize(os.path.join(ROOT, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")
