"""Tokens/s of the bundled model through CarryOn vs llama.cpp itself, on the same weights and settings.

    python benchmarks/local_model.py [--prompts 4] [--max-tokens 128]

Three ways to generate greedy completions for the same N long-form prompts (each asks for more text than
`--max-tokens`, so every path generates exactly max-tokens tokens a prompt and the paths do the same work; the
script checks it — with short answers, e.g. refusals, tokens/s would mostly measure prompt evaluation, and paths
whose completions differ in length would not be comparable):
1. llama.cpp in-process (llama-cpp-python's `Llama`, no HTTP) — the reference;
2. llama.cpp's OpenAI-compatible server called directly over HTTP;
3. CarryOn's client (`local/qwen2.5-coder-1.5b`: the server CarryOn starts + its aiohttp client, retries, limiter),
   at concurrency 1 and 2 (the server serves one request at a time, so 2 only queues).
Prints decode tokens/s (completion tokens / wall time) for each and the ratio to the reference. Goal: ≥ 0.9.
Run it alone: llama.cpp's threads spin, and a second busy process on 2 cores halves everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from carryon.core import concurrency as aio
from carryon.core.chat import ChatRequest, msgs
from carryon.models.local import BUNDLED, LocalServer, assemble
from carryon.models.openai_compat import OpenAICompatClient

N_CTX = 4096
TOPICS = ("how a bicycle's gears work", "how photosynthesis works", "how a refrigerator keeps food cold",
          "how the water cycle works", "how a compiler turns source code into machine code",
          "how vaccines train the immune system", "how a suspension bridge carries its load", "how tides form")  # fmt: skip


def long_prompts(n: int) -> list[str]:
    return [f"Write a detailed, multi-paragraph explanation of {t}, for a curious teenager." for t in TOPICS[:n]]


Pass = tuple[int, float]  # (completion tokens, wall seconds) of one pass over the prompts


def reference_pass(llm: Any, prompts: list[str], max_tokens: int) -> Pass:
    tokens, started = 0, time.perf_counter()
    for prompt in prompts:
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - started


def direct_http(base: str, alias: str, prompts: list[str], max_tokens: int) -> Pass:
    tokens, started = 0, time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for prompt in prompts:
            body = {"model": alias, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "temperature": 0.0}  # fmt: skip
            tokens += client.post(f"{base}/chat/completions", json=body).json()["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - started


async def through_carryon(base: str, alias: str, prompts: list[str], max_tokens: int, concurrency: int) -> Pass:
    client = OpenAICompatClient("local/" + alias, alias, base, schema_style="llama-cpp", concurrency=concurrency,
                                timeout_s=600)  # fmt: skip
    started = time.perf_counter()
    results = await asyncio.gather(*(
        client.complete(ChatRequest(messages=msgs(("user", p)), max_tokens=max_tokens)) for p in prompts))  # fmt: skip
    await client.aclose()
    return sum(r.usage.completion_tokens for r in results), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4, choices=range(1, len(TOPICS) + 1))
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="passes of each path, interleaved; the median is kept")
    args = parser.parse_args()
    from llama_cpp import Llama

    prompts = long_prompts(args.prompts)
    weights = BUNDLED["qwen2.5-coder-1.5b"]
    path = assemble(weights)
    # Both llama.cpps stay loaded, and the paths take turns pass by pass, so drift (CPU clock, page cache) falls on
    # all alike; only one generates at a time (two busy llama.cpps on 2 cores slow each other ~10x).
    llm = Llama(model_path=str(path), n_ctx=N_CTX, n_threads=os.cpu_count() or 1, verbose=False)
    passes: dict[str, list[Pass]] = {}
    with LocalServer(path, weights.alias, n_ctx=N_CTX) as server:
        paths: dict[str, Callable[[], Pass]] = {
            "llama.cpp in-process (reference)": lambda: reference_pass(llm, prompts, args.max_tokens),
            "llama.cpp server, direct HTTP": lambda: direct_http(server.base_url, weights.alias, prompts, args.max_tokens),
            **{f"CarryOn client, concurrency {c}": (lambda c=c: aio.run(
                through_carryon(server.base_url, weights.alias, prompts, args.max_tokens, c))) for c in (1, 2)},
        }  # fmt: skip
        reference_pass(llm, prompts[:1], 8)  # warm-ups
        direct_http(server.base_url, weights.alias, prompts[:1], 8)
        for _ in range(args.repeats):
            for name, run in paths.items():
                passes.setdefault(name, []).append(run())
    rows = [(name, *sorted(runs, key=lambda r: r[0] / r[1])[len(runs) // 2]) for name, runs in passes.items()]
    ref = rows[0][1] / rows[0][2]
    print(f"bundled model {weights.alias}, {len(prompts)} prompts, max_tokens {args.max_tokens}, "
          f"{os.cpu_count()} threads, n_ctx {N_CTX}, median of {args.repeats} interleaved passes")  # fmt: skip
    print(f"{'path':<36} {'tokens':>7} {'wall s':>7} {'tok/s':>7} {'ratio':>6}   tok/s of each pass")
    for name, tokens, wall in rows:
        each = " ".join(f"{t / w:.2f}" for t, w in passes[name])
        print(f"{name:<36} {tokens:>7} {wall:>7.1f} {tokens / wall:>7.2f} {tokens / wall / ref:>6.2f}   {each}")
    uneven = [name for name, runs in passes.items() if any(t != len(prompts) * args.max_tokens for t, _ in runs)]
    if uneven:
        print(f"note: not every completion reached max_tokens in: {', '.join(uneven)} (the paths did unequal work)")
    best = max(rows[2:], key=lambda r: r[1] / r[2])
    print(f"best CarryOn: {best[0]} at {best[1] / best[2] / ref:.2f} of the reference (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
