"""Storage's own refusals: what the database would not admit, with the figures (no user text)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalKind(StrEnum):
    """Why the store did not admit a job."""

    IN_FLIGHT = "in_flight"  # the member has their maximum of unfinished jobs
    CREDITS = "credits"  # the member's credits for today do not cover the cost
    GUILD_CAP = "guild_cap"  # the server's daily cap does not cover the cost
    PICTURES_GONE = "pictures_gone"  # a Re-roll's parent no longer has its pictures (retention)


@dataclass
class Refused(Exception):
    """A job was not admitted; the engine turns this into the member's message."""

    kind: RefusalKind
    count: int = 0  # in-flight jobs the member has
    limit: int = 0  # the in-flight limit
    cost: int = 0  # credits the job costs

    def __str__(self) -> str:
        return (
            f"refused: {self.kind.value} (count={self.count}, limit={self.limit}, cost={self.cost})"
        )
