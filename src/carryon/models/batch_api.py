"""Provider batch APIs, spoken over HTTP: OpenAI's Batch API (a JSONL file uploaded to `/files`, a batch created at
`/batches` over it, polled, its output and error files read back) — also what OpenAI-compatible servers that offer
batches speak — and Anthropic's Message Batches (`/v1/messages/batches`, requests inline, results as JSONL).

Each adapter builds request bodies and parses answers with the model's own chat client (so a batched call is the
same request a synchronous one would be) and knows nothing of the run store: `carryon/batching.py` decides what to
submit, records it and collects results.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urljoin

import aiohttp

from carryon.core.errors import ModelCallError
from carryon.core.chat import PROVIDER_REFUSAL, ChatRequest, ChatResult
from carryon.models.http import HttpChatClient
from carryon.models.retry import RetryPolicy, TransientError, check_status
from carryon.core.redact import error_line


@dataclass
class BatchState:
    remote_id: str
    ended: bool
    status: str
    raw: dict[str, Any] = field(default_factory=dict)


# A request's outcome in an ended batch: its result, or the reason it failed (then it may be submitted again).
Outcomes = dict[str, ChatResult | str]


class BatchAPI(Protocol):
    provider: str
    endpoint: str
    max_requests: int

    async def submit(self, local_id: str, requests: list[tuple[str, ChatRequest]]) -> str: ...

    async def poll(self, remote_id: str) -> BatchState: ...

    async def results(self, state: BatchState) -> Outcomes: ...

    async def find(self, local_id: str, n: int, since: float, known: set[str]) -> str | None: ...


class _Http:
    """GET/POST with the chat client's session and headers, bounded retries on transient failures."""

    def __init__(self, client: HttpChatClient, retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.retry = retry or RetryPolicy(max_attempts=6)

    async def call(self, method: str, url: str, **kwargs: Any) -> bytes:
        """The body of a successful answer. The base URL's own query parameters (a key given as `?api-key=`) go with
        every request; errors name the endpoint with its credentials masked."""
        what = f"{self.client.display} (batch API)"
        params = [*self.client.url.params, *(kwargs.pop("params", None) or {}).items()]
        last: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                async with self.client._http().request(method, url, params=params or None, **kwargs) as response:
                    raw = await response.read()
                    check_status(response.status, response.headers.get("retry-after"), raw, what)
                    return raw
            except TransientError as error:
                last = error
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                last = TransientError(f"{what}: {type(error).__name__}")
            if attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt, last.retry_after))
        raise ModelCallError(error_line(f"{last} (gave up after {self.retry.max_attempts} attempts)"))

    async def json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        raw = await self.call(method, url, **kwargs)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            raise ModelCallError(f"{self.client.display} (batch API): malformed response") from None
        if not isinstance(body, dict):
            raise ModelCallError(f"{self.client.display} (batch API): unexpected response")
        return body


