"""A deterministic OpenAI-compatible server for the `testing/` models, on loopback, with optional faults.

    python -m carryon.testing.server --port P [--faults RATE] [--seed S] [--hang-s H] [--delay-s D]
                                     [--auth-key KEY] [--dataset PATH]
                                     [--mode MODE [--ok-first N] [--status S] [--retry-after V] [--body-bytes B]]

Faults (each request, with probability RATE, one of): 429 with Retry-After, 500, 503, a hang of H seconds,
a reset connection, malformed JSON, an empty completion. Built on the standard library's threading HTTP server
because the faults need socket-level control (resets, hangs) that a framework would hide.

A hostile or broken server (`--mode`, on every completion after the first N that succeed):
  error         HTTP S (default 500) whose body holds ANSI escape codes
  hang          no answer for H seconds, then a closed connection
  429           429 with `Retry-After: V` (default 999999; try `soon-ish`)
  echo-auth     HTTP S (default 400) whose body echoes the request's Authorization header and query string
  surrogate     a valid answer whose text holds a lone UTF-16 surrogate (`\ud83d`, valid JSON)
  huge          a valid answer padded to B bytes (default 5 MB)
  empty-length  an empty answer with finish_reason=length
`--auth-key KEY` requires KEY as a bearer token, as the password (or user) of HTTP Basic auth, or as the value of a
query parameter; 401 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from carryon.core.chat import PROVIDER_REFUSAL, ChatRequest, Message
from carryon.testing.models import MODELS, respond

FAULTS = ("429", "500", "503", "hang", "reset", "bad_json", "empty")
MODES = ("error", "hang", "429", "echo-auth", "surrogate", "huge", "empty-length")
ANSI_BODY = '{"error": {"message": "\u001b[31mboom\u001b[0m \u001b]0;pwned\u0007 [bold red]markup[/]"}}'


@dataclass(frozen=True)
class Hostile:
    """A fixed misbehaviour for every completion after the first `ok_first`."""

    mode: str | None = None
    ok_first: int = 0
    status: int | None = None
    retry_after: str = "999999"
    body_bytes: int = 5_000_000


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int, faults: float = 0.0, seed: int = 0, hang_s: float = 5.0, delay_s: float = 0.0,
                 auth_key: str | None = None, hostile: Hostile | None = None) -> None:  # fmt: skip
        super().__init__(("127.0.0.1", port), _Handler)
        self.faults, self.hang_s, self.delay_s, self.auth_key = faults, hang_s, delay_s, auth_key
        self.hostile = hostile or Hostile()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {"requests": 0, **{f: 0 for f in FAULTS}, "hostile": 0}

    def draw_fault(self) -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.hostile.mode and self.counts["requests"] > self.hostile.ok_first:
                self.counts["hostile"] += 1
                return f"hostile:{self.hostile.mode}"
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

    def _authorised(self) -> bool:
        key = self.server.auth_key
        if not key:
            return True
        header = self.headers.get("Authorization") or ""
        if header == f"Bearer {key}":
            return True
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode("utf-8", "replace").partition(":")
            if key in (user, password):
                return True
        return key in (v for _, v in parse_qsl(urlsplit(self.path).query))

    def _hostile(self, mode: str, model: str, request: ChatRequest) -> None:
        h = self.server.hostile
        if mode == "error":
            return self._send(h.status or 500, ANSI_BODY.encode())
        if mode == "429":
            return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": h.retry_after})
        if mode == "hang":
            time.sleep(self.server.hang_s)
            self.close_connection = True
            return None
        if mode == "echo-auth":
            echo = {"error": {"message": "bad request", "headers": {"Authorization": self.headers.get("Authorization")},
                              "url": self.path}}  # fmt: skip
            return self._send(h.status or 400, json.dumps(echo).encode())
        text, finish = respond(model, request).text, "stop"
        if mode == "surrogate":
            text = "\ud83d" + text  # json.dumps writes it as the escape \ud83d: valid JSON, not valid Unicode
        elif mode == "huge":
            text += " padding" * (h.body_bytes // 8)
        elif mode == "empty-length":
            text, finish = "", "length"
        return self._send(200, json.dumps(_completion(model, text, finish)).encode())

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        if not self._authorised():
            self._send(401, b'{"error": {"message": "invalid API key"}}')
            return
        model = str(body.get("model", ""))
        if model not in MODELS:
            self._send(404, json.dumps({"error": {"message": f"model {model!r} not found"}}).encode())
            return
        fault = self.server.draw_fault()
        if fault and fault.startswith("hostile:"):
            request = ChatRequest(
                messages=tuple(Message(role=m["role"], content=m["content"]) for m in body.get("messages", [])),
                max_tokens=int(body.get("max_tokens") or 512),
            )
            return self._hostile(fault.removeprefix("hostile:"), model, request)
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
        payload = _completion(model, text, "stop", result.usage.prompt_tokens, result.usage.completion_tokens)
        if result.finish_reason == PROVIDER_REFUSAL:  # as OpenAI sends a safety refusal
            payload["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": text}
        self._send(200, json.dumps(payload).encode())


def _message(raw: dict[str, Any]) -> Message:
    """A request message as the testing models read it: OpenAI's `developer` role is the system's, and content given
    as a list of parts (as some clients send it) is its text parts joined."""
    content = raw.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    role = "system" if raw.get("role") == "developer" else raw.get("role")
    return Message.model_validate({"role": role, "content": content or ""})


def _completion(model: str, text: str, finish: str, prompt_tokens: int = 1, completion_tokens: int = 1) -> dict[str, Any]:
    return {
        "id": "chatcmpl-testing",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--faults", type=float, default=0.0, help="probability of a fault per request (0-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hang-s", type=float, default=5.0)
    parser.add_argument("--delay-s", type=float, default=0.0, help="latency added to every completion")
    parser.add_argument("--auth-key", default=None, help="require this bearer key (401 otherwise)")
    parser.add_argument("--dataset", action="append", default=[], help="extra dataset(s) the targets know")
    parser.add_argument("--mode", choices=MODES, default=None, help="misbehave on every completion (see above)")
    parser.add_argument("--ok-first", type=int, default=0, help="answer this many completions normally first")
    parser.add_argument("--status", type=int, default=None, help="HTTP status of --mode error / echo-auth")
    parser.add_argument("--retry-after", default="999999", help="Retry-After header of --mode 429")
    parser.add_argument("--body-bytes", type=int, default=5_000_000, help="answer size of --mode huge")
    args = parser.parse_args(argv)
    if not 0.0 <= args.faults <= 1.0:
        parser.error("--faults must be between 0 and 1")
    if args.dataset:
        os.environ["CARRYON_TESTING_DATASET"] = os.pathsep.join(args.dataset)
    hostile = Hostile(args.mode, args.ok_first, args.status, args.retry_after, args.body_bytes)
    server = FakeServer(args.port, args.faults, args.seed, args.hang_s, args.delay_s, args.auth_key, hostile)
    print(f"carryon testing server on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
