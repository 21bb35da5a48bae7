"""`python -m bot` runs the bot; `doctor` checks the set-up; `backup PATH` copies the database;
`prune` runs the retention sweep now; `health` asks the running bot's /healthz (the container
health check); `move-to-postgres SQLITE_PATH` copies a SQLite database into DATABASE_URL's empty
PostgreSQL database."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from bot.settings import Settings, describe_errors

USAGE = (
    "usage: python -m bot [doctor | backup PATH | prune | health | move-to-postgres SQLITE_PATH]"
)
TAKES_PATH = ("backup", "move-to-postgres")


def main(argv: list[str]) -> int:
    """Dispatch on the sub-command; settings errors are one line each, never a traceback."""
    if argv[:1] == ["doctor"]:
        from bot.doctor import doctor

        return asyncio.run(doctor())
    if argv not in ([], ["health"], ["prune"]) and not (len(argv) == 2 and argv[0] in TAKES_PATH):
        print(USAGE, file=sys.stderr)
        return 2
    settings = load_settings()
    if settings is None:
        return 1
    if argv[:1] == ["backup"]:
        from bot.backup import run_backup

        return run_backup(settings, argv[1])
    if argv[:1] == ["move-to-postgres"]:
        from bot.move import run_move

        return run_move(settings, argv[1])
    if argv == ["prune"]:
        from bot.prune import run_prune

        return asyncio.run(run_prune(settings))
    if argv == ["health"]:
        from bot.metrics import check_health

        return check_health(settings)
    from bot.errors import ShardsRefused
    from bot.runner import run
    from storage.db import DatabaseError

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except (DatabaseError, ShardsRefused) as exc:  # the file is taken, a newer schema, shards
        # Discord will not take: one plain line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def load_settings() -> Settings | None:
    """The settings, or None after one line per missing or invalid one."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"error: {line}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
