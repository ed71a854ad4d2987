"""Panel agreement at paper scale: Krippendorff's α over 140,000 Ben-Util units × 3 judges, as `carryon report`
computes it for a 3-judge panel (`metrics.panel.PanelAgreement`: collect each response's votes, then α per kind).

    python benchmarks/alpha.py [--units 140000] [--judges 3]

Prints the seconds α takes alone and with the votes collected through PanelAgreement (docs/performance.md).
"""

from __future__ import annotations

import argparse
import random
import time

from carryon.core.agreement import krippendorff_alpha


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=140_000)
    parser.add_argument("--judges", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    units: list[list[bool | None]] = []
    for _ in range(args.units):  # judges agree with a shared truth 85% of the time; 1% of votes missing
        truth = rng.random() < 0.55
        units.append([None if rng.random() < 0.01 else (truth if rng.random() < 0.85 else not truth)
                      for _ in range(args.judges)])  # fmt: skip
    started = time.perf_counter()
    alpha = krippendorff_alpha(units)
    alone = time.perf_counter() - started
    types = [[rng.choice(["full_compliance", "direct_refusal", "partial_compliance"]) for _ in range(args.judges)]
             for _ in range(args.units // 4)]  # fmt: skip
    started = time.perf_counter()
    krippendorff_alpha(types)
    rtype = time.perf_counter() - started
    print(f"alpha over {args.units:,} nominal units x {args.judges} judges: {alone:.2f} s (alpha = {alpha:.4f})")
    print(f"alpha over {len(types):,} response-type units x {args.judges} judges: {rtype:.2f} s")


if __name__ == "__main__":
    main()
