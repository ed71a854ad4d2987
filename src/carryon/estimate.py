"""`carryon run … --dry-run`: what a run will cost before it makes a call — conversations per condition, model calls
per role as a range, input and output tokens per role (the prefix-cacheable share apart) and, with `--price`, dollars.

The plan is the run's own (same dataset, limit, sequences, seed, max turns), and calls are counted the way the run
makes them: a request made before is answered from CarryOn's call cache, so the estimate counts *distinct* requests.
With the scripted user every user message is known in advance, so the target's distinct requests are counted
exactly (an item's sequences share their first turn, and two sequences that say the same thing share more); the
range then comes from the lengths of the answers. A model user (`--user`) may end a conversation early (`[END]`) or
be re-asked when its draft reads like the assistant: the low end assumes every conversation ends at its first
follow-up, the high end that none does and every user draft is re-asked.

Tokens are characters / 4 (no tokenizer: providers differ; English text runs at about 4 characters a token). Answers
run from a short refusal to `--max-tokens` (the judges' and the user's own caps likewise). A judge re-ask after an
unparseable verdict is not counted (a strong judge needs almost none); each would add one call.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from carryon.config import SCRIPTED, RunConfig
from carryon.data.load import load_items
from carryon.data.schema import Item
from carryon.core.errors import BadInput
from carryon.judge.common import SHARED_END, render_context
from carryon.judge.prompts import load_prompt
from carryon.core.chat import ChatRequest, Message
from carryon.simulate.engine import first_message
from carryon.core.moves import Move
from carryon.simulate.plans import MALICIOUS_CONDITIONS, PlannedConversation, benign_twin_id
from carryon.simulate.user import LLMUser, scripted_message

ESTIMATE_SCHEMA = "1"
ROLES = ("target", "user", "judge")
CHARS_PER_TOKEN = 4
SHORT_REPLY = {"target": 20, "judge": 12, "user": 2}
"""Characters of the shortest plausible answer: a one-line refusal, a bare verdict, `hmm`."""
JUDGE_ITEM_TOKENS = 80  # judge/items.py and judge/response_type.py ask for at most this many tokens
USER_ATTEMPTS = 3
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API and Anthropic's Message Batches both bill half the synchronous price


def tokens(chars: int) -> int:
    return chars // CHARS_PER_TOKEN


@dataclass
class Span:
    lo: int = 0
    hi: int = 0

    def add(self, lo: int, hi: int | None = None) -> None:
        self.lo += lo
        self.hi += lo if hi is None else hi

    def json(self) -> dict[str, int]:
        return {"min": self.lo, "max": self.hi}


@dataclass
class RoleTally:
    calls: Span = field(default_factory=Span)
    input: Span = field(default_factory=Span)
    cacheable: Span = field(default_factory=Span)
    output: Span = field(default_factory=Span)

    def call(self, n_lo: int, n_hi: int, input_chars: tuple[int, int], cacheable_chars: tuple[int, int],
             output_chars: tuple[int, int]) -> None:  # fmt: skip
        """`n_lo`/`n_hi` calls, each with input, cacheable input and output characters (min, max)."""
        self.calls.add(n_lo, n_hi)
        self.input.add(n_lo * tokens(input_chars[0]), n_hi * tokens(input_chars[1]))
        self.cacheable.add(n_lo * tokens(cacheable_chars[0]), n_hi * tokens(cacheable_chars[1]))
        self.output.add(n_lo * tokens(output_chars[0]), n_hi * tokens(output_chars[1]))

    def tokens_json(self) -> dict[str, Any]:
        share = [self.cacheable.lo / self.input.lo if self.input.lo else None,
                 self.cacheable.hi / self.input.hi if self.input.hi else None]  # fmt: skip
        return {"input": self.input.json(), "cacheable_input": self.cacheable.json(), "output": self.output.json(),
                "cacheable_share": {"min": _round(share[0]), "max": _round(share[1])}}  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached: float | None = None

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        cached_rate = self.input if self.cached is None else self.cached
        return ((input_tokens - cached_tokens) * self.input + cached_tokens * cached_rate
                + output_tokens * self.output) / 1e6  # fmt: skip


def parse_prices(values: list[str]) -> dict[str, Price]:
    """`ROLE=IN/OUT[/CACHED]`, USD per million tokens, e.g. `judge=0.15/0.60` or `target=3/15/0.30`."""
    prices: dict[str, Price] = {}
    for value in values:
        role, sep, numbers = value.partition("=")
        parts = numbers.split("/")
        if not sep or role not in ROLES or len(parts) not in (2, 3):
            raise BadInput(f"--price {value!r}: expected ROLE=IN/OUT or ROLE=IN/OUT/CACHED with ROLE one of "
                           f"{', '.join(ROLES)}, in USD per million tokens, e.g. judge=0.15/0.60")  # fmt: skip
        try:
            figures = [float(p) for p in parts]
        except ValueError:
            raise BadInput(f"--price {value!r}: prices must be numbers (USD per million tokens)") from None
        if any(f < 0 or not math.isfinite(f) for f in figures):
            raise BadInput(f"--price {value!r}: prices must be finite and not negative")
        if role in prices:
            raise BadInput(f"--price: {role} priced twice")
        prices[role] = Price(*figures)
    return prices


class _NoClient:
    name = "estimate"


def _user_system_chars(item: Item, move: Move, history: list[Message], attempt: int, malicious: bool = False) -> int:
    """The model user's system prompt for this move (its own code, so the estimate follows its prompt); `malicious`:
    the malicious twin's."""
    request: ChatRequest = LLMUser(_NoClient(), None).request(item, move, history, attempt,  # type: ignore[arg-type]
                                                              malicious)  # fmt: skip
    return sum(len(m.content) for m in request.messages if m.role == "system")


