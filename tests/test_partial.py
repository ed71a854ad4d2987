"""Honest partial results (issue 13): an unfinished run says so in metrics.json and the report, the headline's
unscored counts agree with metrics.json, `compare` refuses it unless --allow-partial and then marks it; --limit scopes
the outputs even on a folder holding more items."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

from conftest import load_metrics, run_cli

BASE = ["run", "--judge", "testing/judge", "--sequences", "2", "--quiet"]


def _run(out: Path, target: str = "testing/ideal", limit: int = 2) -> subprocess.CompletedProcess[str]:
    result = run_cli(*BASE, "--target", target, "--limit", str(limit), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return result


def _make_partial(out: Path) -> tuple[int, int]:
    """Drop the last 20 judgements and mark one conversation unfinished; (conversations, judgements) now pending."""
    with sqlite3.connect(out / "run.sqlite") as db:
        db.execute("DELETE FROM judgements WHERE rowid IN (SELECT rowid FROM judgements ORDER BY rowid DESC LIMIT 20)")
        conv = db.execute("SELECT conv_id FROM plan ORDER BY ord DESC LIMIT 1").fetchone()[0]
        db.execute("UPDATE plan SET status='pending' WHERE conv_id=?", (conv,))
        missing = db.execute(
            "SELECT COUNT(*) * 3 - (SELECT COUNT(*) FROM judgements j JOIN plan p USING (conv_id) "
            "WHERE p.status='done') FROM turns t JOIN plan p USING (conv_id) WHERE p.status='done'"
        ).fetchone()[0]
    return 1, missing


def _headline_unscored(html: str) -> str:
    match = re.search(r'<td class="v-unscored">([^<]*)</td>', html)
    assert match, "no unscored cell in the headline"
    return match.group(1).strip()


def test_partial_run_says_so_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out)
    complete = load_metrics(out)
    assert complete["complete"] is True and complete["pending"] == {"conversations": 0, "judgements": 0}
    convs, judgements = _make_partial(out)
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "not finished" in report.stderr
    metrics = load_metrics(out)
    assert metrics["complete"] is False
    assert metrics["pending"] == {"conversations": convs, "judgements": judgements}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="partial"' in html and "This run is not finished" in html
    unscored = metrics["models"]["testing/ideal"]["unscored"]
    assert _headline_unscored(html) == f"{unscored['ben_util']} / {unscored['harm']} / {unscored['response_type']}"
    assert sum(unscored.values()) > 0  # responses not judged yet count as unscored, as the conditions count them
    model = metrics["models"]["testing/ideal"]
    final = model["conditions"]["multi_turn"]["ben_util"]
    with sqlite3.connect(out / "run.sqlite") as db:
        unjudged = db.execute(
            "SELECT COUNT(*) FROM turns t JOIN plan p USING (conv_id) WHERE p.status='done' AND NOT EXISTS "
            "(SELECT 1 FROM judgements j WHERE j.conv_id=t.conv_id AND j.idx=t.idx AND j.kind='ben_util')"
        ).fetchone()[0]
    assert unscored["ben_util"] == unjudged > 0
    assert final["unscored"] <= unscored["ben_util"]
    # finishing it removes the banner
    assert run_cli(*BASE, "--target", "testing/ideal", "--limit", "2", "--out", str(out)).returncode == 0
    assert load_metrics(out)["complete"] is True
    assert 'id="partial"' not in (out / "report.html").read_text(encoding="utf-8")


def test_compare_refuses_a_partial_run_unless_allowed_and_marks_it(tmp_path: Path) -> None:
    done, partial = tmp_path / "done", tmp_path / "partial"
    _run(done, "testing/ideal")
    _run(partial, "testing/always-refuse")
    _make_partial(partial)
    assert run_cli("report", str(partial)).returncode == 0
    refused = run_cli("compare", str(done), str(partial), "--out", str(tmp_path / "cmp"))
    assert refused.returncode == 2 and "not finished" in refused.stderr and "--allow-partial" in refused.stderr
    assert not (tmp_path / "cmp" / "report.html").exists()
    allowed = run_cli("compare", str(done), str(partial), "--out", str(tmp_path / "cmp"), "--allow-partial")
    assert allowed.returncode == 0, allowed.stderr
    assert "testing/always-refuse (partial)" in allowed.stdout and "testing/ideal (partial)" not in allowed.stdout
    metrics = json.loads((tmp_path / "cmp" / "metrics.json").read_text())
    assert metrics["complete"] is False and metrics["partial_runs"] == {"testing/always-refuse": str(partial)}
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert 'id="partial"' in html and 'class="tag partial"' in html


def test_limit_is_honoured_on_a_folder_holding_more_items(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, limit=3)
    assert load_metrics(out)["models"]["testing/ideal"]["n_items"] == 3
    again = _run(out, limit=1)
    assert "model calls: 0 made" in again.stdout
    metrics = load_metrics(out)
    assert metrics["models"]["testing/ideal"]["n_items"] == 1 and metrics["complete"] is True
    lines = (out / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    assert len({json.loads(line)["item_id"] for line in lines}) == 1
    # one item: the upfront baseline and two sequences, for the benign user and for its malicious twin
    assert metrics["conversations"]["planned"] == 6
    before = (out / "metrics.json").read_bytes()
    assert run_cli("report", str(out)).returncode == 0
    assert (out / "metrics.json").read_bytes() == before  # `report` keeps the last run's scope
