"""Tokens/s of the bundled model through CarryOn vs llama.cpp itself, on the same weights and settings.

    python benchmarks/local_model.py [--prompts 4] [--max-tokens 128]

Three ways to generate the same greedy completions for the first N built-in queries:
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

import httpx

from carryon.data.load import load_items
from carryon.models.base import ChatRequest, msgs
from carryon.models.local import BUNDLED, LocalServer, assemble
from carryon.models.openai_compat import OpenAICompatClient

N_CTX = 4096


def reference(path: str, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=N_CTX, n_threads=os.cpu_count() or 1, verbose=False)
    tokens, started = 0, time.perf_counter()
    for prompt in prompts:
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
        tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - started


def direct_http(base: str, alias: str, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    tokens, started = 0, time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for prompt in prompts:
            body = {"model": alias, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                    "temperature": 0.0}  # fmt: skip
            tokens += client.post(f"{base}/chat/completions", json=body).json()["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - started


async def through_carryon(base: str, alias: str, prompts: list[str], max_tokens: int, concurrency: int) -> tuple[int, float]:
    client = OpenAICompatClient("local/" + alias, alias, base, schema_style="llama-cpp", concurrency=concurrency,
                                timeout_s=600)  # fmt: skip
    started = time.perf_counter()
    results = await asyncio.gather(*(
        client.complete(ChatRequest(messages=msgs(("user", p)), max_tokens=max_tokens)) for p in prompts))  # fmt: skip
    await client.aclose()
    return sum(r.usage.completion_tokens for r in results), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    prompts = [i.query for i in load_items(limit=args.prompts)]
    weights = BUNDLED["qwen2.5-coder-1.5b"]
    path = assemble(weights)
    rows: list[tuple[str, int, float]] = []
    rows.append(("llama.cpp in-process (reference)", *reference(str(path), prompts, args.max_tokens)))
    with LocalServer(path, weights.alias, n_ctx=N_CTX) as server:
        direct_http(server.base_url, weights.alias, prompts[:1], 8)  # warm-up
        rows.append(("llama.cpp server, direct HTTP", *direct_http(server.base_url, weights.alias, prompts, args.max_tokens)))
        for conc in (1, 2):
            tokens, wall = asyncio.run(through_carryon(server.base_url, weights.alias, prompts, args.max_tokens, conc))
            rows.append((f"CarryOn client, concurrency {conc}", tokens, wall))
    ref = rows[0][1] / rows[0][2]
    print(f"bundled model {weights.alias}, {len(prompts)} prompts, max_tokens {args.max_tokens}, "
          f"{os.cpu_count()} threads, n_ctx {N_CTX}")  # fmt: skip
    print(f"{'path':<36} {'tokens':>7} {'wall s':>7} {'tok/s':>7} {'ratio':>6}")
    for name, tokens, wall in rows:
        print(f"{name:<36} {tokens:>7} {wall:>7.1f} {tokens / wall:>7.2f} {tokens / wall / ref:>6.2f}")
    best = max(rows[2:], key=lambda r: r[1] / r[2])
    print(f"best CarryOn: {best[0]} at {best[1] / best[2] / ref:.2f} of the reference (goal ≥ 0.9)")


if __name__ == "__main__":
    main()
