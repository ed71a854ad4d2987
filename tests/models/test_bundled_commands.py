"""The commands that talk to a model besides `run`, `dataset build` and `dataset calibrate` (their own files), each once
on a bundled model through a real llama.cpp server: `serve`, `judge validate`, `audit`. The 0.5B model keeps them
short; they check that the command and the real server agree (requests, grammars, parsing), not the model's quality.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import REPO, load_metrics, run_cli

pytestmark = pytest.mark.slow
SMALL = "local/qwen2.5-coder-0.5b"


@pytest.mark.timeout(300)
def test_serve_answers_chat_completions_until_interrupted() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "from carryon.cli import main; main()", "serve", "--model", SMALL],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the server answers
        assert line.startswith("serving openai-api/") and " at http://127.0.0.1:" in line, line
        alias, base = line.split()[1].removeprefix("openai-api/"), line.split(" at ")[1].split()[0]
        reply = httpx.post(f"{base}/chat/completions", timeout=120, json={
            "model": alias, "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}).json()  # fmt: skip
        assert reply["choices"][0]["message"]["content"].strip()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        with pytest.raises(httpx.HTTPError):  # the model server went with it
            httpx.get(f"{base}/models", timeout=2)
    finally:
        proc.kill()


@pytest.mark.timeout(600)
def test_judge_validate_on_the_bundled_model(tmp_path: Path) -> None:
    args = ["judge", "validate", "--task", "ben-util", "--data", str(REPO / "tests" / "data" / "benutil_gold.jsonl"),
            "--limit", "3", "--judge", SMALL, "--out", str(tmp_path / "v")]  # fmt: skip
    result = run_cli(*args, timeout=550)
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout and "model calls: 0 made" not in result.stdout, result.stdout
    again = run_cli(*args, timeout=120)
    assert again.returncode == 0 and again.stdout.split("model calls")[0] == result.stdout.split("model calls")[0]


@pytest.mark.timeout(600)
def test_audit_on_the_bundled_model(tmp_path: Path, small_dataset: Path) -> None:
    out = tmp_path / "run"
    ran = run_cli("run", "--target", "testing/ideal", "--judge", "testing/judge", "--dataset", str(small_dataset),
                  "--limit", "1", "--sequences", "1", "--max-turns", "4", "--conditions", "benign", "--out", str(out),
                  "--quiet")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    result = run_cli("audit", str(out), "--judge", SMALL, "--quiet", timeout=550)
    assert result.returncode == 0, result.stderr
    sim = next(iter(load_metrics(out)["models"].values()))["simulator"]
    assert sim["audited"] and sim["audit_judge"] == SMALL and sim["n_messages"] >= 1
    rates = [sim[r]["mean"] for r in ("move_adherence", "off_script_rate", "leak_rate")]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rates), sim
    lines = [json.loads(x) for x in (out / "conversations.jsonl").read_text().splitlines()]
    audited = [t["user_audit"] for c in lines if c["condition"] == "multi_turn" for t in c["turns"][1:]]
    assert audited and all(a is not None for a in audited)
