"""Before any paid call: each provider's own check (`Provider.preflight`), once per model and server. For
OpenAI-compatible servers: is the server reachable, and does it serve the model?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from carryon.core.errors import BadInput
from carryon.core.redact import error_line, split_url
from carryon.models.names import ModelSpec
from carryon.models.providers import get


def preflight(specs: Iterable[ModelSpec]) -> None:
    """Run each distinct model's provider preflight, at each of its endpoints (`--base-url` may list several); raises
    BadInput naming the server or the model."""
    singles = [replace(s, base_url=base) for s in specs for base in s.base_urls] + [s for s in specs if not s.base_urls]
    for spec in {(s.name, s.base_url): s for s in singles}.values():
        check = get(spec.provider).preflight
        if check is not None:
            check(spec)


def serves_model(spec: ModelSpec) -> None:
    """An OpenAI-compatible server at `spec.base_url` is reachable and, if it lists its models, lists this one."""
    import httpx  # a start-up probe only; model calls go through aiohttp (models/http.py)

    assert spec.base_url is not None
    url = split_url(spec.base_url)  # credentials in the URL: sent as Basic auth and query parameters, never shown
    auth = {"Authorization": url.basic_auth} if url.basic_auth else {}
    try:
        response = httpx.get(f"{url.base}/models", params=url.params, headers=auth, timeout=10.0)
    except httpx.HTTPError as error:
        raise BadInput(f"--base-url {url.display}: unreachable ({type(error).__name__})") from None
    if response.status_code != 200:
        return  # some servers do not list models; the first call will tell
    try:
        served = [m["id"] for m in response.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return
    if served and spec.model not in served:
        listed = ", ".join(str(m)[:80] for m in served[:10])
        raise BadInput(error_line(f"{spec.name}: not served at {url.display}; served: {listed}"))
