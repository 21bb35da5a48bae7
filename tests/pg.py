"""The PostgreSQL half of the suite: a fresh schema per test on TEST_DATABASE_URL's server.

Without TEST_DATABASE_URL the PostgreSQL variants are skipped, counted, and the terminal
summary says so in one line (`make test` then ran the SQLite half only).
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from storage.pg import redact_url, to_postgres

TEST_URL = os.environ.get("TEST_DATABASE_URL", "")
SKIP_REASON = "PostgreSQL half SKIPPED: TEST_DATABASE_URL is not set"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgresql),
]
_counts = {"skipped": 0, "ran": 0}


def with_search_path(url: str, schema: str) -> str:
    """The URL with `options=-c search_path=<schema>` (every connection of the pool gets it)."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query) + [("options", f"-csearch_path={schema}")]
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test server, its URL yielded, dropped afterwards."""
    if not TEST_URL:
        _counts["skipped"] += 1
        pytest.skip(SKIP_REASON)
    _counts["ran"] += 1
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(TEST_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")  # a generated name, not input
    try:
        yield with_search_path(TEST_URL, schema)
    finally:
        with psycopg.connect(TEST_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_summary() -> str:
    """The summary line."""
    if not TEST_URL:
        return f"{SKIP_REASON} ({_counts['skipped']} tests)"
    return f"PostgreSQL half ran on {redact_url(TEST_URL)} ({_counts['ran']} tests)"


def pg_query(url: str, query: str, params: Sequence[Any] = ()) -> list[Any]:
    """Rows of one SQLite-dialect statement run on PostgreSQL (tests read the database)."""
    from storage.pg import _row_factory

    with psycopg.connect(url, autocommit=True, row_factory=_row_factory) as conn:
        return conn.execute(to_postgres(query), params).fetchall()  # type: ignore[arg-type]
