"""The job row, declared once: the dataclasses below give the columns and the SQL its lists."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from storage.states import JobState


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """What the engine asks the store to accept: the columns INSERT_JOB fills from it."""

    guild_id: int
    channel_id: int
    user_id: int
    model: str
    mode: str
    prompt: str | None
    options: dict[str, Any]
    origin: str
    cost: int
    request_id: str
    parent_job_id: int | None = None
    state: JobState = JobState.QUEUED
    upload_limit: int | None = None  # bytes the requesting channel accepts, when known
    first_frame_only: bool = False  # an animated picture was reduced to its first frame
    provider: str = "zai"  # the API format that holds the task (bot.providers.ProviderName)
    private: bool = False  # the result goes to the requester's direct messages
    # The process working on the job and until when its claim holds (storage/leases.py).
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True, kw_only=True)
class Job(NewJob):
    """One row of `jobs`: what was asked, and what became of it."""

    id: int
    credit_day: str
    task_id: str | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    delivered_at: float | None
    attempts: int
    polls: int
    next_attempt_at: float | None
    next_poll_at: float | None
    video_url: str | None
    cover_url: str | None
    error_code: str | None
    error_message: str | None
    refunded: int
    status_message_id: int | None
    result_message_id: int | None
    approval_message_id: int | None
    decided_by: int | None
    last_running_at: float | None = None  # the last poll that found the task still running

    @classmethod
    def from_row(cls, row: Any) -> Job:
        """Build from a row selected with JOB_COLUMNS."""
        values = dict(row)
        values["options"] = json.loads(values["options"])
        values["state"] = JobState(values["state"])
        values["first_frame_only"] = bool(values["first_frame_only"])
        values["private"] = bool(values["private"])
        return cls(**values)


@dataclass(frozen=True)
class StoredImage:
    """A normalised input image kept until the job no longer needs it."""

    mime: str
    width: int
    height: int
    data: bytes


# Columns INSERT_JOB fills beyond NewJob's fields (the day the credit was taken, the times).
INSERT_EXTRA = ("credit_day", "created_at", "updated_at", "next_attempt_at")


def job_columns() -> list[str]:
    """The columns of `jobs`, in Job's order."""
    return [f.name for f in fields(Job)]


def insert_columns() -> list[str]:
    """The columns INSERT_JOB sets."""
    return [f.name for f in fields(NewJob)] + list(INSERT_EXTRA)


def insert_params(new: NewJob, day: str, now: float) -> dict[str, Any]:
    """Named parameters of INSERT_JOB."""
    values = asdict(new)
    values["options"] = json.dumps(new.options, sort_keys=True)
    values["state"] = JobState(new.state).value
    values["origin"] = str(new.origin)
    extra = dict.fromkeys(INSERT_EXTRA, now)
    return values | extra | {"credit_day": day}
