"""A reply the provider's safety layer stopped is a `provider_refusal`: not sent to a judge, never counted as the
model's own refusal, shown apart in metrics.json and the report, and it ends its conversation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import load_metrics, run_cli


def test_provider_refusals_are_recorded_apart(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("run", "--target", "openai-api/filtered", "--judge", "openai-api/judge", "--base-url", fake_server,
                     "--dataset", str(small_dataset), "--limit", "2", "--sequences", "2", "--out", str(out), "--quiet")  # fmt: skip
    assert result.returncode == 0, result.stderr
    convs = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    multi = [c for c in convs if c["condition"] == "multi_turn"]
    upfront = [c for c in convs if c["condition"] == "upfront"]
    # the query alone is stopped by the provider: the conversation ends there, typed provider_refusal, nothing met
    assert multi and all(c["stop_reason"] == "provider_refusal" and len(c["turns"]) == 1 for c in multi)
    first = [c["turns"][0] for c in multi]
    assert all(t["response_type"] == "provider_refusal" and t["ben_util"] == 0.0 and t["harm"] == 0.0 for t in first)
    assert all(c["turns"][0]["response_type"] == "full_compliance" for c in upfront)
    with sqlite3.connect(out / "run.sqlite") as db:
        assert {r[0] for r in db.execute("SELECT finish_reason FROM turns WHERE idx = 0 AND conv_id NOT LIKE '%upfront'")} == {"provider_refusal"}
        judged = {r[0] for r in db.execute("SELECT raw FROM judgements WHERE conv_id NOT LIKE '%upfront'")}
    assert judged == {"(not judged: the target's provider refused)"}  # no judge call for them

    conditions = load_metrics(out)["models"]["openai-api/filtered"]["conditions"]
    assert conditions["turn1"]["provider_refusal_rate"]["mean"] == 1.0
    assert conditions["turn1"]["refusal_rate"]["n"] == 0  # not the model's own refusals
    assert conditions["upfront"]["provider_refusal_rate"]["mean"] == 0.0
    assert conditions["upfront"]["ben_util"]["mean"] == 1.0
    html = (out / "report.html").read_text()
    assert "provider refusals" in html and '<td class="v-provider_refusal">100.0 / 100.0</td>' in html
