#!/usr/bin/env python3
"""A SASL/SCRAM and TLS front for a Kafka-protocol broker, for the tests of Kafka discovery's
`sasl_ssl://`, `sasl_plaintext://` and `ssl://` values (tansu 0.6.0 cannot create SCRAM users
on memory storage once authentication is on, and its --cert/--key options refuse each other).

Each client connection: TLS first (Python's ssl, OpenSSL) when --cert/--key are given; then,
when --user is given, the SASL exchange as a Kafka broker runs it (SaslHandshake v0-v1, then
SaslAuthenticate v0-v2 carrying SCRAM's messages), the SCRAM server side being scramp's (a
maintained implementation of RFC 5802/7677, pinned in tools/kafka/tansu.sh); a request before
authentication, a wrong proof or an unknown user closes the connection after a refusal, as
Kafka does. Every later request is forwarded unchanged to the upstream broker over a
connection of its own, and its answer returned.

    sasl_proxy.py --listen PORT --upstream PORT [--cert F --key F]
                  [--user U --password P --mechanism SCRAM-SHA-512]

Prints "ready" once listening. Never prints a password.
"""
import argparse
import socket
import ssl
import struct
import sys
import threading

from scramp import ScramException, ScramMechanism

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58
MAX_FRAME = 16 << 20


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frame(sock):
    (size,) = struct.unpack(">i", read_exact(sock, 4))
    if size < 8 or size > MAX_FRAME:
        raise EOFError
    return read_exact(sock, size)


def send(sock, correlation, body):
    payload = struct.pack(">i", correlation) + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def nullable_bytes_at(frame, at):
    (n,) = struct.unpack_from(">i", frame, at)
    return b"" if n < 0 else frame[at + 4 : at + 4 + n]


class Authenticator:
    def __init__(self, args):
        self.mechanism = args.mechanism
        m = ScramMechanism(args.mechanism)
        self.info = {args.user: m.make_auth_info(args.password, iteration_count=4096)}
        # Unknown users get a made-up identity: the exchange runs and the proof fails.
        self.unknown = m.make_auth_info("not-a-password-of-anyone", iteration_count=4096)
        self.scram = m

    def server(self):
        return self.scram.make_server(lambda user: self.info.get(user, self.unknown))


def body_after_header(frame):
    (client_len,) = struct.unpack_from(">h", frame, 8)
    return frame[10 + max(client_len, 0) :]


def authenticate(client, auth):
    """The SASL exchange; True once the client proved the password."""
    server = auth.server()
    step = 0
    while True:
        frame = read_frame(client)
        api_key, version, correlation = struct.unpack_from(">hhi", frame, 0)
        body = body_after_header(frame)
        if api_key == SASL_HANDSHAKE:
            asked = body[2 : 2 + struct.unpack_from(">h", body, 0)[0]].decode()
            error = 0 if asked == auth.mechanism else UNSUPPORTED_SASL_MECHANISM
            send(client, correlation, struct.pack(">hi", error, 1) + string(auth.mechanism))
            if error:
                return False
            continue
        if api_key != SASL_AUTHENTICATE:
            return False
        token = nullable_bytes_at(body, 0).decode()
        try:
            if step == 0:
                server.set_client_first(token)
                out, error, message = server.get_server_first(), 0, None
            else:
                server.set_client_final(token)
                out, error, message = server.get_server_final(), 0, None
        except ScramException as e:
            out, error, message = "", SASL_AUTHENTICATION_FAILED, f"authentication failed: {e}"
        answer = struct.pack(">h", error)
        answer += struct.pack(">h", -1) if message is None else string(message)
        answer += struct.pack(">i", len(out.encode())) + out.encode()
        if version >= 1:
            answer += struct.pack(">q", 0)
        send(client, correlation, answer)
        if error:
            return False
        step += 1
        if step == 2:
            return True


def serve(client, args, auth, context):
    upstream = None
    try:
        if context is not None:
            client = context.wrap_socket(client, server_side=True)
        if auth is not None and not authenticate(client, auth):
            return
        upstream = socket.create_connection(("127.0.0.1", args.upstream))
        while True:
            frame = read_frame(client)
            upstream.sendall(struct.pack(">i", len(frame)) + frame)
            answer = read_frame(upstream)
            client.sendall(struct.pack(">i", len(answer)) + answer)
    except (EOFError, OSError, ssl.SSLError, struct.error, UnicodeDecodeError):
        pass
    finally:
        for s in (client, upstream):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--mechanism", default="SCRAM-SHA-512")
    args = p.parse_args()
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
    auth = Authenticator(args) if args.user else None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.listen))
    listener.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, args, auth, context), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
