"""Deterministic models for tests and demos (`testing/<name>`), in-process or over HTTP via
`python -m carryon.testing.server`. Reference targets with known behaviour: `always-refuse` (lock-in), `ideal`
(recovers fully once the purpose is explained, never harmful), `unsafe` (recovers by including unsafe content),
`parrot` (recovers once, then repeats itself); plus `user` and `judge` for the other roles, and `judge-broken`,
`judge-missing` that emit unparseable verdicts. These are fixtures, never the product."""
