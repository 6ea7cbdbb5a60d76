"""A loopback HTTP proxy in front of the EHR that can stop answering after a chosen write: the
write reaches the EHR, its response never reaches the worker. That is the worst moment to lose
a worker (the EHR has the resource, CaseBridge has not recorded it), made deterministic."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


class HangingProxy:
    def __init__(self, target_origin: str) -> None:
        self.target_origin = target_origin.rstrip("/")
        self.hang_at_write: int | None = None
        self.successful_writes = 0
        self.hanging = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._upstream = httpx.Client(timeout=30.0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HangingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def hang_after(self, writes_from_now: int) -> None:
        """The `writes_from_now`-th successful POST/PUT from now gets no response until released."""
        with self._lock:
            self.hang_at_write = self.successful_writes + writes_from_now

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        response = self._upstream.request(
            method, self.target_origin + path, headers=headers, content=body
        )
        if method in ("POST", "PUT") and response.status_code < 300:
            with self._lock:
                self.successful_writes += 1
                hang = self.successful_writes == self.hang_at_write
            if hang:
                self.hanging.set()
                self.released.wait()
        return response

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                response = proxy._forward(self.command, self.path, headers, body)
                try:
                    self.send_response(response.status_code)
                    for key, value in response.headers.items():
                        if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(response.content)))
                    self.end_headers()
                    self.wfile.write(response.content)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was killed while this write hung

            do_GET = do_POST = do_PUT = do_DELETE = _relay

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
