"""Figures about polling: the schedule against fixed loops, client CPU, a no-I/O simulation."""

from __future__ import annotations

import math
import statistics
from typing import Any

from bot import models
from bot.schedule import Fit, PollPolicy, PollSchedule
from tests.bench.common import Context, Figure, Goal, Table, fmt, ms, percentile, summary
from tests.bench.phases import phase_split
from tests.bench.polls import ARRIVALS, SDK_THREADS, Batch, bot_runs, front_runs, sdk_run
from tests.bench.probe import HELD, JOBS, scheduler_probe
from tests.bench.workload import MEDIANS, SIGMA, STRAGGLERS, BenchJob, make_jobs
from tests.schedsim import poll_job, prior_wrong


def _mean_polls(batch: Batch) -> float:
    """Mean polls per delivered job."""
    return statistics.fmean(o.polls for o in batch.outcomes) if batch.outcomes else float("nan")


def _lags(batch: Batch, factor: float) -> list[float]:
    """Real-world lags of a batch."""
    return [o.lag(factor) for o in batch.outcomes]


def _row(batch: Batch, factor: float, reference: float) -> list[str]:
    """One contender's row of the schedule table."""
    lags = summary(_lags(batch, factor))
    polls = _mean_polls(batch)
    delivery = percentile([o.delivery for o in batch.outcomes], 0.5)
    return [
        batch.label,
        f"{len(batch.outcomes)}/{len(batch.jobs)}",
        fmt(polls),
        fmt(100 * polls / reference, 0) + " %",
        fmt(lags.get("p50", float("nan"))) + " s",
        fmt(lags.get("p95", float("nan"))) + " s",
        fmt(lags.get("p99", float("nan"))) + " s",
        ms(delivery),
    ]


def _per_model(batches: list[Batch]) -> Table:
    """Polls per job per model for each contender."""
    table = Table(["model", "median generation", *[b.label for b in batches]], title="Per model")
    for model, median in MEDIANS.items():
        cells = []
        for batch in batches:
            polls = [o.polls for o in batch.outcomes if o.model == model]
            cells.append(fmt(statistics.fmean(polls)) if polls else "n/a")
        table.rows.append([model, f"{median:.0f} s", *cells])
    return table


async def poll_figure(ctx: Context) -> Figure:
    """The bot's learned schedule against a fixed 5-s and 10-s loop (and the SDK loop)."""
    runs = await bot_runs(ctx)
    sdk = await sdk_run(ctx)
    warm, bot = runs["bot"]
    five, ten = runs["fixed5"][0], runs["fixed10"][0]
    reference = _mean_polls(five)
    table = Table(
        [
            "contender",
            "delivered",
            "polls/job",
            "vs 5-s loop",
            "lag p50",
            "lag p95",
            "lag p99",
            "download+upload p50",
        ]
    )
    for batch in (bot, five, ten, sdk, warm):
        table.rows.append(_row(batch, ctx.factor, reference))
    bot_p95 = percentile(_lags(bot, ctx.factor), 0.95)
    five_p95 = percentile(_lags(five, ctx.factor), 0.95)
    ratio = _mean_polls(bot) / reference
    goals = [
        Goal(
            "polls per job at most a third of the 5-s loop's",
            ratio <= 1 / 3,
            f"{100 * ratio:.0f} % of the 5-s loop's polls",
        ),
        Goal(
            "p95 lag no worse than the 5-s loop's",
            bot_p95 <= five_p95,
            f"{bot_p95:.2f} s against {five_p95:.2f} s",
        ),
        Goal(
            "issue 11, steady state no worse: polls per job at most 45 % of the 5-s loop's",
            ratio <= 0.45,
            f"{100 * ratio:.0f} % (43 % before issue 11)",
        ),
    ]
    return Figure(
        "poll",
        "Poll schedule: polls per job and delivery lag",
        _poll_method(ctx, len(bot.jobs), len(warm.jobs)),
        [table, _per_model([bot, five, ten])],
        goals,
        notes=_poll_notes(goals, five_p95),
        raw={b.label: _raw_batch(b, ctx.factor) for b in (warm, bot, five, ten, sdk)},
    )


