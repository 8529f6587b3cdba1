"""A signature lookaside on 127.0.0.1 for the tests: a directory served over http or https.

It records the path and headers of every request (``requests``), so a test
sees what reached it and that no credential came along. With ``tls=(cert,
key)`` it speaks https with that certificate (the handshake runs in the
request's thread: a client that refuses the certificate costs no traceback).
``header_delay`` sends the status line and headers one byte at a time, that
many seconds apart, and never ends them (a header line after another, until
the server stops): a lookaside that dawdles before its body, each byte well
within any per-read timeout. ``redirect_to`` (a base URL) answers every
request with a 302 to that base and the same path. ``client_ca`` (with
``tls``) requires a client certificate that CA signed (mutual TLS).
"""

import http.server
import os
import ssl
import threading


class LookasideServer:
    def __init__(self, directory, tls=None, header_delay=None, redirect_to=None, client_ca=None):
        self.directory = directory
        self.client_ca = client_ca
        self.redirect_to = redirect_to
        self.tls = tls
        self.header_delay = header_delay
        self.requests = []  # (path, {header: value})
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.server = None
        self.thread = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.server.server_address[1])

    @property
    def netloc(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def start(self):
        lookaside = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: pytest shows failures, not traffic
                pass

            def do_GET(self):  # noqa: N802 pylint: disable=invalid-name
                with lookaside.lock:
                    lookaside.requests.append((self.path, dict(self.headers.items())))
                lookaside.answer(self)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hung up, or refused the certificate

        self.server = Server(("127.0.0.1", 0), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls[0], self.tls[1])
            if self.client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cafile=self.client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def answer(self, handler):
        if self.redirect_to is not None:
            handler.wfile.write(b"HTTP/1.1 302 Found\r\nLocation: %s%s\r\nContent-Length: 0\r\n\r\n"
                                % (self.redirect_to.encode(), handler.path.encode()))
            return
        path = os.path.normpath(os.path.join(self.directory, handler.path.split("?", 1)[0].lstrip("/")))
        if not path.startswith(self.directory + os.sep) or not os.path.isfile(path):
            head, body = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", b""
        else:
            with open(path, "rb") as f:
                body = f.read()
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        if self.header_delay is None:
            handler.wfile.write(head + body)
            return
        head = head.split(b"\r\n", 1)[0] + b"\r\n"
        while True:
            for i in range(len(head)):
                if self.stopping.wait(self.header_delay):
                    return
                handler.wfile.write(head[i:i + 1])
                handler.wfile.flush()
            head = b"X-Dawdle: 1\r\n"

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def write_signatures(base, repo, digest, blobs):
    """blobs as LOOKASIDE/REPO@ALG=HEX/signature-1, -2, ...; the directory."""
    directory = os.path.join(base, "%s@%s" % (repo, digest.replace(":", "=")))
    os.makedirs(directory)
    for i, blob in enumerate(blobs, 1):
        with open(os.path.join(directory, "signature-%d" % i), "wb") as f:
            f.write(blob)
    return directory