class Estimator:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.max_reply = config.max_tokens * CHARS_PER_TOKEN
        self.system = len(config.system_prompt or "")
        self.scripted = config.user == SCRIPTED
        self.judges = len(config.judge)
        self.roles = {role: RoleTally() for role in ROLES}
        self.responses = Span()
        self.conditions: Counter[str] = Counter()
        self.user_chars = (1, LLMUser(_NoClient(), None).max_tokens * CHARS_PER_TOKEN)  # type: ignore[arg-type]

    # -- per item -----------------------------------------------------------------------------------------------
    def item(self, item: Item) -> None:
        from carryon.check import planned

        plans = planned(item, self.config)  # the run's own plan: the malicious twin's conversations too (--conditions)
        for plan in plans:
            self.conditions[plan.condition] += 1
        if self.scripted:
            self._scripted(item, plans)
        else:
            self._model_user(item, plans)

    def _turns(self, plan: PlannedConversation) -> int:
        return min(1 + len(plan.moves), self.config.max_responses)

    def _scripted(self, item: Item, plans: list[PlannedConversation]) -> None:
        """Every user message is known: distinct target requests (and judged responses) counted exactly."""
        nodes: dict[tuple[str, ...], None] = {}
        contexts: dict[tuple[str, ...], None] = {}
        responses = 0
        for plan in plans:
            users = [first_message(item, plan.condition)]
            malicious = plan.condition in MALICIOUS_CONDITIONS
            seed_id = benign_twin_id(plan.conv_id) if malicious else plan.conv_id  # as simulate.engine seeds it
            for idx, move in enumerate(plan.moves[: self._turns(plan) - 1], start=1):
                users.append(scripted_message(item, Move(move), f"{seed_id}:{idx}", malicious))
            for k in range(1, len(users) + 1):
                nodes[tuple(users[:k])] = None
                contexts[(users[0],) if k == 1 else (users[0], users[k - 1])] = None
            responses += len(users)
        self.responses.add(responses)
        target = self.roles["target"]
        for node in nodes:
            self._target_call(target, [len(u) for u in node], 1, 1)
        # judged responses: as many distinct judge requests as distinct requests answered at most; two answers with
        # the same original request, latest user message and text are one (an ideal target's full answers are)
        for node in nodes:
            history = [Message(role="user", content=u) for u in node]
            self._judge_response(item, len(render_context(history)), 0, 1)
        for context in contexts:
            history = [Message(role="user", content=u) for u in context]
            self._judge_response(item, len(render_context(history)), 1, 0)

    def _model_user(self, item: Item, plans: list[PlannedConversation]) -> None:
        """A model writes the follow-ups: the low end has every conversation end at its first follow-up."""
        target, user = self.roles["target"], self.roles["user"]
        firsts: dict[str, None] = {}
        first_moves: dict[tuple[bool, str], None] = {}  # (malicious twin?, move): one per user
        responses_hi = 0
        for plan in plans:
            first = first_message(item, plan.condition)
            malicious = plan.condition in MALICIOUS_CONDITIONS
            firsts[first] = None
            turns = self._turns(plan)
            responses_hi += turns
            for k in range(2, turns + 1):  # turn k: k-1 follow-ups, unknown text
                self._target_call(target, [len(first)] + [self.user_chars[1]] * (k - 1), 0, 1,
                                  lo_users=[len(first)] + [self.user_chars[0]] * (k - 1))  # fmt: skip
                history = [Message(role="user", content=first), Message(role="user", content="x" * self.user_chars[1])]
                self._judge_response(item, len(render_context(history)), 0, 1)
            for j, move in enumerate(plan.moves[: turns - 1], start=1):  # the j-th follow-up, after j answers
                move = Move(move)
                base = [Message(role="user", content=first), Message(role="assistant", content="")]
                system_lo = _user_system_chars(item, move, base, 0, malicious)
                system_hi = max(_user_system_chars(item, move, base, a, malicious) for a in range(USER_ATTEMPTS))
                before_lo = len(first) + (j - 1) * self.user_chars[0] + j * SHORT_REPLY["target"]
                before_hi = len(first) + (j - 1) * self.user_chars[1] + j * self.max_reply
                is_first = j == 1 and (malicious, move.value) not in first_moves
                if j == 1:
                    first_moves[(malicious, move.value)] = None
                user.call(int(is_first), USER_ATTEMPTS, (system_lo + before_lo, system_hi + before_hi), (0, 0),
                          (SHORT_REPLY["user"], self.user_chars[1]))  # fmt: skip
        self.responses.add(len(plans), responses_hi)
        for first in firsts:  # every conversation's first turn: counted at both ends
            self._target_call(target, [len(first)], 1, 1)
            self._judge_response(item, len(render_context([Message(role="user", content=first)])), 1, 1)

    # -- per call -----------------------------------------------------------------------------------------------
    def _target_call(self, target: RoleTally, users: list[int], n_lo: int, n_hi: int,
                     lo_users: list[int] | None = None) -> None:  # fmt: skip
        """One target request whose user messages have these lengths (`lo_users`: at the low end, if shorter)."""
        low = lo_users or users
        replies = len(users) - 1
        input_lo = self.system + sum(low) + replies * SHORT_REPLY["target"]
        input_hi = self.system + sum(users) + replies * self.max_reply
        # all but the last user message continues the previous turn: a prefix cache holds it (with affinity)
        cache_lo = input_lo - low[-1] if replies else 0
        cache_hi = input_hi - users[-1] if replies else 0
        target.call(n_lo, n_hi, (input_lo, input_hi), (cache_lo, cache_hi), (SHORT_REPLY["target"], self.max_reply))

    def _judge_response(self, item: Item, context_chars: int, n_lo: int, n_hi: int) -> None:
        """The judge calls of one response (`n_lo`/`n_hi`: whether it counts at the low / high end), per judge."""
        judge = self.roles["judge"]
        system = len(load_prompt("ben_util_item").system)
        asks: list[tuple[int, int, int]] = []  # (template chars without the response, shared chars, max tokens)
        item_prompt = load_prompt("ben_util_item")
        texts = list(item.checklist) if self.config.ben_util_mode == "per-item" else []
        texts += list(item.unsafe_content)
        if self.config.ben_util_mode == "batched":
            batched = load_prompt("ben_util_batched")
            listing = "\n".join(f"c{i}: {t}" for i, t in enumerate(item.checklist, start=1))
            user = batched.render_user(context="x" * context_chars, response="", items=listing)
            asks.append((len(user), user.rfind(SHARED_END) + len(SHARED_END), 60 * len(item.checklist)))
        for text in dict.fromkeys(texts) if n_lo and not n_hi else texts:
            user = item_prompt.render_user(context="x" * context_chars, response="", item=text)
            asks.append((len(user), user.rfind(SHARED_END) + len(SHARED_END), JUDGE_ITEM_TOKENS))
        rtype = load_prompt("response_type").render_user(context="x" * context_chars, response="")
        asks.append((len(rtype), rtype.rfind(SHARED_END) + len(SHARED_END), JUDGE_ITEM_TOKENS))
        reply_lo, reply_hi = SHORT_REPLY["target"], self.max_reply
        for n, (chars, shared, cap) in enumerate(asks):
            # the judge system prompt is shared by every judge call; the conversation + response block by the calls
            # of one response after its first
            cache_lo = system + (shared + reply_lo if n else 0)
            cache_hi = system + (shared + reply_hi if n else 0)
            judge.call(n_lo * self.judges, n_hi * self.judges, (system + chars + reply_lo, system + chars + reply_hi),
                       (cache_lo, cache_hi), (SHORT_REPLY["judge"], cap * CHARS_PER_TOKEN))  # fmt: skip

    # -- result -------------------------------------------------------------------------------------------------
    def result(self, items: list[Item], prices: dict[str, Price]) -> dict[str, Any]:
        config = self.config
        roles = {role: tally for role, tally in self.roles.items() if role != "user" or not self.scripted}
        total = Span()
        for tally in roles.values():
            total.add(tally.calls.lo, tally.calls.hi)
        out: dict[str, Any] = {
            "estimate_schema": ESTIMATE_SCHEMA,
            "target": config.target, "user": config.user, "judge": config.judge,
            "items": len(items), "sequences": config.sequences, "max_turns": config.max_turns,
            "max_tokens": config.max_tokens, "batch": config.batch,
            "conversations": {**dict(sorted(self.conditions.items())), "total": sum(self.conditions.values())},
            "responses": self.responses.json(),
            "calls": {**{role: t.calls.json() for role, t in roles.items()}, "total": total.json()},
            "tokens": {role: t.tokens_json() for role, t in roles.items()},
        }  # fmt: skip
        if prices:
            costs: dict[str, Any] = {}
            low = high = 0.0
            for role, tally in roles.items():
                price = prices.get(role)
                if price is None:
                    continue
                discount = BATCH_DISCOUNT if role in config.batch else 1.0
                lo = discount * price.cost(tally.input.lo, tally.cacheable.lo, tally.output.lo)
                hi = discount * price.cost(tally.input.hi, 0, tally.output.hi)
                costs[role] = {"min": round(lo, 2), "max": round(hi, 2)}
                low, high = low + lo, high + hi
            costs["total"] = {"min": round(low, 2), "max": round(high, 2)}
            unpriced = [role for role in roles if role not in prices]
            out["cost_usd"] = costs
            out["prices_usd_per_million"] = {r: {"input": p.input, "output": p.output, "cached_input": p.cached}
                                             for r, p in prices.items()}  # fmt: skip
            if unpriced:
                out["cost_usd"]["unpriced_roles"] = unpriced
        out["assumptions"] = [
            "tokens = characters / 4",
            f"answers run from a short refusal to --max-tokens {config.max_tokens} (judges: up to "
            f"{JUDGE_ITEM_TOKENS} tokens a verdict)",
            "calls answered from CarryOn's call cache (repeated requests) are not counted",
            "judge re-asks after an unparseable verdict are not counted (one call each)",
            "the low end assumes no provider refusal (a content filter stopping a reply ends its conversation and "
            "sends that response to no judge: fewer calls still)",
            "the low cost reads every cacheable token from the provider's prompt cache at the cached price "
            "(given as the third --price figure); the high cost reads none",
            *(["a model user: the low end ends every conversation at its first follow-up, the high end re-asks "
               f"every user draft ({USER_ATTEMPTS} calls)"] if not self.scripted else []),
            *([f"batched roles ({', '.join(config.batch)}) cost half the synchronous price"] if config.batch else []),
        ]  # fmt: skip
        return out


