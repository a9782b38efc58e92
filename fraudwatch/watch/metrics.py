"""The optional Prometheus endpoint: `GET /metrics` on a loopback address, from the watcher's in-memory stats."""

from __future__ import annotations

import errno
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fraudwatch.errors import UsageError
from fraudwatch.watch.stats import Stats


class MetricsServer:
    def __init__(self, address: str, stats: Stats) -> None:
        host, _, port = address.rpartition(":")

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = stats.prometheus().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        try:
            self.server = ThreadingHTTPServer((host.strip("[]"), int(port)), _Handler)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"metrics port {address} is in use: {why} (stop what listens there, or set "
                                 f"another [watch] metrics address)") from None
            raise UsageError(f"metrics port {address}: cannot listen: {why} ([watch] metrics)") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="fraudwatch-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, which a failed start never ran
            self.server.shutdown()
        self.server.server_close()
