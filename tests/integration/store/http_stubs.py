"""Misbehaving servers on 127.0.0.1 for the store's error messages (test support, not shipped):
a web server that is not S3, a server that accepts connections and never answers, and a
proxy in front of a real S3 server that goes silent in the middle of chosen answers or
answers chosen requests late."""

from __future__ import annotations

import http.server
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

_REQUEST_LINE = re.compile(rb"^(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


@contextmanager
def html_server(status: int) -> Iterator[str]:
    """A web server answering every request with `status` and a small HTML page; yields
    its host:port."""
    page = b"<html><body><h1>Welcome</h1></body></html>\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, body: bool = True) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            if body:
                self.wfile.write(page)

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer(body=False)

        do_PUT = do_POST = do_DELETE = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet test output

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[str]:
    """A port whose connections the kernel accepts (the backlog) but nothing ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket
    request: tuple[str, str] = ("", "")  # method and path of the request being answered
    answered: int = 0  # bytes of its answer passed on so far
    delayed: bool = False


@dataclass
class FaultyProxy:
    """Passes bytes between clients and `upstream`, except:

    * the answer to a GET whose path contains `stall_path` is cut after `stall_after` bytes
      (headers included); the connection then stays open and silent;
    * answers to requests whose method is in `late_methods` and whose path contains
      `late_path` start `late_s` seconds late (`delayed` counts them).
    """

    upstream: str
    stall_path: str = ""
    stall_after: int = 0
    late_methods: tuple[str, ...] = ()
    late_path: str = ""
    late_s: float = 0.0
    endpoint: str = ""
    delayed: int = 0
    _listener: socket.socket = field(default_factory=socket.socket)
    _sockets: list[socket.socket] = field(default_factory=list)
    stalled: threading.Event = field(default_factory=threading.Event)

    def start(self) -> FaultyProxy:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        host, port = self.upstream.rsplit(":", 1)
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection((host, int(port)))
            self._sockets += [client, upstream]
            conn = _Connection(client, upstream)
            threading.Thread(target=self._requests, args=(conn,), daemon=True).start()
            threading.Thread(target=self._answers, args=(conn,), daemon=True).start()

    def _requests(self, conn: _Connection) -> None:
        while data := _recv(conn.client):
            line = _REQUEST_LINE.match(data)
            if line:  # a new request: its answer is judged from here on
                conn.request = (line[1].decode(), line[2].decode())
                conn.answered, conn.delayed = 0, False
            conn.upstream.sendall(data)

    def _answers(self, conn: _Connection) -> None:
        while data := _recv(conn.upstream):
            method, path = conn.request
            if method in self.late_methods and self.late_path in path and not conn.delayed:
                conn.delayed = True
                self.delayed += 1
                time.sleep(self.late_s)
            if self.stall_path and method == "GET" and self.stall_path in path:
                data = data[: max(self.stall_after - conn.answered, 0)]
                if len(data) + conn.answered >= self.stall_after:
                    self.stalled.set()
            conn.answered += len(data)
            if data:
                conn.client.sendall(data)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(256 * 1024)
    except OSError:
        return b""
