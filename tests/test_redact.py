"""The one redaction function and plain-text printing (issue 13): secrets out, control characters escaped."""

from __future__ import annotations

import base64

import pytest

from carryon.redact import error_line, plain, redact, split_url


def test_credentials_in_a_url_are_split_off_registered_and_masked() -> None:
    url = split_url("http://alice:sk-userinfo-123456@127.0.0.1:8000/v1/?api-key=sk-query-654321&region=eu")
    assert url.base == "http://127.0.0.1:8000/v1"
    assert url.params == (("api-key", "sk-query-654321"), ("region", "eu"))
    assert url.basic_auth == "Basic " + base64.b64encode(b"alice:sk-userinfo-123456").decode()
    assert url.display == "http://127.0.0.1:8000/v1?api-key=***&region=eu"
    # registered: masked wherever they turn up, even outside a URL
    assert redact("echo: sk-userinfo-123456 and sk-query-654321") == "echo: *** and ***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Authorization": "Bearer abc.def-123"}', '{"Authorization": "Bearer ***"}'),
        ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
        ("x-api-key: zzzzzz", "x-api-key: ***"),
        ("see https://bob:hunter2@example.com/v1", "see https://***@example.com/v1"),
        ("GET /v1/models?key=abc&token=def&page=2", "GET /v1/models?key=***&token=***&page=2"),
        ("/p?X-Amz-Signature=abcdef&sig=1", "/p?X-Amz-Signature=***&sig=***"),
        ("leaked sk-proj-AAAAAAAAAAAA", "leaked sk-***"),
        ("environment variable OPENAI_API_KEY is not set", "environment variable OPENAI_API_KEY is not set"),
    ],
)
def test_authorization_like_echoes_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_configured_keys_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRYON_API_KEY", "my-very-own-key-42")
    assert error_line("server said: my-very-own-key-42 is wrong") == "server said: *** is wrong"


def test_plain_escapes_control_characters_bidi_and_surrogates() -> None:
    hostile = "a\x1b[31mred\x1b[0m\x07\r\u202eevil\ud83d\u2028 [bold]x[/]\nnext\x9b"
    assert plain(hostile) == "a\\x1b[31mred\\x1b[0m\\x07\\x0d\\u202eevil\\ud83d\\u2028 [bold]x[/]\\x0anext\\x9b"
    assert plain("line one\nline two", newlines=True) == "line one\nline two"
    assert plain("tab\there") == "tab\there"