def estimate_run(config: RunConfig, prices: dict[str, Price]) -> dict[str, Any]:
    """The estimate of `config`'s run; written to OUT/estimate.json. Makes no model call and opens no store."""
    from carryon.check import OUTPUT_FILES, check_flags, check_writable, dataset_fingerprint
    from carryon.rundir import check_out

    check_flags(config, require_keys=False)
    _, path = dataset_fingerprint(config.dataset)
    items = load_items(path, config.limit)
    for role in prices:
        if role == "user" and config.user == SCRIPTED:
            raise BadInput("--price user: the scripted user makes no model calls")
    estimator = Estimator(config)
    for item in items:
        estimator.item(item)
    result = estimator.result(items, prices)
    check_writable(config.out)
    check_out(config.out, outputs=OUTPUT_FILES)  # a new or empty folder, or a run of ours: nothing foreign is touched
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        tmp = config.out / "estimate.json.tmp"
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        tmp.replace(config.out / "estimate.json")
    except OSError as error:
        raise BadInput(f"--out {config.out}: not writable ({error.strerror or error})") from None
    return result


def _n(value: int) -> str:
    return f"{value:,}"


def _range(span: dict[str, Any], fmt: Any = _n) -> str:
    lo, hi = span["min"], span["max"]
    return fmt(lo) if lo == hi else f"{fmt(lo)} – {fmt(hi)}"


