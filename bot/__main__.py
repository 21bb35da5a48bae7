"""`python -m bot` runs the bot; `python -m bot doctor` checks the set-up."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError

from bot.settings import Settings, describe_errors


def main(argv: list[str]) -> int:
    """Dispatch on the sub-command; settings errors are one line each, never a traceback."""
    if argv[:1] == ["doctor"]:
        from bot.doctor import doctor

        return asyncio.run(doctor())
    if argv:
        print("usage: python -m bot [doctor]", file=sys.stderr)
        return 2
    try:
        settings = Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        for line in describe_errors(exc):
            print(f"error: {line}", file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        return 1
    from bot.runner import run
    from storage.db import DatabaseError

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except DatabaseError as exc:  # another process on the file, a newer schema: say so plainly
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
