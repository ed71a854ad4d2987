"""The fake server's model of a provider's prompt (prefix) cache, per server process.

A request is a list of blocks (the system prompt, then each message; Anthropic content blocks separately). A block
boundary whose prefix this server computed before is "cached": OpenAI-style servers read the longest such prefix
automatically; Anthropic-style requests only at the blocks marked `cache_control`. Tokens are characters / 4, as
everywhere in the testing models.

It also measures prefix affinity: a request that continues a conversation (it holds an earlier assistant turn) is a
*hit* when this server computed that earlier turn's whole context (everything before the last user message) — the
KV cache a vLLM replica with prefix caching would reuse. Several endpoints with good routing keep that share at 1.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

CAPACITY = 200_000  # prefixes remembered (least recently used dropped first)


def _chain(blocks: list[tuple[str, str]]) -> list[bytes]:
    """The running hash after each block."""
    digest = hashlib.sha256(b"prefix")
    out = []
    for role, text in blocks:
        for part in (role, text):
            data = part.encode()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        out.append(digest.copy().digest())
    return out


@dataclass
class Affinity:
    eligible: int = 0
    hits: int = 0


@dataclass
class PromptCache:
    seen: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    affinity: dict[str, Affinity] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _has(self, digest: bytes) -> bool:
        if digest in self.seen:
            self.seen.move_to_end(digest)
            return True
        return False

    def _add(self, digest: bytes) -> None:
        self.seen[digest] = None
        self.seen.move_to_end(digest)
        if len(self.seen) > CAPACITY:
            self.seen.popitem(last=False)

    def serve(self, model: str, blocks: list[tuple[str, str]], reply: str, marks: set[int] | None = None) -> int:
        """Record one request (`blocks`) answered with `reply`; return how many of its characters were cached.
        `marks`: the block indices carrying a cache breakpoint (Anthropic); None: automatic (OpenAI)."""
        hashes = _chain([*blocks, ("assistant", reply)])
        sizes = [len(text) for _, text in blocks]
        with self.lock:
            # affinity: does this server hold the previous turn (all but the last user message)?
            if sum(1 for role, _ in blocks if role == "assistant") and len(blocks) >= 2:
                stat = self.affinity.setdefault(model, Affinity())
                stat.eligible += 1
                stat.hits += self._has(hashes[len(blocks) - 2])
            points = range(len(blocks)) if marks is None else sorted(marks)
            cached = 0
            for i in points:
                if i < len(blocks) and self._has(hashes[i]):
                    cached = sum(sizes[: i + 1])
            for i in points:
                if i < len(blocks):
                    self._add(hashes[i])
            if marks is None:
                self._add(hashes[len(blocks)])  # the reply joins the context the next turn extends
        return cached

    def stats(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {m: {"eligible": a.eligible, "hits": a.hits} for m, a in self.affinity.items()}
