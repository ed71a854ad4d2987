"""Before any paid call: is each OpenAI-compatible server reachable, and does it serve the model?"""

from __future__ import annotations

from collections.abc import Iterable

from carryon.errors import BadInput
from carryon.models.names import ModelSpec


def preflight(specs: Iterable[ModelSpec]) -> None:
    """Raise BadInput naming the server or the model when an `openai-api/` server is unreachable or lists its models
    without this one. Servers that do not list models pass (the first call will tell)."""
    import httpx  # a start-up probe only; model calls go through aiohttp (models/http.py)

    for spec in {s.name + str(s.base_url): s for s in specs if s.provider == "openai-api"}.values():
        url = f"{spec.base_url}/models"
        try:
            response = httpx.get(url, timeout=10.0)
        except httpx.HTTPError as error:
            raise BadInput(f"--base-url {spec.base_url}: unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            continue
        try:
            served = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if served and spec.model not in served:
            raise BadInput(f"{spec.name}: not served at {spec.base_url}; served: {', '.join(served[:10])}")
