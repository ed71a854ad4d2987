"""Versioned judge prompts.

`judge_system.txt` holds the one system prompt every judge call shares (all tasks and examples); each task file
(`ben_util_item`, `ben_util_batched`, `response_type`) holds a user template that starts with the same
conversation + response block and ends with its task. Sharing that prefix lets a local llama.cpp judge reuse its KV
cache across all the judgements of one response (measured in docs/judges.md). Harm asks `ben_util_item`'s question
of each of the item's unsafe-content descriptions (judge/harm.py).

Each file starts with `version: N`; `versions.lock.json` pins each version's hash, so an edit without a version bump
fails the test-suite.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

SYSTEM = "judge_system"


@dataclass(frozen=True)
class PromptFile:
    name: str
    version: str
    sections: dict[str, str]
    body_sha256: str


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str
    system_version: str

    @property
    def ref(self) -> str:
        """`name@version+judge_system@version`, recorded with every judgement."""
        return f"{self.name}@{self.version}+{SYSTEM}@{self.system_version}"

    def render_user(self, **fields: str) -> str:
        text = self.user
        for key, value in fields.items():
            text = text.replace("{" + key + "}", value)
        return text


def prompt_files() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files(__name__).iterdir() if p.name.endswith(".txt"))


@functools.cache
def read_prompt_file(name: str) -> PromptFile:
    text = resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    head, body = text.split("\n", 1)
    if not head.startswith("version:"):
        raise ValueError(f"judge prompt {name}: first line must be 'version: N'")
    sections: dict[str, str] = {}
    for chunk in body.split("=== ")[1:]:
        title, _, content = chunk.partition(" ===\n")
        sections[title.strip()] = content.strip()
    return PromptFile(name, head.split(":", 1)[1].strip(), sections, hashlib.sha256(body.encode()).hexdigest())


@functools.cache
def load_prompt(name: str) -> Prompt:
    task, system = read_prompt_file(name), read_prompt_file(SYSTEM)
    return Prompt(name, task.version, system.sections["system"], task.sections["user"], system.version)