def _lines(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # an unreadable line: its request counts as failed (missing) and is submitted again
    return out


def _parse(client: HttpChatClient, body: Any) -> ChatResult | str:
    try:
        result = client.parse_body(body)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        return f"malformed result ({type(error).__name__})"
    if not result.text.strip() and result.finish_reason not in ("length", PROVIDER_REFUSAL):
        return "empty completion"
    return result


class OpenAIBatches:
    """OpenAI's Batch API: `POST /files` (purpose `batch`, JSONL), `POST /batches`, `GET /batches/{id}` until
    `completed`/`failed`/`expired`/`cancelled`, then the output and error files from `GET /files/{id}/content`."""

    provider = "openai"
    max_requests = 10_000  # of the 50,000 (and 200 MB) a batch may hold: files stay ~30 MB
    TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

    def __init__(self, client: HttpChatClient) -> None:
        self.client = client
        self.endpoint = client.base_url
        self.http = _Http(client)

    async def submit(self, local_id: str, requests: list[tuple[str, ChatRequest]]) -> str:
        lines = "".join(
            json.dumps({"custom_id": key, "method": "POST", "url": "/v1/chat/completions",
                        "body": self.client.build_payload(request)}) + "\n"
            for key, request in requests
        )  # fmt: skip
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", lines.encode(), filename=f"{local_id}.jsonl", content_type="application/jsonl")
        uploaded = await self.http.json("POST", f"{self.endpoint}/files", data=form)
        created = await self.http.json("POST", f"{self.endpoint}/batches", json={
            "input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h",
            "metadata": {"carryon_batch": local_id},
        })  # fmt: skip
        return str(created["id"])

    async def poll(self, remote_id: str) -> BatchState:
        body = await self.http.json("GET", f"{self.endpoint}/batches/{remote_id}")
        status = str(body.get("status"))
        return BatchState(remote_id, status in self.TERMINAL, status, body)

    async def results(self, state: BatchState) -> Outcomes:
        outcomes: Outcomes = {}
        for file_key in ("output_file_id", "error_file_id"):
            file_id = state.raw.get(file_key)
            if not file_id:
                continue
            for line in _lines(await self.http.call("GET", f"{self.endpoint}/files/{file_id}/content")):
                key = str(line.get("custom_id"))
                response = line.get("response") or {}
                error = line.get("error")
                if response.get("status_code") == 200 and not error:
                    outcomes[key] = _parse(self.client, response.get("body"))
                else:
                    reason = (error or {}).get("code") or f"HTTP {response.get('status_code')}"
                    outcomes[key] = f"batch request failed: {reason}"
        return outcomes

    async def find(self, local_id: str, n: int, since: float, known: set[str]) -> str | None:
        """The batch created for `local_id`, if the provider has it (found by its metadata)."""
        body = await self.http.json("GET", f"{self.endpoint}/batches", params={"limit": "100"})
        for batch in body.get("data") or []:
            if (batch.get("metadata") or {}).get("carryon_batch") == local_id:
                return str(batch["id"])
        return None


class AnthropicBatches:
    """Anthropic's Message Batches: `POST /v1/messages/batches` (requests inline: custom_id + Messages params),
    `GET /v1/messages/batches/{id}` until `processing_status` is `ended`, then the JSONL at `results_url`: per
    request `succeeded` (a message), `errored`, `canceled` or `expired`."""

    provider = "anthropic"
    max_requests = 10_000  # of the 100,000 (and 256 MB) a batch may hold

    def __init__(self, client: HttpChatClient) -> None:
        self.client = client
        self.endpoint = client.base_url
        self.http = _Http(client)

    async def submit(self, local_id: str, requests: list[tuple[str, ChatRequest]]) -> str:
        body = {"requests": [{"custom_id": key, "params": self.client.build_payload(request)}
                             for key, request in requests]}  # fmt: skip
        created = await self.http.json("POST", f"{self.endpoint}/v1/messages/batches", json=body)
        return str(created["id"])

    async def poll(self, remote_id: str) -> BatchState:
        body = await self.http.json("GET", f"{self.endpoint}/v1/messages/batches/{remote_id}")
        status = str(body.get("processing_status"))
        return BatchState(remote_id, status == "ended", status, body)

    async def results(self, state: BatchState) -> Outcomes:
        url = state.raw.get("results_url") or f"/v1/messages/batches/{state.remote_id}/results"
        outcomes: Outcomes = {}
        for line in _lines(await self.http.call("GET", urljoin(self.endpoint + "/", str(url)))):
            key = str(line.get("custom_id"))
            result = line.get("result") or {}
            if result.get("type") == "succeeded":
                outcomes[key] = _parse(self.client, result.get("message"))
            else:
                outcomes[key] = f"batch request {result.get('type', 'failed')}"
        return outcomes

    async def find(self, local_id: str, n: int, since: float, known: set[str]) -> str | None:
        """Message batches carry no metadata: the one created since `since` (less a minute of clock skew) with `n`
        requests that no record of this run names, if exactly one fits."""
        body = await self.http.json("GET", f"{self.endpoint}/v1/messages/batches", params={"limit": "100"})
        fits = []
        for batch in body.get("data") or []:
            created = _timestamp(batch.get("created_at"))
            total = sum(int(v) for v in (batch.get("request_counts") or {}).values())
            if batch.get("id") not in known and created >= since - 60 and total == n:
                fits.append(str(batch["id"]))
        return fits[0] if len(fits) == 1 else None


def _timestamp(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def batch_api(client: HttpChatClient, provider: str) -> BatchAPI:
    if provider == "anthropic":
        return AnthropicBatches(client)
    return OpenAIBatches(client)
