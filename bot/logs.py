"""One logging set-up for the process, with secrets redacted from every line."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

IDS = ("job_id", "guild_id", "user_id")
_context: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "log_ids", default=None
)
_JOB_TASK = re.compile(r"-job-(\d+)$")  # the engine names each job's tasks "...-job-<id>"


class RedactSecrets(logging.Filter):
    """Replace any known secret value in a formatted log line (belt and braces)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message now and scrub it, including any exception text."""
        if not self._secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self._secrets:
            message = message.replace(secret, "[redacted]")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "[redacted]")
        record.msg, record.args = message, None
        return True


@contextlib.contextmanager
def log_ids(**ids: int | None) -> Iterator[None]:
    """Add job, guild or user ids to every line logged inside (this task and tasks it starts)."""
    token = _context.set(
        {**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    )
    try:
        yield
    finally:
        _context.reset(token)


def set_log_ids(**ids: int | None) -> None:
    """Like `log_ids`, for the rest of the current task (e.g. one interaction's handler)."""
    _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}})


def current_ids(record: logging.LogRecord) -> dict[str, int]:
    """Ids known for a record: `extra=`, then the context, then the job of the current task."""
    ids = dict(_context.get() or {})
    with contextlib.suppress(RuntimeError):  # no running loop: a thread or start-up
        task = asyncio.current_task()
        match = _JOB_TASK.search(task.get_name()) if task is not None else None
        if match and "job_id" not in ids:
            ids["job_id"] = int(match.group(1))
    ids.update({k: getattr(record, k) for k in IDS if getattr(record, k, None) is not None})
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids where known, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the (already redacted) record."""
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(current_ids(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(level: str, secrets: Iterable[str] = (), fmt: str = "text") -> None:
    """Log to stderr (text with timestamps, or JSON lines); every handler scrubs the secrets."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines print every URL
    logging.getLogger("discord").setLevel(
        logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG
    )
