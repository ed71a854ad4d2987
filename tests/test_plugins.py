"""A third-party provider joins through the `carryon.providers` entry-point group, without touching carryon."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

PLUGIN = REPO / "tests" / "fixtures" / "plugin_echo"


def _wheel(folder: Path) -> Path:
    """The plugin as a wheel, zipped by hand from tests/fixtures/plugin_echo (no build backend needed): the module,
    and a dist-info whose entry_points.txt names it in the `carryon.providers` group, as its pyproject.toml says."""
    dist = "carryon_echo-0.0.1.dist-info"
    files = {
        "carryon_echo.py": (PLUGIN / "carryon_echo.py").read_text(),
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: carryon-echo\nVersion: 0.0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: carryon-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[carryon.providers]\necho = carryon_echo\n",
    }
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = folder / "carryon_echo-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin pip-installed into a folder of its own (put on PYTHONPATH), as a user's install would be."""
    target = tmp_path_factory.mktemp("site")
    wheel = _wheel(tmp_path_factory.mktemp("wheel"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(wheel)], check=True, capture_output=True, timeout=300)  # fmt: skip
    assert (target / "carryon_echo-0.0.1.dist-info" / "entry_points.txt").is_file()
    return target


def test_an_installed_provider_runs_a_benchmark(plugin_path: Path, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(REPO / "src")])}
    result = subprocess.run(
        [sys.executable, "-m", "carryon", "run", "--target", "echo/parrot", "--judge", "testing/judge",
         "--dataset", str(small_dataset), "--limit", "1", "--sequences", "2", "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["echo/parrot"]
    first = json.loads((out / "conversations.jsonl").read_text().splitlines()[0])
    assert first["turns"][0]["response"].startswith("echo: ")
    unknown = subprocess.run([sys.executable, "-m", "carryon", "run", "--target", "nope/x", "--out", str(tmp_path / "x")],
                             capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert unknown.returncode == 2 and "known: openai, openai-api, anthropic, local, testing, echo" in unknown.stderr


@pytest.mark.parametrize(("group", "what"), [("carryon.providers", "provider"), ("carryon.judge_kinds", "judge kind")])
def test_a_plugin_that_fails_to_import_is_named_in_one_error(group: str, what: str, small_dataset: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    site = tmp_path / "site"
    dist = site / "carryon_broken-0.0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "carryon_broken.py").write_text('raise RuntimeError("needs a GPU driver")\n')
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: carryon-broken\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\nbroken = carryon_broken\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "src")])}
    result = subprocess.run(
        [sys.executable, "-m", "carryon", "run", "--target", "testing/ideal", "--judge", "testing/judge",
         "--dataset", str(small_dataset), "--limit", "1", "--sequences", "1", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"{what} plugin broken (carryon_broken) failed to load: RuntimeError: needs a GPU driver" in result.stderr
    assert "Traceback" not in result.stderr