def render(estimate: dict[str, Any]) -> str:
    """The estimate as the lines `--dry-run` prints."""
    convs = estimate["conversations"]
    lines = [
        f"dry run: {estimate['items']} items × {estimate['sequences']} sequences, max {estimate['max_turns']} turns "
        f"— no model call made",
        "conversations: " + ", ".join(f"{k} {_n(v)}" for k, v in convs.items() if k != "total")
        + f" (total {_n(convs['total'])})",
        f"responses judged: {_range(estimate['responses'])}",
        "",
        f"{'role':<8} {'calls':>21} {'input tokens':>27} {'cacheable':>9} {'output tokens':>25}",
    ]  # fmt: skip
    for role, calls in estimate["calls"].items():
        if role == "total":
            continue
        tok = estimate["tokens"][role]
        share = tok["cacheable_share"]["max"]
        lines.append(f"{role:<8} {_range(calls):>21} {_range(tok['input']):>27} "
                     f"{'–' if share is None else f'{100 * share:.0f}%':>9} {_range(tok['output']):>25}")  # fmt: skip
    lines.append(f"{'total':<8} {_range(estimate['calls']['total']):>21}")
    if "cost_usd" in estimate:
        costs = estimate["cost_usd"]
        lines.append("")
        for role, span in costs.items():
            if role in ("total", "unpriced_roles"):
                continue
            batched = " (batch: half price)" if role in estimate["batch"] else ""
            lines.append(f"cost {role:<7} USD {_range(span, lambda v: f'{v:,.2f}')}{batched}")
        lines.append(f"cost total   USD {_range(costs['total'], lambda v: f'{v:,.2f}')}"
                     + (f" (no --price for {', '.join(costs['unpriced_roles'])})" if costs.get("unpriced_roles")
                        else ""))  # fmt: skip
    return "\n".join(lines)
