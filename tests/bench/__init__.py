"""`make bench`: the real bot against the loopback fakes, side by side with the usual ways.

`python -m tests.bench` runs every figure and writes docs/benchmarks.md and docs/benchmarks.json;
`python -m tests.bench poll relay` runs some of them (the documents then hold only those).
"""
