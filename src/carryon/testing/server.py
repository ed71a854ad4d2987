"""A deterministic OpenAI-compatible server for the `testing/` models, on loopback, with optional faults.

    python -m carryon.testing.server --port P [--faults RATE] [--seed S] [--hang-s H] [--delay-s D]
                                     [--auth-key KEY] [--dataset PATH]

Faults (each request, with probability RATE, one of): 429 with Retry-After, 500, 503, a hang of H seconds,
a reset connection, malformed JSON, an empty completion. Built on the standard library's threading HTTP server
because the faults need socket-level control (resets, hangs) that a framework would hide.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from carryon.models.base import PROVIDER_REFUSAL, ChatRequest, Message
from carryon.testing.models import MODELS, respond

FAULTS = ("429", "500", "503", "hang", "reset", "bad_json", "empty")


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, faults: float = 0.0, seed: int = 0, hang_s: float = 5.0, delay_s: float = 0.0,
                 auth_key: str | None = None) -> None:  # fmt: skip
        super().__init__(("127.0.0.1", port), _Handler)
        self.faults, self.hang_s, self.delay_s, self.auth_key = faults, hang_s, delay_s, auth_key
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {"requests": 0, **{f: 0 for f in FAULTS}}

    def draw_fault(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.faults and self.rng.random() < self.faults:
                fault = self.rng.choice(FAULTS)
                self.counts[fault] += 1
                return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": name, "object": "model"} for name in MODELS]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
        elif self.path.rstrip("/").endswith("/stats"):
            self._send(200, json.dumps(self.server.counts).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        if self.server.auth_key and self.headers.get("Authorization") != f"Bearer {self.server.auth_key}":
            self._send(401, b'{"error": {"message": "invalid API key"}}')
            return
        model = str(body.get("model", ""))
        if model not in MODELS:
            self._send(404, json.dumps({"error": {"message": f"model {model!r} not found"}}).encode())
            return
        fault = self.server.draw_fault()
        if fault == "429":
            return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0.05"})
        if fault in ("500", "503"):
            return self._send(int(fault), b'{"error": {"message": "server error"}}')
        if fault == "hang":
            time.sleep(self.server.hang_s)
            self.close_connection = True
            return
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "bad_json":
            return self._send(200, b'{"choices": [{"message": {"content": "trunc')
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        request = ChatRequest(
            messages=tuple(_message(m) for m in body.get("messages", [])),
            max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 512),
        )
        result = respond(model, request)
        text = "" if fault == "empty" else result.text
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if result.finish_reason == PROVIDER_REFUSAL:  # as OpenAI sends a safety refusal
            message = {"role": "assistant", "content": None, "refusal": text}
        payload = {
            "id": "chatcmpl-testing",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "total_tokens": result.usage.prompt_tokens + result.usage.completion_tokens,
            },
        }
        self._send(200, json.dumps(payload).encode())


def _message(raw: dict[str, Any]) -> Message:
    """A request message as the testing models read it: OpenAI's `developer` role is the system's, and content given
    as a list of parts (as some clients send it) is its text parts joined."""
    content = raw.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    role = "system" if raw.get("role") == "developer" else raw.get("role")
    return Message.model_validate({"role": role, "content": content or ""})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--faults", type=float, default=0.0, help="probability of a fault per request (0-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-s", type=float, default=5.0)
    parser.add_argument("--delay-s", type=float, default=0.0, help="latency added to every completion")
    parser.add_argument("--auth-key", default=None, help="require this bearer key (401 otherwise)")
    parser.add_argument("--dataset", action="append", default=[], help="extra dataset(s) the targets know")
    args = parser.parse_args(argv)
    if not 0.0 <= args.faults <= 1.0:
        parser.error("--faults must be between 0 and 1")
    if args.dataset:
        os.environ["CARRYON_TESTING_DATASET"] = os.pathsep.join(args.dataset)
    server = FakeServer(args.port, args.faults, args.seed, args.hang_s, args.delay_s, args.auth_key)
    print(f"carryon testing server on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