def _poll_notes(goals: list[Goal], five_p95: float) -> list[str]:
    """Why a schedule goal was missed and what would close it."""
    notes = []
    if not goals[0].met:
        notes.append(
            "Why the polls goal is missed: to keep the p95 lag at the 5-s loop's "
            f"({five_p95:.2f} s here) a schedule has to poll about every 4.5 s from where the "
            "fastest ~5 % of a model's jobs finish until the job is done, so a job's polls grow "
            "with its model's spread of generation times. The schedule-arithmetic figure below "
            "shows that an oracle which knows each model's true distribution needs about as "
            "many polls as the learned schedule (within a few per cent at sigma 0.2), so this "
            "is the floor of polling at this spread, not a learning shortfall. What would close "
            "it: narrower spreads per request shape (the schedule now learns per model *and* "
            "options, but the bench's jobs all use each model's defaults, so it cannot show "
            "this), or a p95 lag ~0.7 s above the 5-s loop's (`PollPolicy(interval=5.5)`). "
            "Z.AI's async API has no completion callback that would make polling unnecessary."
        )
    if not goals[1].met:
        notes.append(
            "Why the lag goal is missed: the learned window starts at the 5 % quantile, so "
            "about 5 % of jobs wait for the first poll; with a noisy fit (recent jobs weigh "
            "most) that share can exceed 5 %, and on a shared machine the scheduler's timing "
            "noise is multiplied by 10 (the time factor). A lower `low_quantile` (0.03) trades "
            "a few polls for it."
        )
    return notes


def _poll_method(ctx: Context, measured: int, warm: int) -> str:
    """How the schedule figure was measured."""
    medians = ", ".join(f"{m} {s:.0f} s" for m, s in MEDIANS.items())
    return (
        f"{measured} jobs sent through `/video` as Poisson arrivals, {ARRIVALS * 60:.0f} a "
        f"minute (about 40 in flight), a third each of {', '.join(MEDIANS)}; "
        f"generation times log-normal per model (medians {medians}; sigma {SIGMA}), "
        f"{STRAGGLERS:.0%} stragglers at 1.5-3x the median, clipped to 30-300 s, all times "
        f"x{ctx.factor:g}. The same jobs, the same times, fresh fakes for every contender. The "
        f"bot first learns from a warm-up batch of {warm} other jobs (its row: the model "
        "table's priors until the first jobs finish). The fixed loops are the same bot with "
        "`PollPolicy.fixed(5)` / `fixed(10)`, so only the schedule differs; the zai-sdk row is "
        "the baseline bot of the cost figure. Lag = provider finished → result message stored "
        "by the fake Discord: the noticing part is scaled back by the time factor, the "
        "download+upload part (real time, a 1 s test mp4) is added unscaled."
    )


def _raw_batch(batch: Batch, factor: float) -> dict[str, object]:
    """A batch's numbers for the JSON file."""
    return {
        "jobs": len(batch.jobs),
        "delivered": len(batch.outcomes),
        "cpu_seconds": batch.cpu,
        "wall_seconds": batch.wall,
        "rss_kib_after": batch.rss_kib,
        "polls_per_job": _mean_polls(batch),
        "lag_seconds": summary(_lags(batch, factor)),
        "delivery_seconds": summary([o.delivery for o in batch.outcomes]),
        "jobs_detail": [
            [o.index, o.model, round(o.seconds, 3), o.polls, round(o.lag(factor), 3)]
            for o in batch.outcomes
        ],
    }


def _cpu_per_job(batch: Batch) -> float:
    """Process CPU seconds per delivered job."""
    return batch.cpu / max(1, len(batch.outcomes))


