"""Where a local judge call's time goes, and what the speed-ups cost in decisions: the bundled model judging the same
responses three ways, interleaved response by response.

    python benchmarks/judge_speed.py [--responses 8] [--items 7]

Workload: `--responses` responses of the Ben-Util gold set (tests/data/benutil_gold.jsonl), each judged against
`--items` checklist items (its own and the next rows' — a demo response meets 5 checklist items and 2–3 unsafe
descriptions, one call each) with the per-item question, as a run judges one response: calls in order, sharing the
prompt prefix. Three ways, each on its own llama.cpp server (so each keeps its own KV cache), taking turns per
response so load drift falls on all alike:

1. `full reply, logits_all` — before issue 15: the verdict with its reason, and llama-cpp-python's default of
   keeping the logits of every prompt token;
2. `decision-only, logits_all` — the reply cut after the decision (`judge.common.BRIEF_PROVIDERS`);
3. `decision-only` — and the server started without logits for every prompt token (CarryOn's default now);
4. `batched, one call` — all the items in one call (`--ben-util-mode batched`: one JSON object with a verdict and a
   reason per item), on a server like 3's.

Prints wall seconds per response (median) and per item, completion tokens per call, and how many decisions differ
from way 1 (decision-only must not change a decision: the grammar makes the model write the decision first, greedy);
an undecided item (unparseable output) counts as differing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from carryon.core.concurrency import run as run_async
from carryon.calls import CachedCaller
from carryon.judge.ben_util import judge_batched
from carryon.judge.items import judge_items
from carryon.judge.validate import load_gold
from carryon.models.local import BUNDLED, LocalServer, assemble
from carryon.models.openai_compat import OpenAICompatClient
from carryon.store import Store

GOLD = Path(__file__).resolve().parent.parent / "tests" / "data" / "benutil_gold.jsonl"
WAYS = (("full reply, logits_all", True, False), ("decision-only, logits_all", True, True),
        ("decision-only", False, True), ("batched, one call", False, False))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=8)
    parser.add_argument("--items", type=int, default=7)
    parser.add_argument("--offset", type=int, default=0, help="first gold row used")
    args = parser.parse_args()
    rows = load_gold(GOLD)
    weights = BUNDLED["qwen2.5-coder-1.5b"]
    path = assemble(weights)
    servers = [LocalServer(path, weights.alias, logits_all=logits_all) for _, logits_all, _ in WAYS]
    for server in servers:
        server.start()
    times: dict[str, list[float]] = {name: [] for name, _, _ in WAYS}
    tokens: dict[str, list[int]] = {name: [] for name, _, _ in WAYS}
    decisions: dict[str, list[bool | None]] = {name: [] for name, _, _ in WAYS}
    try:
        with TemporaryDirectory() as tmp:
            for n in range(len(WAYS)):
                (Path(tmp) / str(n)).mkdir()
            stores = [Store(Path(tmp) / str(n)) for n in range(len(WAYS))]
            for r in range(args.offset, args.offset + args.responses + 1):  # the first response warms each server up
                row = rows[r % len(rows)]
                texts = [rows[(r + k) % len(rows)].extra["checklist_item"] for k in range(args.items)]
                for (name, _, brief), server, store in zip(WAYS, servers, stores):
                    # a `local/` name makes the judge decision-only; another name gets the full reply
                    client = OpenAICompatClient(("local/" if brief else "bench/") + weights.alias, weights.alias,
                                                server.base_url, schema_style="llama-cpp", concurrency=1, timeout_s=600)
                    caller = CachedCaller(store)
                    started = time.perf_counter()
                    verdict = run_async(_judge(caller, client, texts, row, batched=name.startswith("batched")))
                    wall = time.perf_counter() - started
                    if r == args.offset:
                        continue
                    times[name].append(wall)
                    decisions[name].extend(v.get("met") for v in verdict.values())
                    print(f"response {r - args.offset}: {name}: {wall:.1f}s", flush=True)
                    used = store.db.execute("SELECT completion_tokens FROM calls ORDER BY created DESC LIMIT ?",
                                            (1 if name.startswith("batched") else args.items,)).fetchall()  # fmt: skip
                    tokens[name].extend(u[0] for u in used)
            for store in stores:
                store.close()
    finally:
        for server in servers:
            server.stop()
    base = decisions[WAYS[0][0]]
    print(f"bundled model {weights.alias}, {args.responses} gold responses x {args.items} items, "
          f"{os.cpu_count()} threads, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'way':<28} {'s/response':>10} {'s/item':>7} {'tokens/call':>11} {'decisions differing from way 1':>31}")
    for name, _, _ in WAYS:
        per_resp = statistics.median(times[name])
        differ = sum(a != b for a, b in zip(base, decisions[name]))
        print(f"{name:<28} {per_resp:>10.1f} {per_resp / args.items:>7.2f} {statistics.mean(tokens[name]):>11.1f} "
              f"{differ:>15} of {len(base)}")  # fmt: skip
    print(json.dumps({name: [round(t, 2) for t in ts] for name, ts in times.items()}))


async def _judge(caller: CachedCaller, client: OpenAICompatClient, texts: list[str], row: object,
                 batched: bool = False) -> dict[str, dict[str, object]]:  # fmt: skip
    try:
        if batched:
            verdict = await judge_batched(caller, client, texts, row.history, row.response)  # type: ignore[attr-defined]
        else:
            verdict = await judge_items(caller, client, texts, "c", row.history, row.response)  # type: ignore[attr-defined]
    finally:
        await client.aclose()
    items: dict[str, dict[str, object]] = verdict.value.get("items") or {f"c{n + 1}": {} for n in range(len(texts))}
    return items


if __name__ == "__main__":
    main()
