"""The job states: one enum and its named sets, used by Python and (as IN lists) by the SQL."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class JobState(StrEnum):
    """Where a job is in its life; the value is what the `jobs.state` column holds."""

    PENDING_APPROVAL = "pending_approval"
    QUEUED = "queued"
    SUBMITTING = "submitting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    DELIVERED = "delivered"
    FAILED = "failed"
    REFUSED = "refused"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    TIMED_OUT = "timed_out"  # the provider did not finish within the task's deadline
    CANCELLED = "cancelled"  # the member cancelled it before it reached the provider
    EXPIRED = "expired"  # no moderator decided on it within the server's approval time


S = JobState
# Not final yet: holds the member's in-flight slot and its credit reservation.
UNFINISHED = (S.PENDING_APPROVAL, S.QUEUED, S.SUBMITTING, S.PROCESSING, S.SUCCEEDED)
# Holding one of the operator's provider slots.
AT_PROVIDER = (S.SUBMITTING, S.PROCESSING)
# Held by one process at a time (a lease): sent or being sent, or finished and being delivered.
LEASED = (S.SUBMITTING, S.PROCESSING, S.SUCCEEDED)
# Served by the provider, being delivered or done: counts for fair queue order.
SERVED = (*AT_PROVIDER, S.SUCCEEDED)
# The provider finished it (its generation time is known).
GENERATED = (S.SUCCEEDED, S.DELIVERED, S.UNDELIVERABLE)
# Ended badly: refunded, with a reason for the member.
ENDED_BADLY = (
    S.FAILED,
    S.REFUSED,
    S.REJECTED,
    S.UNDELIVERABLE,
    S.TIMED_OUT,
    S.CANCELLED,
    S.EXPIRED,
)
# Not at the provider yet: the member may still cancel it (refunded).
CANCELLABLE = (S.PENDING_APPROVAL, S.QUEUED)
FINAL = (S.DELIVERED, *ENDED_BADLY)


def sql_literal(state: JobState) -> str:
    """A state as an SQL string literal, e.g. `'queued'` (enum values only, so nothing to escape)."""
    return "'" + JobState(state).value + "'"


def sql_in(states: Iterable[JobState]) -> str:
    """An SQL IN list of state literals, e.g. `('queued', 'processing')`."""
    return "(" + ", ".join(sql_literal(s) for s in states) + ")"
