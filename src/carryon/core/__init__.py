"""The bottom layer every other package builds on, and which imports none of them: chat types (`chat`), the move
taxonomy (`moves`), errors, statistics and agreement, text similarity, file contracts (`contracts`), io helpers and
concurrency. The layering is written down as import-linter contracts in pyproject.toml (`lint-imports`)."""
