"""A deterministic OpenAI-compatible server for the `testing/` models, on loopback, with optional faults.

    python -m carryon.testing.server --port P [--faults RATE] [--seed S] [--hang-s H] [--delay-s D] [--slots N]
                                     [--auth-key KEY] [--dataset PATH]
                                     [--batch-latency-s S] [--batch-fail RATE] [--batch-expire RATE]
                                     [--mode MODE [--ok-first N] [--status S] [--retry-after V] [--body-bytes B]]

Faults (each request, with probability RATE, one of): 429 with Retry-After, 500, 503, a hang of H seconds,
a reset connection, malformed JSON, an empty completion. Built on the standard library's threading HTTP server
because the faults need socket-level control (resets, hangs) that a framework would hide.

Besides `/v1/chat/completions` it serves Anthropic's `/v1/messages`, both batch APIs (testing/batches.py) and a
model of prompt caching (testing/prompt_cache.py: cached tokens in the usage, prefix-affinity counts in `/stats`).
`--delay-s` with `--slots` makes it behave like one GPU replica: each completion takes D seconds and at most N run at
once, the rest queue — what the several-endpoints benchmark scales over.

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
import contextlib
import email.parser
import email.policy
import json
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from carryon.core.chat import PROVIDER_REFUSAL, ChatRequest, Message
from carryon.testing.batches import FakeBatches
from carryon.testing.models import MODELS, respond
from carryon.testing.prompt_cache import PromptCache

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
                 auth_key: str | None = None, hostile: Hostile | None = None, *, slots: int = 0,
                 batch_latency_s: float = 1.0, batch_fail: float = 0.0, batch_expire: float = 0.0) -> None:  # fmt: skip
        super().__init__(("127.0.0.1", port), _Handler)
        self.faults, self.hang_s, self.delay_s, self.auth_key = faults, hang_s, delay_s, auth_key
        self.hostile = hostile or Hostile()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {"requests": 0, **{f: 0 for f in FAULTS}, "hostile": 0}
        self.slots = threading.BoundedSemaphore(slots) if slots > 0 else None
        self.prompt_cache = PromptCache()
        self.batches = FakeBatches(self.openai_completion, self.anthropic_completion, latency_s=batch_latency_s,
                                   fail_rate=batch_fail, expire_rate=batch_expire, seed=seed)  # fmt: skip

    def openai_completion(self, body: dict[str, Any], text_override: str | None = None) -> tuple[int, dict[str, Any]]:
        """A chat completion for an OpenAI-style body: (status, response body)."""
        model = str(body.get("model", ""))
        if model not in MODELS:
            return 404, {"error": {"message": f"model {model!r} not found"}}
        messages = tuple(_message(m) for m in body.get("messages", []))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 512)
        result = respond(model, ChatRequest(messages=messages, max_tokens=max_tokens))
        text = result.text if text_override is None else text_override
        cached = self.prompt_cache.serve(model, [(m.role, m.content) for m in messages], result.text)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if result.finish_reason == PROVIDER_REFUSAL:  # as OpenAI sends a safety refusal
            message = {"role": "assistant", "content": None, "refusal": text}
        payload = _completion(model, text, "stop", result.usage.prompt_tokens, result.usage.completion_tokens)
        payload["choices"][0]["message"] = message
        payload["usage"]["prompt_tokens_details"] = {"cached_tokens": cached // 4}
        return 200, payload

    def anthropic_completion(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A message for an Anthropic Messages body (system as text or blocks, content as text or blocks, prompt-cache
        breakpoints honoured): (status, response body)."""
        model = str(body.get("model", ""))
        if model not in MODELS:
            return 404, {"type": "error", "error": {"type": "not_found_error", "message": f"model {model!r}"}}
        blocks: list[tuple[str, str]] = []
        marks: set[int] = set()

        def add(role: str, content: Any) -> None:
            for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
                if block.get("cache_control"):
                    marks.add(len(blocks))
                blocks.append((role, str(block.get("text", ""))))

        if body.get("system"):
            add("system", body["system"])
        for m in body.get("messages", []):
            add(m["role"], m["content"])
        messages = [Message(role="system", content="".join(t for r, t in blocks if r == "system"))] if body.get(
            "system") else []  # fmt: skip
        for m in body.get("messages", []):
            content = m["content"]
            if not isinstance(content, str):
                content = "".join(b.get("text", "") for b in content)
            messages.append(Message(role=m["role"], content=content))
        result = respond(model, ChatRequest(messages=tuple(messages), max_tokens=int(body.get("max_tokens") or 512)))
        total = result.usage.prompt_tokens
        read = self.prompt_cache.serve(model, blocks, result.text, marks) // 4 if marks else 0
        marked = sum(len(text) for _, text in blocks[: max(marks) + 1]) // 4 if marks else 0
        written = min(total - read, marked - read) if marks else 0
        usage = {"input_tokens": total - read - max(0, written), "output_tokens": result.usage.completion_tokens,
                 "cache_read_input_tokens": read, "cache_creation_input_tokens": max(0, written)}  # fmt: skip
        return 200, {"id": "msg_testing", "type": "message", "role": "assistant", "model": model,
                     "content": [{"type": "text", "text": result.text}],
                     "stop_reason": "refusal" if result.finish_reason == PROVIDER_REFUSAL else "end_turn",
                     "usage": usage}  # fmt: skip

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
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _authorized(self) -> bool:
        """`_authorised`, answering 401 when not."""
        if self._authorised():
            return True
        self._send(401, b'{"error": {"message": "invalid API key"}}')
        return False

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].rstrip("/")
        batches = self.server.batches
        if path.endswith("/models"):
            data = [{"id": name, "object": "model"} for name in MODELS]
            self._send(200, json.dumps({"object": "list", "data": data}).encode())
        elif path.endswith("/stats"):
            self._json(200, {**self.server.counts, "prefix": self.server.prompt_cache.stats(),
                             "batch": batches.stats()})  # fmt: skip
        elif not self._authorized():
            return
        elif "/messages/batches" in path:
            tail = path.split("/messages/batches", 1)[1].strip("/")
            if not tail:
                data = [batches.anthropic_object(b) for b in reversed(batches.listing("anthropic"))]
                return self._json(200, {"data": data, "has_more": False})
            batch_id, _, what = tail.partition("/")
            found = batches.get(batch_id)
            if found is None or found.kind != "anthropic":
                return self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": batch_id}})
            if what == "results":
                if found.results is None:
                    return self._json(400, {"type": "error", "error": {"message": "batch still in progress"}})
                return self._send(200, batches.anthropic_results(found), {"Content-Type": "application/x-jsonl"})
            return self._json(200, batches.anthropic_object(found))
        elif "/batches" in path:
            tail = path.split("/batches", 1)[1].strip("/")
            if not tail:
                data = [batches.openai_object(b) for b in reversed(batches.listing("openai"))]
                return self._json(200, {"object": "list", "data": data, "has_more": False})
            found = batches.get(tail)
            if found is None or found.kind != "openai":
                return self._json(404, {"error": {"message": f"no batch {tail}"}})
            return self._json(200, batches.openai_object(found))
        elif "/files/" in path and path.endswith("/content"):
            file_id = path.split("/files/", 1)[1].removesuffix("/content")
            content = batches.files.get(file_id)
            if content is None:
                return self._json(404, {"error": {"message": f"no file {file_id}"}})
            self._send(200, content, {"Content-Type": "application/jsonl"})
        else:
            self._send(404, b'{"error": "not found"}')

    def _authorised(self) -> bool:
        key = self.server.auth_key
        if not key:
            return True
        header = self.headers.get("Authorization") or ""
        if header == f"Bearer {key}" or self.headers.get("x-api-key") == key:  # x-api-key: Anthropic's
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
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = urlsplit(self.path).path.rstrip("/")
        if path.endswith(("/files", "/batches", "/messages")):
            return self._post_other(path, raw)
        body = json.loads(raw or b"{}")
        if not path.endswith("/chat/completions"):
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
        with self._slot():
            status, payload = self.server.openai_completion(body, "" if fault == "empty" else None)
        self._json(status, payload)

    def _post_other(self, path: str, raw: bytes) -> None:
        """Uploads, both batch APIs and Anthropic's Messages (no faults)."""
        if not self._authorized():
            return None
        if path.endswith("/files"):
            content = _multipart_file(self.headers.get("Content-Type", ""), raw)
            if content is None:
                return self._json(400, {"error": {"message": "expected a multipart upload with a 'file' part"}})
            return self._json(200, self.server.batches.add_file(content))
        body = json.loads(raw or b"{}")
        if path.endswith("/messages/batches"):
            return self._json(*self.server.batches.create_anthropic(body))
        if path.endswith("/batches"):
            return self._json(*self.server.batches.create_openai(body))
        if str(body.get("model", "")) not in MODELS:
            return self._json(*self.server.anthropic_completion(body))
        with self._slot():
            return self._json(*self.server.anthropic_completion(body))

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """One of the server's completion slots for `delay_s` (a replica's capacity); waits while all are busy."""
        slots = self.server.slots
        if slots is not None:
            slots.acquire()
        try:
            if self.server.delay_s:
                time.sleep(self.server.delay_s)
            yield
        finally:
            if slots is not None:
                slots.release()


def _multipart_file(content_type: str, raw: bytes) -> bytes | None:
    """The `file` part of a multipart/form-data upload."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else None
    return None


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
    parser.add_argument("--slots", type=int, default=0, help="completions at once, the rest queue (0: no limit)")
    parser.add_argument("--batch-latency-s", type=float, default=1.0, help="seconds until a batch ends")
    parser.add_argument("--batch-fail", type=float, default=0.0, help="share of batch requests that fail (0-1)")
    parser.add_argument("--batch-expire", type=float, default=0.0, help="share of batches that expire half done")
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
    server = FakeServer(args.port, args.faults, args.seed, args.hang_s, args.delay_s, args.auth_key, hostile,
                        slots=args.slots, batch_latency_s=args.batch_latency_s, batch_fail=args.batch_fail,
                        batch_expire=args.batch_expire)  # fmt: skip
    print(f"carryon testing server on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
