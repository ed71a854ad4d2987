"""Secrets out, control characters escaped: the one function every error line passes through (`error_line`) before
it is printed or stored, and the URL helpers that keep credentials given in a base URL out of every file and line.

A base URL may carry credentials: userinfo (`http://user:sk-…@host/v1`) or query parameters named like a secret
(`?api-key=sk-…`, `token`, `secret`, `signature`…). `split_url` takes them apart (they are sent as HTTP Basic auth and
as query parameters) and registers their values; `redact` then replaces every registered value, the configured API
keys, `Authorization`-like echoes (`Bearer …`, `x-api-key: …`) and credentials inside any URL with `***`.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter values ("none", "x") would mask ordinary words; the patterns below still catch them
KEY_ENV_VARS = ("CARRYON_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")
_SECRET_PARAM_WORDS = ("key", "token", "secret", "signature", "password", "passwd", "auth", "credential", "session")
_SECRET_PARAM_NAMES = frozenset({"sig", "pwd", "code"})

_secrets: set[str] = set()

_HEADER_ECHO = re.compile(
    r"(?i)((?:proxy-)?authorization|x-api-key|api[-_]?key|x-goog-api-key)(\s*[\"']?\s*[:=]\s*[\"']?\s*)"
    r"((?:bearer|basic|token)\s+)?[^\s\"',;}&]+"
)
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic)\s+[a-z0-9._~+/=-]{4,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"']+@")
_QUERY_PARAM = re.compile(r"([?&;])([^=&\s\"'#]+)=([^&\s\"'#]*)")
_KEY_SHAPED = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter's name says its value is a credential (`api-key`, `access_token`, `sig`…)."""
    lowered = name.lower()
    return lowered in _SECRET_PARAM_NAMES or any(word in lowered for word in _SECRET_PARAM_WORDS)


def register_secret(value: str | None) -> None:
    """Mask `value` in every line that passes through `redact` from now on (values under 6 characters excepted)."""
    if value and len(value.strip()) >= MIN_SECRET_CHARS:
        _secrets.add(value.strip())
        for variant in (quote(value, safe=""), base64.b64encode(value.encode()).decode()):
            if len(variant) >= MIN_SECRET_CHARS:
                _secrets.add(variant)


def register_env_keys() -> None:
    for name in KEY_ENV_VARS:
        register_secret(os.environ.get(name))


def _mask_params(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    return f"{sep}{name}={MASK}" if value and is_secret_param(unquote(name)) else match.group(0)


def redact(text: str) -> str:
    """`text` with every registered secret, configured API key, Authorization-like echo and URL credential masked."""
    register_env_keys()
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _HEADER_ECHO.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{MASK}", text)
    text = _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _QUERY_PARAM.sub(_mask_params, text)
    return _KEY_SHAPED.sub(f"sk-{MASK}", text)


_KEEP = frozenset("\n\t")
_ESCAPED_RANGES = (
    (0x00, 0x1F), (0x7F, 0x9F),  # C0 and C1 controls (ESC starts terminal escape sequences), DEL
    (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069),  # bidirectional overrides (reorder what is shown)
    (0x2028, 0x2029), (0xD800, 0xDFFF), (0xFEFF, 0xFEFF),  # line/paragraph separators, lone surrogates, BOM
)  # fmt: skip


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: str, *, newlines: bool = False) -> str:
    """`text` safe to print on a terminal as it is: control characters, bidi overrides and lone surrogates shown as
    escapes (`\\x1b`), newlines too unless `newlines`. Print the result with markup off: it is not rich markup."""
    keep = _KEEP if newlines else frozenset("\t")
    return "".join(
        _escape(c) if c not in keep and any(lo <= ord(c) <= hi for lo, hi in _ESCAPED_RANGES) else c for c in text
    )


def error_line(text: str, *, limit: int | None = None) -> str:
    """An error message as it may be printed or stored: secrets masked, control characters escaped (newlines kept),
    cut to `limit` characters."""
    line = plain(redact(text), newlines=True)
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"


def snippet(body: bytes, limit: int = 200) -> str:
    """The start of a server's (untrusted) response body as one short, safe line."""
    text = body[: limit * 4].decode("utf-8", "replace")
    return plain(redact(" ".join(text.split())))[:limit]


@dataclass(frozen=True)
class SplitURL:
    """A base URL taken apart: where to send requests, the credentials it carried, and how to show it."""

    base: str  # scheme://host[:port]/path, no userinfo, no query
    params: tuple[tuple[str, str], ...]  # its query parameters, sent with every request
    username: str | None
    password: str | None

    @property
    def basic_auth(self) -> str | None:
        """The `Authorization` header value for userinfo in the URL (HTTP Basic), if any."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    @property
    def display(self) -> str:
        """The URL with its credentials masked: safe to print and store."""
        return redact_url(self.base + ("?" + urlencode(self.params) if self.params else ""))


def split_url(url: str) -> SplitURL:
    """Take a base URL apart, registering every credential it holds (see `redact`)."""
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    for value in (username, password, *(v for k, v in params if is_secret_param(k))):
        register_secret(value)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return SplitURL(base, params, username, password)


def redact_url(url: str) -> str:
    """`url` with userinfo and secret-named query values masked (and anything registered)."""
    return redact(url)
