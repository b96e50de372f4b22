#!/usr/bin/env python3
"""One TLS client attempt against a mesh listener with Python's ssl module; prints one line:

    accepted: <first bytes the server sent>        the server served the connection (an HTTP/2
                                                   listener sends its SETTINGS frame right after
                                                   the handshake)
    refused: <what the client saw>                 an alert, a closed connection, a failed handshake

    probe.py HOST PORT --ca ROOT.crt [--cert FULL.pem --key KEY] [--sni NAME] [--tls12] [--plaintext]
             [--get AUTHORITY/PATH [--header NAME:VALUE]...]

With --get, an accepted connection then carries one HTTP/2 GET (the h2 package's framing and
HPACK over this ssl socket), and the line is

    answered: <status> starling-error=<the header, or ->

Exit status 0 for accepted (or answered), 1 for refused, 2 when the probe itself could not run.
"""
import argparse
import socket
import ssl
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host"); p.add_argument("port", type=int)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert"); p.add_argument("--key")
    p.add_argument("--sni")
    p.add_argument("--tls12", action="store_true", help="offer TLS 1.2 at most")
    p.add_argument("--plaintext", action="store_true", help="send an HTTP/1.1 request without TLS")
    p.add_argument("--alpn", default="h2")
    p.add_argument("--get", help="AUTHORITY/PATH: send this HTTP/2 GET once the handshake is done")
    p.add_argument("--header", action="append", default=[], help="NAME:VALUE, another request header")
    a = p.parse_args()

    sock = socket.create_connection((a.host, a.port), timeout=10)
    sock.settimeout(10)
    if a.plaintext:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n")
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, socket.timeout) as e:
            print(f"refused: {type(e).__name__}")
            return 1
        if not data:
            print("refused: connection closed without an answer")
            return 1
        print(f"accepted: {data[:40]!r}")
        return 0

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(a.ca)
    if a.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols([a.alpn])
    try:
        tls = ctx.wrap_socket(sock, server_hostname=a.sni)
        # TLS 1.3: the client's side of the handshake completes before the server has checked the
        # client's certificate; the server's verdict arrives as its first record: an alert, a
        # close, or (accepted) HTTP/2 SETTINGS.
        data = tls.recv(64)
    except ssl.SSLError as e:
        print(f"refused: {e.reason or e}")
        return 1
    except (ConnectionResetError, BrokenPipeError, socket.timeout) as e:
        print(f"refused: {type(e).__name__}")
        return 1
    if not data:
        print("refused: connection closed after the handshake, nothing served")
        return 1
    if a.get:
        return get(tls, data, a.get, a.header)
    print(f"accepted: {tls.version()} ALPN {tls.selected_alpn_protocol()} first bytes {data[:9].hex()}")
    return 0


def get(tls, first, target, extra):
    """One HTTP/2 GET on the accepted connection; prints its status and starling-error."""
    import h2.config
    import h2.connection
    import h2.events

    authority, _, path = target.partition("/")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", "/" + path)]
    headers += [tuple(h.split(":", 1)) for h in extra]
    conn.send_headers(1, headers, end_stream=True)
    tls.sendall(conn.data_to_send())
    data, status, error = first, None, "-"
    while True:
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                fields = dict(event.headers)
                status, error = fields.get(":status"), fields.get("starling-error", "-")
            elif isinstance(event, h2.events.StreamEnded) and status is not None:
                print(f"answered: {status} starling-error={error}")
                return 0
            elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                print(f"refused: {type(event).__name__} {getattr(event, 'error_code', '')}")
                return 1
        tls.sendall(conn.data_to_send())
        data = tls.recv(65535)
        if not data:
            print("refused: connection closed before an answer")
            return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as e:
        print(f"probe failed: {e}")
        sys.exit(2)
