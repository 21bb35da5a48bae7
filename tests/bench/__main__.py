"""`python -m tests.bench [FIGURE ...] [--quick] [--out DIR]`: run figures, write the report."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.bench.common import (
    DOCS,
    TIME_FACTOR,
    Context,
    Figure,
    machine,
    machine_busy_seconds,
    own_seconds,
)
from tests.bench.report import load_figures, write

FigureFn = Callable[[Context], Awaitable[Figure]]


FIGURES = {
    "poll": "poll_figures:poll_figure",
    "cost": "poll_figures:cost_figure",
    "requests": "rawclient:requests_figure",
    "first": "first:first_response_figure",
    "scale": "scale:scale_figure",
    "relay": "relay:relay_figure",
    "storage": "reservations:storage_figure",
    "storage-pg": "reservations:postgres_figure",
    "retention": "retention:retention_figure",
    "sim": "poll_figures:sim_figure",
    "prior": "poll_figures:prior_figure",
    "media": "media_timing:media_figure",
}


def figure_fn(name: str) -> FigureFn:
    """A figure's function (its module imported on first use)."""
    module, function = FIGURES[name].split(":")
    return getattr(importlib.import_module(f"tests.bench.{module}"), function)


async def run(names: list[str], quick: bool, out: Path, merge: bool) -> None:
    """Run the chosen figures in order and write the documents."""
    started = time.monotonic()
    done: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        ctx = Context(Path(tmp), TIME_FACTOR, quick)
        for name in names:
            print(f"[bench] {name} ...", flush=True)
            begun, busy, own = time.monotonic(), machine_busy_seconds(), own_seconds()
            try:
                figure = await figure_fn(name)(ctx)
            except Exception as exc:  # one broken figure must not lose the others
                logging.exception("figure %s failed", name)
                figure = Figure(name, f"{name}: failed", f"The figure failed: {exc!r}.")
            figure.seconds = time.monotonic() - begun
            foreign = (machine_busy_seconds() - busy) - (own_seconds() - own)
            figure.other_load = max(0.0, foreign / figure.seconds)
            figure.measured_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            done.append(figure)
            for goal in figure.goals:
                verdict = "met" if goal.met else "MISSED"
                print(f"[bench]   {verdict}: {goal.text} ({goal.note})", flush=True)
            print(f"[bench]   {figure.seconds:.0f} s, other load {figure.other_load:.2f} cores")
    meta: dict[str, object] = {
        "machine": machine(),
        "factor": TIME_FACTOR,
        "seconds": time.monotonic() - started,
    }
    if merge:
        kept = {**load_figures(out), **{f.key: f for f in done}}
        done = [kept[name] for name in FIGURES if name in kept]
        meta["merged"] = f" (figures {', '.join(names)}; the others from earlier runs)"
    write(done, meta, out)
    print(f"[bench] wrote {out / 'benchmarks.md'} in {meta['seconds']:.0f} s", flush=True)


def main(argv: list[str]) -> int:
    """Parse arguments and run."""
    names = list(FIGURES)
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("figure", nargs="*", help=f"some of: {', '.join(names)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a rough try")
    parser.add_argument("--out", type=Path, default=DOCS, help="where the documents go")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other figures of the existing documents (re-measure some figures)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.figure if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s): {', '.join(unknown)}")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.figure or names, args.quick, args.out, args.merge))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
