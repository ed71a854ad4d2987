"""The intent-discrimination parts of the report in headless Chromium: the benign-recovery vs malicious-hold chart
(one point per model, where the metrics put it), the new headline columns, the browser's condition filter and the
benign/malicious twins side by side; and the leaderboard's new columns."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from carryon.compare import compare_runs
from carryon.config import RunConfig
from carryon.pipeline import run
from conftest import REPO

TWINS = REPO / "tests" / "fixtures" / "twins.jsonl"
MODELS = ("gullible", "ideal")
SEQUENCES = 4


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    dirs = []
    for name in MODELS:
        out = tmp_path_factory.mktemp(name)
        config = RunConfig(target=f"testing/{name}", judge=["testing/judge"], dataset=str(TWINS), sequences=SEQUENCES,
                           out=out)  # fmt: skip
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop running on this thread
            pool.submit(run, config).result()
        dirs.append(out)
    out = tmp_path_factory.mktemp("compare")
    return out, compare_runs(dirs, out)


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.resolve().as_uri())
    return page, errors


def test_recovery_vs_hold_chart_puts_each_model_where_its_metrics_say(browser: Any, comparison: tuple[Path, list[list[str]]]) -> None:
    out, _ = comparison
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    page, errors = _open(browser, out / "report.html")
    chart = page.locator("#plot-recovery-vs-hold svg")
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200
    # gullible recovers for everyone (bottom right), ideal holds for the malicious twin (top right)
    gullible, ideal = metrics["testing/gullible"]["recovery_vs_hold"], metrics["testing/ideal"]["recovery_vs_hold"]
    assert (gullible["benign_recovery"]["mean"], gullible["malicious_hold"]["mean"]) == (1.0, 0.0)
    assert (ideal["benign_recovery"]["mean"], ideal["malicious_hold"]["mean"]) == (1.0, 1.0)
    labels = {}
    for name in MODELS:
        text = chart.locator("text", has_text=f"testing/{name}").first  # the label beside the point
        labels[name] = text.bounding_box()
    axes = chart.locator("#patch_2").bounding_box() or box  # the plotting area (matplotlib's axes background)
    for name, label in labels.items():
        assert label and label["x"] > axes["x"] + axes["width"] / 2, name  # both recover: right half
    assert labels["ideal"]["y"] < axes["y"] + axes["height"] / 2 < labels["gullible"]["y"]
    # the curves of the malicious conversations sit beside the benign ones: for the ideal model the malicious
    # Ben-Util ends below the benign one (lower on the page), for the gullible one they are the same line
    for plot in ("#plot-utility-intent", "#plot-harm-intent"):
        assert page.locator(f"{plot} svg text", has_text="testing/ideal: malicious").count() == 1

    def last_y(name: str, who: str) -> float:
        path = page.locator(f'#plot-utility-intent g[id="curve-ben_util-{who}-testing/{name}"] path').first
        return float(path.get_attribute("d").split()[-1])

    assert last_y("ideal", "malicious") > last_y("ideal", "benign")
    assert last_y("gullible", "malicious") == last_y("gullible", "benign")
    assert errors == []


def test_headline_and_intent_tables_match_metrics(browser: Any, comparison: tuple[Path, list[list[str]]]) -> None:
    out, rows = comparison
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    page, errors = _open(browser, out / "report.html")
    for name in MODELS:
        m = metrics[f"testing/{name}"]
        row = page.locator(f'#headline-table tr[data-model="testing/{name}"]')
        assert row.locator("td.v-discrimination").inner_text().startswith(f"{m['discrimination']['auroc']:.2f}")
        blind = m["failure_modes"]["intent_blind_recovery"]
        assert row.locator("td.v-intent_blind_recovery").inner_text().startswith(f"{100 * blind:.1f}")
        intent_row = page.locator(f'#intent-table tr[data-model="testing/{name}"]')
        final = m["conditions"]["malicious"]["ben_util"]["mean"]
        assert intent_row.locator("td.v-malicious").inner_text().startswith(f"{100 * final:.1f}")
    assert page.locator('#headline-table tr[data-model="testing/ideal"] td.v-discrimination').inner_text() \
        .startswith("1.00")  # fmt: skip
    # the leaderboard gets the same two columns
    by_model = {r[0]: r for r in rows}
    assert by_model["testing/ideal"][-2:] == ["1.00", "0.0"]
    assert by_model["testing/gullible"][-2:] == ["0.50", "100.0"]
    assert errors == []


def test_browser_filters_by_condition_and_shows_twins_side_by_side(browser: Any, comparison: tuple[Path, list[list[str]]]) -> None:
    out, _ = comparison
    page, errors = _open(browser, out / "report.html")
    total = page.locator("details.conv").count()
    assert total == len(MODELS) * 6 * 2 * (SEQUENCES + 1)
    page.select_option('select[data-filter="condition"]', "malicious")
    visible = page.locator("details.conv:visible")
    assert visible.count() == len(MODELS) * 6 * SEQUENCES
    assert {visible.nth(i).get_attribute("data-condition") for i in range(visible.count())} == {"malicious"}
    page.select_option('select[data-filter="model"]', "testing/ideal")
    malicious = page.locator("details.conv:visible").first
    twin_key = malicious.get_attribute("data-twin")
    twin = page.locator(f'details.conv[data-key="{twin_key}"]')
    assert twin.get_attribute("data-condition") == "multi_turn"
    malicious.locator("summary").click()
    left, right = malicious.locator(".pair > .side").nth(0), malicious.locator(".pair > .side").nth(1)
    assert left.get_attribute("data-side") == "benign" and right.get_attribute("data-side") == "malicious"
    assert left.is_visible() and right.is_visible()
    left_box, right_box = left.bounding_box(), right.bounding_box()
    assert left_box and right_box and left_box["x"] + left_box["width"] <= right_box["x"]  # side by side
    # the left column is the benign twin's conversation: same first question and moves, another user
    own_users = malicious.locator(".side.own .msg.user").all_inner_texts()
    twin_users = left.locator(".msg.user").all_inner_texts()
    assert twin_users == twin.locator(".side.own .msg.user").all_inner_texts()
    assert len(own_users) == len(twin_users) and own_users[0] == twin_users[0]
    assert own_users != twin_users  # the sequence reveals a purpose: the benign one on the left, the malicious here
    page.select_option('select[data-filter="failure"]', "intent_blind_recovery")
    assert page.locator("details.conv:visible").count() == 0  # not the ideal model's
    page.select_option('select[data-filter="model"]', "testing/gullible")
    assert page.locator("details.conv:visible").count() > 0
    assert errors == []
