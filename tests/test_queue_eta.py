"""Queue ETA (issue 12): a queued job's status says when it should start, as a Discord
relative timestamp, from its place, the free provider slots and the learned times."""

from __future__ import annotations

import re
from pathlib import Path

from bot.schedule import queue_start_delay
from tests.harness import Harness, harness
from tests.test_cancel import status_of
from tests.test_e2e import private_text, slash
from tests.util import eventually

ETA = re.compile(r"queued, position (\d+), expected to start <t:(\d+):R>\.")


def test_first_in_line_starts_at_once_when_a_slot_is_free() -> None:
    assert queue_start_delay(1, [30.0], slots=2, per_job=90.0) == 0.0


def test_first_in_line_waits_for_the_soonest_busy_slot() -> None:
    assert queue_start_delay(1, [50.0, 20.0], slots=2, per_job=90.0) == 20.0


def test_each_job_ahead_holds_a_slot_for_the_learned_time() -> None:
    # Slots free at 20 and 50; jobs 1 and 2 take them; job 3 waits for job 1 (20 + 90).
    assert queue_start_delay(3, [50.0, 20.0], slots=2, per_job=90.0) == 110.0
    assert queue_start_delay(4, [], slots=1, per_job=60.0) == 180.0


def test_overdue_jobs_count_as_finishing_now() -> None:
    assert queue_start_delay(2, [-30.0], slots=1, per_job=60.0) == 60.0


def eta_of(h: Harness, job_id: int) -> tuple[int, int] | None:
    """(position, start time) in a job's status message, once it shows one."""
    message = next((m for m in h.bot_messages() if m.nonce == f"status-{job_id}"), None)
    found = ETA.search(message.content) if message is not None else None
    return (int(found[1]), int(found[2])) if found else None


async def test_queued_status_carries_a_start_time_kept_current(tmp_path: Path) -> None:
    async with harness(tmp_path, zai_max_concurrent_tasks=1, zai={"hold_all": True}) as h:
        await slash(h, "text", prompt="first, at the provider")
        await eventually(lambda: len(h.zai.submits) == 1, what="the first submit")
        await slash(h, "text", prompt="second, queued")
        await slash(h, "text", prompt="third, queued")
        await status_of(h, 3)
        second = await eventually(lambda: eta_of(h, 2), what="#2's start time")
        third = await eventually(lambda: eta_of(h, 3), what="#3's start time")
        assert second[0] == 1 and third[0] == 2
        assert third[1] - second[1] >= 60  # one learned generation time later (90 s prior)
        assert "was cancelled" in await private_text(await slash(h, "cancel", job=2))
        moved = await eventually(
            lambda: (eta := eta_of(h, 3)) and eta[0] == 1 and eta, what="#3 moving up"
        )
        assert moved[1] < third[1]
        assert len(h.zai.submits) == 1
