"""Pure functions over a run store: per-turn curves, baselines, recovery, failure modes, bootstrap CIs."""

from carryon.metrics.summary import compute_metrics

__all__ = ["compute_metrics"]
