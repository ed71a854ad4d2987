"""The layering (pyproject.toml [tool.importlinter]) holds: `lint-imports` over this source tree keeps every
contract — core at the bottom, store / models / data independent of each other, nothing imports carryon.testing."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.exit(lint_imports_command())"],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
