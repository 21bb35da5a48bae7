"""Unit tests of the pure parts of the cogs: texts, reasons, views (no Discord connection)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.i18n import render
from cogs.admin import _model_lines, _user_lines, approval_view
from cogs.buttons import result_view
from cogs.common import STATE_ICONS, duration_text, jump_url, safe_prompt, short
from cogs.delivery import _channel_reason, _dm_reason, _files, status_text
from storage.rows import Job
from storage.states import ENDED_BADLY, JobState


def job(**overrides: Any) -> Job:
    """A job row with plain defaults."""
    values: dict[str, Any] = {f.name: None for f in fields(Job)}
    values |= {
        "id": 7,
        "guild_id": 1,
        "channel_id": 2,
        "user_id": 3,
        "model": "cogvideox-3",
        "mode": "text",
        "prompt": "a **bold** cat @everyone",
        "options": {},
        "origin": "slash",
        "cost": 1,
        "credit_day": "2026-01-01",
        "request_id": "r",
        "state": JobState.QUEUED,
        "created_at": 1000.0,
        "updated_at": 1000.0,
        "attempts": 0,
        "polls": 0,
        "refunded": 0,
    }
    return Job(**(values | overrides))


def test_every_state_has_an_icon() -> None:
    assert set(STATE_ICONS) == set(JobState)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"state": JobState.PENDING_APPROVAL}, "⏳ waiting for a moderator's approval."),
        ({"state": JobState.QUEUED}, "🕒 queued, position 4."),
        ({"state": JobState.PROCESSING, "submitted_at": 2000.0}, "generating — started <t:2000:R>"),
        ({"state": JobState.SUCCEEDED}, "📦 finished, uploading…"),
        (
            {"state": JobState.DELIVERED, "result_message_id": 9},
            f"✅ done: {jump_url(1, 2, 9)}",
        ),
        ({"state": JobState.DELIVERED}, "✅ done (sent by direct message)."),
        ({"state": JobState.FAILED, "error_message": "boom"}, "❌ boom"),
        ({"state": JobState.UNDELIVERABLE}, "⚠️ undeliverable"),
    ],
)
def test_status_text_per_state(overrides: dict[str, Any], expected: str) -> None:
    text = status_text("en-US", job(**overrides), position=4, expected=60.0)
    assert text.startswith("<@3>'s video #7 (cogvideox-3): ") and expected in text
    assert (
        "\\*\\*bold\\*\\*" in text and "@\u200beveryone" in text
    )  # the prompt cannot format or ping


def test_status_text_of_a_job_at_the_provider_gives_the_expected_end() -> None:
    text = status_text(
        "en-US", job(state=JobState.SUBMITTING, submitted_at=2000.0), position=None, expected=90.0
    )
    assert "expected <t:2090:R>" in text


class _Response:
    status = 403
    reason = "Forbidden"


@pytest.mark.parametrize(
    ("exc", "channel", "dm"),
    [
        (discord.Forbidden(_Response(), "no"), "may not post", "cannot be sent direct messages"),
        (ConnectionError(), "could not be reached", "could not be sent either"),
    ],
)
def test_delivery_reasons_name_the_cause(exc: BaseException, channel: str, dm: str) -> None:
    assert channel in render("en-US", _channel_reason(exc))
    assert dm in render("en-US", _dm_reason(exc))


def test_files_are_fresh_for_every_attempt(tmp_path: Path) -> None:
    video, cover = tmp_path / "v.mp4", tmp_path / "c.jpg"
    video.write_bytes(b"v")
    cover.write_bytes(b"c")
    first, second = _files(job(), video, cover), _files(job(), video, cover)
    assert [f.filename for f in first] == ["video-7.mp4", "cover.jpg"]
    assert all(a is not b for a, b in zip(first, second, strict=True))
    assert _files(job(), None, None) == []


def test_admin_stats_lines() -> None:
    rows = [{"model": "m", "jobs": 3, "credits": None, "failures": 1, "refused": 0}]
    line = "m: 3 jobs, 0 credits, 1 failed, 0 refused by the content filter"
    assert _model_lines("en-US", rows) == line
    assert _model_lines("en-US", []) == "no jobs"
    assert _model_lines("ja", rows).startswith("m：ジョブ 3 件")
    users = [{"user_id": 5, "jobs": 2, "credits": 4, "refused": None}]
    assert _user_lines("en-US", users) == "<@5>: 2 jobs, 4 credits, 0 content-filter refusals"
    assert _user_lines("zh-CN", []) == "无人"


async def test_button_custom_ids_fit_discord_limits() -> None:
    ids = [item.custom_id for item in result_view(job(id=10**18)).children]  # type: ignore[attr-defined]
    ids += [item.custom_id for item in approval_view(10**18).children]  # type: ignore[attr-defined]
    assert len(ids) == 6 and all(len(i) <= 100 for i in ids)


def test_text_helpers() -> None:
    assert short("abcdef", 4) == "abc…" and short(None, 3) == ""
    assert duration_text("en-US", 59) == "59 s"
    assert duration_text("en-US", 125) == "2 min 05 s"
    assert duration_text("ja", 125) == "2 分 05 秒"
    assert safe_prompt("en-US", None) == "*(no prompt)*"
    assert len(safe_prompt("en-US", "x" * 1000, 300)) == 300


def test_ended_badly_states_are_final_and_not_delivered() -> None:
    assert JobState.DELIVERED not in ENDED_BADLY and JobState.FAILED in ENDED_BADLY
