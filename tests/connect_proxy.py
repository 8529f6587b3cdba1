"""A forward proxy on 127.0.0.1 for the tests: CONNECT tunnels (https) and absolute-form GETs (http).

It records the request line of everything it is asked (``lines``) and the
headers that came with it (``headers``), so a test sees that a pull went
through it and what the proxy could read. With ``auth=(user, password)`` it
answers 407 to a request without that ``Proxy-Authorization``, as squid and
tinyproxy do with basic auth. Threads, one per connection; ``stop()`` closes
the listening socket and every tunnel still open.
"""

import base64
import select
import socket
import socketserver
import threading

MAX_HEAD = 65536


class ConnectProxy:
    def __init__(self, auth=None):
        self.auth = auth
        self.lines = []     # request lines, in order: "CONNECT 127.0.0.1:5000 HTTP/1.1", "GET http://..."
        self.headers = []   # the header block (text) of each, Proxy-Authorization included
        self.refused = 0
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self._open = set()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def url_with(self, user, password):
        return "http://%s:%s@127.0.0.1:%d" % (user, password, self.server.server_address[1])

    def start(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy.serve(self.request)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        with self.lock:
            for sock in list(self._open):
                try:
                    sock.close()
                except OSError:
                    pass

    def _authorized(self, head):
        if self.auth is None:
            return True
        wanted = "basic " + base64.b64encode(("%s:%s" % self.auth).encode()).decode()
        for line in head.split("\r\n")[1:]:
            name, _sep, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization" and value.strip().lower() == wanted.lower():
                return True
        return False

    def serve(self, client):
        with self.lock:
            self._open.add(client)
        upstream = None
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(4096)
                if not data or len(head) > MAX_HEAD:
                    return
                head += data
            head, _sep, rest = head.partition(b"\r\n\r\n")
            text = head.decode("latin-1")
            line = text.split("\r\n", 1)[0]
            with self.lock:
                self.lines.append(line)
                self.headers.append(text)
            method, target, _version = (line.split(" ") + ["", ""])[:3]
            if not self._authorized(text):
                with self.lock:
                    self.refused += 1
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b"Proxy-Authenticate: Basic realm=\"test proxy\"\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            if method == "CONNECT":
                host, _sep, port = target.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=30)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    upstream.sendall(rest)
            elif method == "GET" and target.startswith("http://"):
                hostport, _sep, path = target[len("http://"):].partition("/")
                host, _sep, port = hostport.rpartition(":")
                upstream = socket.create_connection((host, int(port or 80)), timeout=30)
                kept = [h for h in text.split("\r\n")[1:] if not h.lower().startswith("proxy-")]
                upstream.sendall(("GET /%s HTTP/1.1\r\n" % path).encode("latin-1")
                                 + "\r\n".join(kept + ["", ""]).encode("latin-1") + rest)
            else:
                client.sendall(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with self.lock:
                self._open.add(upstream)
            _pipe(client, upstream)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self.lock:
                        self._open.discard(sock)
                    try:
                        sock.close()
                    except OSError:
                        pass


def _pipe(a, b):
    """Bytes both ways until either side closes.

    By poll, not select: in a long test run the sockets' numbers pass select's limit (1024).
    """
    peers = {a.fileno(): (a, b), b.fileno(): (b, a)}
    poller = select.poll()
    for fd in peers:
        poller.register(fd, select.POLLIN)
    while True:
        ready = poller.poll(60000)
        if not ready:
            return
        for fd, _events in ready:
            sock, peer = peers[fd]
            data = sock.recv(65536)
            if not data:
                return
            peer.sendall(data)