async def cost_figure(ctx: Context) -> Figure:
    """CPU per delivered job: the bot against zai-sdk in a thread pool (5-s loop)."""
    runs = await bot_runs(ctx)
    sdk = await sdk_run(ctx)
    front = await front_runs(ctx)
    bot, five = runs["bot"][1], runs["fixed5"][0]
    table = Table(
        [
            "client",
            "delivered",
            "polls/job",
            "whole process per job",
            "front end per job",
            "polls+download+upload per job",
            "RSS",
        ]
    )
    pipeline = {}
    for key, batch, front_batch in (
        ("bot", bot, front["bot"]),
        ("fixed5", five, front["bot"]),
        ("sdk", sdk, front["sdk"]),
    ):
        whole, taking = _cpu_per_job(batch), front_batch.cpu / len(front_batch.jobs)
        pipeline[key] = whole - taking
        table.rows.append(
            [
                batch.label,
                str(len(batch.outcomes)),
                fmt(_mean_polls(batch)),
                ms(whole),
                ms(taking),
                ms(whole - taking),
                fmt(batch.rss_kib / 1024, 0) + " MiB",
            ]
        )
    probe = await scheduler_probe(ctx)
    phases, per_phase = await phase_split(ctx, _cpu_per_job(bot))
    overhead = Table(
        ["measure", "value"],
        title="The bot's scheduler (engine alone, in the benchmark's process)",
    )
    overhead.rows.extend(
        [
            [
                f"passes while one poll waits {probe['held_s']:.1f} s for its answer",
                f"{probe['held_passes']} ({ms(probe['held_cpu_s'])} CPU)",
            ],
            [
                f"passes per poll, {JOBS} jobs polled every 0.1 s",
                fmt(probe["passes_per_poll"], 1),
            ],
        ]
    )
    polls = {"bot": _mean_polls(bot), "sdk": _mean_polls(sdk)}
    ratio = pipeline["bot"] / pipeline["sdk"]
    whole_ratio = _cpu_per_job(bot) / _cpu_per_job(sdk)
    goal = Goal(
        "CPU for polls, download and upload per job at most a third of zai-sdk's",
        ratio <= 1 / 3,
        f"{100 * ratio:.0f} % of the baseline's ({100 * whole_ratio:.0f} % for the whole process)",
    )
    method = (
        "Whole-process CPU (user+system, all threads, from /proc) of the client from the "
        "moment the batch is sent until its last result message is stored, divided by the "
        "jobs delivered: the same measured batch as the schedule figure. The front end is the "
        "same jobs sent again to a fresh client whose polls never come: CPU until every job "
        "is submitted plus a second for the status edits (the bot: command, deferral, rules, "
        "cost, image checks, credit reservation, status message, follow-up, submit; the "
        "baseline: reply and submit). The difference is what the issue asks for: polls, "
        "download, upload (and the bot's result-time status edit). The baseline is a "
        f"discord.py bot calling zai-sdk in {SDK_THREADS} threads with the SDK example's "
        "5-s loop, downloading into memory and uploading from memory."
        " The second table splits the bot's CPU by phase (a profiled repeat of the run, "
        "`tests/bench/phases.py`)."
        f" The third table runs the engine alone: one poll's answer held back {HELD:g} s by "
        "the fake (scheduler passes and CPU meanwhile), then jobs polled in a steady stream "
        "(scheduler passes per poll; each pass is 3-4 SQLite round trips)."
    )
    return Figure(
        "cost",
        "Client cost: CPU per delivered job",
        method,
        [table, phases, overhead],
        [goal],
        notes=[] if goal.met else [_cost_note(probe, pipeline, polls, per_phase)],
        raw={
            "scheduler_probe": probe,
            "phases_cpu_per_job": per_phase,
            "whole_cpu_per_job": {
                "bot": _cpu_per_job(bot),
                "fixed5": _cpu_per_job(five),
                "sdk": _cpu_per_job(sdk),
            },
            "front_cpu_per_job": {k: b.cpu / len(b.jobs) for k, b in front.items()},
            "pipeline_cpu_per_job": pipeline,
        },
    )


