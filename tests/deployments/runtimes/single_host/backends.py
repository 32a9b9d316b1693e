"""In-process HTTP backends for router and probe tests (no containers needed)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Backend:
    """Answers every GET with its name; /status/<n> answers n; /slow waits a second."""

    def __init__(self, name: str):
        self.name = name
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                status = 200
                if self.path.startswith("/status/"):
                    status = int(self.path.rsplit("/", 1)[1])
                elif self.path == "/slow":
                    time.sleep(1)
                body = backend.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
