"""The fake server's batch APIs: OpenAI's Batch API (files + batches, JSONL in and out) and Anthropic's Message
Batches, answered by the deterministic `testing/` models, with configurable latency, partial failures and expiry.

A batch is worked out lazily: the first look after `latency_s` since its creation settles every request at once
(succeeded, failed with a server error at rate `fail_rate`, or — for a batch drawn to expire at rate `expire_rate` —
every second request left undone and reported expired). Only a request's first submission can fail or expire, so a
test's outcome does not hang on how often the dice fall the same way twice. Every submission is logged per request
key (`custom_id`), so tests can check that nothing was sent twice while an earlier submission of it was live or had
succeeded.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# (request body) -> (HTTP status, response body): the server's own completion handlers, without faults or latency
Handler = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass
class FakeBatch:
    id: str
    kind: str  # "openai" | "anthropic"
    requests: list[tuple[str, dict[str, Any]]]  # (custom_id, body)
    created: float
    expires: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    input_file_id: str | None = None
    results: dict[str, tuple[str, dict[str, Any]]] | None = None  # custom_id -> (outcome, payload)
    output_file_id: str | None = None
    error_file_id: str | None = None


@dataclass
class Submissions:
    """Per custom_id: how often submitted, and how often while an earlier submission was live or had succeeded."""

    count: dict[str, int] = field(default_factory=dict)
    wasteful: list[str] = field(default_factory=list)


class FakeBatches:
    def __init__(self, openai: Handler, anthropic: Handler, *, latency_s: float = 1.0, fail_rate: float = 0.0,
                 expire_rate: float = 0.0, seed: int = 0) -> None:  # fmt: skip
        self.openai, self.anthropic = openai, anthropic
        self.latency_s, self.fail_rate, self.expire_rate = latency_s, fail_rate, expire_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.log = Submissions()
        self._live_or_done: dict[str, int] = {}  # custom_id -> submissions live or succeeded
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:06d}"

    # -- submission ---------------------------------------------------------------------------------------------
    def add_file(self, content: bytes) -> dict[str, Any]:
        with self.lock:
            file_id = self._id("file-")
            self.files[file_id] = content
        return {"id": file_id, "object": "file", "bytes": len(content), "purpose": "batch",
                "created_at": int(time.time()), "filename": "batch.jsonl"}  # fmt: skip

    def _submit(self, kind: str, requests: list[tuple[str, dict[str, Any]]], **extra: Any) -> FakeBatch:
        with self.lock:
            batch = FakeBatch(self._id("batch_" if kind == "openai" else "msgbatch_"), kind, requests, time.time(),
                              self.rng.random() < self.expire_rate, **extra)  # fmt: skip
            self.batches[batch.id] = batch
            for custom_id, _ in requests:
                self.log.count[custom_id] = self.log.count.get(custom_id, 0) + 1
                if self._live_or_done.get(custom_id, 0):
                    self.log.wasteful.append(custom_id)
                self._live_or_done[custom_id] = self._live_or_done.get(custom_id, 0) + 1
        return batch

    def create_openai(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        content = self.files.get(str(body.get("input_file_id")))
        if content is None:
            return 404, {"error": {"message": "input file not found"}}
        if body.get("endpoint") != "/v1/chat/completions":
            return 400, {"error": {"message": f"unsupported endpoint {body.get('endpoint')!r}"}}
        requests = []
        for line in content.decode().splitlines():
            if line.strip():
                entry = json.loads(line)
                requests.append((str(entry["custom_id"]), entry["body"]))
        if len({c for c, _ in requests}) != len(requests):
            return 400, {"error": {"message": "duplicate custom_id in the input file"}}
        batch = self._submit("openai", requests, metadata=dict(body.get("metadata") or {}),
                             input_file_id=str(body["input_file_id"]))  # fmt: skip
        return 200, self.openai_object(batch)

    def create_anthropic(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        requests = [(str(r["custom_id"]), r["params"]) for r in body.get("requests") or []]
        if not requests or len({c for c, _ in requests}) != len(requests):
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad requests"}}
        return 200, self.anthropic_object(self._submit("anthropic", requests))

    # -- settling -----------------------------------------------------------------------------------------------
    def _settle(self, batch: FakeBatch) -> None:
        """Work the batch out once its latency has passed (under the lock)."""
        if batch.results is not None or time.time() - batch.created < self.latency_s:
            return
        handler = self.openai if batch.kind == "openai" else self.anthropic
        results: dict[str, tuple[str, dict[str, Any]]] = {}
        for n, (custom_id, body) in enumerate(batch.requests):
            first = self.log.count[custom_id] == 1
            if batch.expires and n % 2 == 1 and first:
                results[custom_id] = ("expired", {})
            elif self.rng.random() < self.fail_rate and first:
                results[custom_id] = ("errored", {"error": {"type": "api_error", "message": "server error"}})
            else:
                status, payload = handler(body)
                results[custom_id] = ("succeeded" if status == 200 else "errored", payload)
        batch.results = results
        for custom_id, (outcome, _) in results.items():
            if outcome != "succeeded":
                self._live_or_done[custom_id] -= 1
        if batch.kind == "openai":
            out, err = [], []
            for custom_id, (outcome, payload) in results.items():
                line: dict[str, Any] = {"id": f"batch_req_{custom_id[:12]}", "custom_id": custom_id}
                if outcome == "succeeded":
                    out.append({**line, "response": {"status_code": 200, "request_id": "req", "body": payload},
                                "error": None})  # fmt: skip
                elif outcome == "expired":
                    err.append({**line, "response": None,
                                "error": {"code": "batch_expired", "message": "not completed in time"}})  # fmt: skip
                else:
                    err.append({**line, "response": {"status_code": 500, "request_id": "req", "body": payload},
                                "error": None})  # fmt: skip
            if out:
                batch.output_file_id = self._file("\n".join(json.dumps(x) for x in out) + "\n")
            if err:
                batch.error_file_id = self._file("\n".join(json.dumps(x) for x in err) + "\n")

    def _file(self, text: str) -> str:
        file_id = self._id("file-")
        self.files[file_id] = text.encode()
        return file_id

    def get(self, batch_id: str) -> FakeBatch | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is not None:
                self._settle(batch)
            return batch

    # -- views --------------------------------------------------------------------------------------------------
    def openai_object(self, batch: FakeBatch) -> dict[str, Any]:
        counts = {"total": len(batch.requests), "completed": 0, "failed": 0}
        status = "in_progress"
        if batch.results is not None:
            counts["completed"] = sum(1 for o, _ in batch.results.values() if o == "succeeded")
            counts["failed"] = counts["total"] - counts["completed"]
            status = "expired" if batch.expires else "completed"
        return {"id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "status": status,
                "input_file_id": batch.input_file_id, "output_file_id": batch.output_file_id,
                "error_file_id": batch.error_file_id, "completion_window": "24h", "created_at": int(batch.created),
                "request_counts": counts, "metadata": batch.metadata}  # fmt: skip

    def anthropic_object(self, batch: FakeBatch) -> dict[str, Any]:
        counts = {"processing": len(batch.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.results is not None:
            counts["processing"] = 0
            for outcome, _ in batch.results.values():
                counts[outcome] += 1
        ended = batch.results is not None
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(batch.created))
        created = f"{stamp}.{int(batch.created % 1 * 1e6):06d}Z"
        return {"id": batch.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "created_at": created,
                "results_url": f"/v1/messages/batches/{batch.id}/results" if ended else None}  # fmt: skip

    def anthropic_results(self, batch: FakeBatch) -> bytes:
        lines = []
        for custom_id, (outcome, payload) in (batch.results or {}).items():
            result: dict[str, Any] = {"type": outcome}
            if outcome == "succeeded":
                result["message"] = payload
            elif outcome == "errored":
                result["error"] = {"type": "error", "error": payload.get("error", {})}
            lines.append(json.dumps({"custom_id": custom_id, "result": result}))
        return ("\n".join(lines) + "\n").encode()

    def listing(self, kind: str) -> list[FakeBatch]:
        with self.lock:
            return [b for b in self.batches.values() if b.kind == kind]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"batches": len(self.batches), "requests": sum(self.log.count.values()),
                    "distinct": len(self.log.count), "wasteful": len(self.log.wasteful),
                    "wasteful_ids": self.log.wasteful[:20]}  # fmt: skip
