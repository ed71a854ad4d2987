"""CarryOn: a benchmark harness for over-refusal recovery in multi-turn conversations."""

__version__ = "0.2.0"