def _cost_note(
    probe: dict[str, Any],
    pipeline: dict[str, float],
    polls: dict[str, float],
    phases: dict[str, float],
) -> str:
    """Why the cost goal was missed and what would close it (from this run's figures)."""
    top = sorted(phases.items(), key=lambda item: -item[1])[:4]
    biggest = "; ".join(f"{name} {seconds * 1000:.1f} ms" for name, seconds in top)
    poll_phase = next(v for k, v in phases.items() if k.startswith("polls"))
    return (
        f"Why the CPU goal is missed: the bot makes {polls['bot']:.1f} polls per job against "
        f"the baseline's {polls['sdk']:.1f}, and a poll's answer no longer costs a scheduler "
        f"pass ({probe['passes_per_poll']:.1f} passes per poll in the engine-alone probe), "
        f"but a delivered job still costs {pipeline['bot'] * 1000:.0f} ms beyond the front "
        f"end against the baseline's {pipeline['sdk'] * 1000:.0f} ms. Where the bot's CPU "
        f"goes (table by phase, biggest first): {biggest}. The polls phase is "
        f"{poll_phase / max(polls['bot'], 1e-9) * 1000:.1f} ms per poll, and a profile of the "
        "engine polling alone puts ~90 % of that in `httpx.AsyncClient.get` (httpcore's pool "
        "checks every idle connection's socket through anyio on each request, and httpx "
        "builds and parses each request and its cookies in pure Python); the scheduler, the "
        "batched writes and the fit are a few per cent. What would close it: a cheaper HTTP "
        "client for the provider calls (aiohttp, which discord.py already brings, parses in "
        "C; `bot/zai.py`), then fewer Discord messages per job (status edits) and fewer "
        "database round trips per delivery."
    )


def simulate(
    policy: PollPolicy, jobs: list[BenchJob], warm: int, sigma: float | None = None
) -> tuple[float, list[float]]:
    """(mean polls, lags) of a schedule over jobs, learning as it goes (no I/O, real seconds);
    with `sigma`, an oracle that knows each model's true distribution instead."""
    typical = {name: spec.typical_seconds for name, spec in models.MODELS.items()}
    schedule = PollSchedule(policy, typical)
    if sigma is not None:
        fits = {m: Fit(math.log(median), sigma) for m, median in MEDIANS.items()}
        schedule.fit = lambda model, options=None: fits[model]  # type: ignore[method-assign]
    polls, lags = [], []
    for k, job in enumerate(jobs):
        outcome = poll_job(schedule, job.model, job.seconds)
        if k >= warm:
            polls.append(outcome.polls)
            lags.append(outcome.lag)
    return statistics.fmean(polls), lags


async def sim_figure(ctx: Context) -> Figure:
    """The schedule's arithmetic against the spread of generation times, and an oracle."""
    count = 2_000 if ctx.quick else 8_000
    table = Table(
        [
            "sigma",
            "5-s loop polls/job",
            "bot polls/job",
            "bot vs 5-s loop",
            "oracle polls/job",
            "bot vs oracle",
            "bot p95",
            "oracle p95",
            "5-s p95",
        ]
    )
    raw, goals = {}, []
    for sigma in (0.1, 0.15, 0.2, 0.25, 0.3):
        jobs = make_jobs(count, 11, sigma=sigma)
        five, five_lags = simulate(PollPolicy.fixed(5.0), jobs, 300)
        bot, bot_lags = simulate(PollPolicy(), jobs, 300)
        best, best_lags = simulate(PollPolicy(), jobs, 300, sigma=sigma)
        p95 = {k: percentile(v, 0.95) for k, v in (("bot", bot_lags), ("oracle", best_lags))}
        raw[str(sigma)] = {"fixed5": five, "bot": bot, "oracle": best, "p95": p95}
        table.rows.append(
            [
                f"{sigma:g}" + (" (bench)" if sigma == SIGMA else ""),
                fmt(five),
                fmt(bot),
                fmt(100 * bot / five, 0) + " %",
                fmt(best),
                fmt(100 * bot / best, 0) + " %",
                fmt(p95["bot"]) + " s",
                fmt(p95["oracle"]) + " s",
                fmt(percentile(five_lags, 0.95)) + " s",
            ]
        )
        if sigma in (0.1, 0.2, 0.3):
            goals.append(
                Goal(
                    f"sigma {sigma:g}: polls per job within 15 % of the oracle's at its p95 lag "
                    "(within 0.25 s)",
                    bot <= 1.15 * best and p95["bot"] <= p95["oracle"] + 0.25,
                    f"{100 * bot / best:.0f} % of the oracle's polls, p95 "
                    f"{p95['bot']:.2f} s against {p95['oracle']:.2f} s",
                )
            )
    method = (
        f"The bot's `PollSchedule` replayed over {count} jobs per row (the three bench models "
        "in turn, 2 % stragglers), no I/O, real seconds, learning from the intervals its own "
        "polls see, as the engine does; only the per-model spread (sigma of the log-normal) "
        "changes. The oracle is the same schedule given each model's true median and sigma "
        "instead of learning them: what the arithmetic of polls can do at all. Keeping p95 lag "
        "at the 5-s loop's means a poll every ~4.5 s from about the fastest 5 % of a model's "
        "jobs onward, so the polls a job costs grow with its model's spread."
    )
    return Figure("sim", "Schedule arithmetic against the spread", method, [table], goals, raw=raw)


