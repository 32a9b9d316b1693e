"""Local notification receivers: record what arrives, answer scripted status codes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    def __init__(self, *, statuses: list[int] | None = None):
        self.statuses = list(statuses or [])  # answered in turn; then 200
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.received.append({"path": self.path, "headers": {k.lower(): v for k, v in
                                                                             self.headers.items()}, "raw": raw})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                body = b"ok" if status == 200 else b"server error"
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def payloads(self) -> list[dict]:
        return [json.loads(r["raw"]) for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
