"""The retry/limit loop shared by the HTTP chat clients; subclasses only build and parse payloads."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from carryon.errors import ModelCallError
from carryon.models.base import ChatRequest, ChatResult
from carryon.models.limits import AdaptiveLimiter
from carryon.models.retry import TRANSPORT_ERRORS, RetryPolicy, TransientError, check_status, sleep_before_retry


class HttpChatClient:
    """Posts a JSON payload per request with bounded retries and an adaptive concurrency limit."""

    path: str = "/chat/completions"

    def __init__(
        self,
        name: str,
        model: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.limiter = AdaptiveLimiter(concurrency)
        self.retries = 0
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers or {},
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=max(concurrency, 1) * 2, max_keepalive_connections=64),
        )

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> ChatResult:
        payload = self.build_payload(request)
        what = f"{self.name} at {self.base_url}"
        last: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            async with self.limiter.slot():
                started = time.perf_counter()
                try:
                    response = await self._http.post(self.path, json=payload)
                    check_status(response, what)
                    result = self._parse(response, what)
                except TransientError as error:
                    last = error
                except TRANSPORT_ERRORS as error:
                    last = TransientError(f"{what}: {type(error).__name__}")
                else:
                    self.limiter.on_success()
                    return result.model_copy(update={"latency_s": time.perf_counter() - started})
            if last.overload:
                self.limiter.on_overload()
            self.retries += 1
            if attempt < self.retry.max_attempts:
                await sleep_before_retry(self.retry, attempt, last)
        raise ModelCallError(f"{last} (gave up after {self.retry.max_attempts} attempts)")

    def _parse(self, response: httpx.Response, what: str) -> ChatResult:
        try:
            body = response.json()
            result = self.parse_body(body)
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
            raise TransientError(f"{what}: malformed response ({type(error).__name__})") from None
        if not result.text.strip() and result.finish_reason != "length":
            raise TransientError(f"{what}: empty completion")
        return result

    async def aclose(self) -> None:
        await self._http.aclose()
