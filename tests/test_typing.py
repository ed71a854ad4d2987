"""The package and its tests type-check under `mypy --strict` (pyproject.toml: files, untyped dependencies)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_mypy_strict_passes() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
