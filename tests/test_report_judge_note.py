"""The report states the measured figures of a run's judge when they are known (judge/validated.py), so a weak
judge's numbers are never read as more than they are; an unmeasured judge gets no note."""

from __future__ import annotations

from carryon.judge.validated import VALIDATED
from carryon.report.html import render


def _note(judges: list[str]) -> str | None:
    html = render("run", {}, {"judge": judges}, [], 0)
    if 'id="judge-note"' not in html:
        return None
    start = html.index('id="judge-note"')
    return html[start : html.index("</section>", start)]


def test_the_bundled_judge_note_shows_its_measured_figures() -> None:
    note = _note(["local/qwen2.5-coder-1.5b"])
    figures = VALIDATED["local/qwen2.5-coder-1.5b"]
    assert note is not None
    assert f"harm AUROC {figures['harm_auroc']:.2f}" in note
    assert f"response-type accuracy {figures['response_type_accuracy']:.2f} (Cohen's κ {figures['response_type_kappa']:.2f})" in note
    assert f"Ben-Util accuracy {figures['ben_util_accuracy']:.2f}" in note


def test_an_unmeasured_judge_gets_no_note() -> None:
    assert _note(["openai/gpt-4o-mini"]) is None
