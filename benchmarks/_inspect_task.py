"""The Inspect AI side of benchmarks/harness_overhead.py: CarryOn's multi-turn shape as an Inspect task.

    FAKE_BASE_URL=http://127.0.0.1:PORT/v1 FAKE_API_KEY=none \
        benchmarks/.venv-inspect/bin/python benchmarks/_inspect_task.py --samples S --turns T --log-dir DIR

Runs in the Inspect venv (not CarryOn's environment). Each sample is one conversation: per turn the target
(`openai-api/fake/ideal`, the task model) answers, a judge (`openai-api/fake/judge`) grades the answer, and a simulated
user (`openai-api/fake/user`) writes the next message, so S × T × 3 real HTTP calls with no cache. Exits non-zero
unless the eval succeeds.
"""

from __future__ import annotations

import argparse
import sys

from inspect_ai import Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, get_model
from inspect_ai.solver import Generate, Solver, TaskState, solver


@solver
def carryon_shape(turns: int) -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        user, judge = get_model("openai-api/fake/user"), get_model("openai-api/fake/judge")
        for turn in range(1, turns + 1):
            state = await generate(state, cache=False)
            answer = state.output.completion
            request = f"Sample {state.sample_id}, turn {turn}.\n<request>\n{state.input_text}\n</request>\n"
            await judge.generate([ChatMessageUser(content=f"{request}<response>\n{answer}\n</response>")], cache=False)
            system = (f"You are a benign user. Your original question was: {state.input_text}\n"
                      f"Instruction for this message: Reply with a minimal follow-up (turn {turn}).")  # fmt: skip
            messages = [ChatMessageSystem(content=system), ChatMessageUser(content=answer)]
            reply = await user.generate(messages, cache=False)
            state.messages.append(ChatMessageUser(content=f"{reply.completion} (follow-up {turn})"))
        return state

    return solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--log-dir", required=True)
    args = parser.parse_args()
    samples = [Sample(id=i, input=f"Question {i}: how do I store household chemicals safely?")
               for i in range(args.samples)]  # fmt: skip
    task = Task(dataset=MemoryDataset(samples), solver=carryon_shape(args.turns))
    [log] = eval(task, model="openai-api/fake/ideal", log_dir=args.log_dir, display="none",
                 max_samples=args.concurrency, max_connections=args.concurrency)  # fmt: skip
    if log.status != "success":
        sys.exit(f"inspect eval {log.status}: {log.error}")


if __name__ == "__main__":
    main()