PRIOR_MODELS = ("cogvideox-3", "viduq1-text", "vidu2-image")


async def prior_figure(ctx: Context) -> Figure:
    """Generation times 4x faster and 2x slower than the model table's prior (no I/O)."""
    runs = 60 if ctx.quick else 300
    table = Table(
        [
            "model (prior)",
            "true times",
            "jobs until lag within 10 % of steady",
            "polls/job meanwhile",
            "p95 lag meanwhile",
            "polls/job, first 10 jobs",
            "p95 lag, first 10 jobs",
            "steady polls/job",
            "steady mean lag",
        ]
    )
    raw: dict[str, Any] = {}
    worst = 0
    for model in PRIOR_MODELS:
        prior = models.MODELS[model].typical_seconds
        for ratio, label in ((0.25, "4x faster"), (2.0, "2x slower")):
            r = prior_wrong(PollPolicy(), ratio, prior=prior, sigma=SIGMA, runs=runs, jobs=30)
            raw[f"{model} {ratio:g}"] = r
            worst = max(worst, int(r["jobs_to_settle"]))
            table.rows.append(
                [
                    f"{model} ({prior:g} s)",
                    f"{label} (median {prior * ratio:g} s)",
                    str(r["jobs_to_settle"]),
                    fmt(r["polls_meanwhile"]),
                    fmt(r["p95_lag_meanwhile"]) + " s",
                    fmt(r["polls_first_ten"]),
                    fmt(r["p95_lag_first_ten"]) + " s",
                    fmt(r["steady_polls"]),
                    fmt(r["steady_lag"]) + " s",
                ]
            )
    goal = Goal(
        "at most 10 jobs per model until the lag is back within 10 % of steady state",
        worst <= 10,
        f"at most {worst} jobs",
    )
    method = (
        "The bot's `PollSchedule` with a model's prior from the model table (`typical_seconds` "
        "in `bot/models.py`) while the true generation times are 4x faster or 2x slower "
        f"(log-normal, sigma {SIGMA}): {runs} independent streams of 30 jobs each, polled and "
        "learned as the engine does (no I/O, real seconds). Jobs until settled: the first job "
        "index from which the mean lag across the streams (averaged over that job and the next "
        "four) stays within 10 % of the steady state's (the same schedule with a right prior, after 50 jobs). Meanwhile: the jobs "
        "before that index. For comparison, the schedule before issue 11 (it learned the time "
        "a task was *noticed* finished) replayed the same way with cogvideox-3 4x faster had "
        "a mean lag of 21.6 s at job 1, 14.4 s at job 11 and 8.7 s at job 21 against a steady "
        "~2.3 s: it moved earlier only by creeping."
    )
    return Figure(
        "prior", "The prior is wrong: learning both ways", method, [table], [goal], raw=raw
    )
