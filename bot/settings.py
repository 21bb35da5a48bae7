"""All settings of the bot, read once from the environment or `.env`."""

from __future__ import annotations

import urllib.parse
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from bot.providers.routing import Fallback, ProviderSettings
from storage.retention import RetentionPolicy

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class LogLevel(StrEnum):
    """The levels LOG_LEVEL accepts (any case)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class Settings(ProviderSettings):
    """Operator settings; secrets are `SecretStr` so they never print.

    The provider settings (GATEWAY_*, GEEKAI_*, ZAI_MODELS, PROVIDER_FALLBACK) come from
    `ProviderSettings`: a provider is on when its key is set.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    discord_token: SecretStr = Field(description="Discord bot token")
    zai_api_key: SecretStr = Field(description="Z.AI API key")
    zai_base_url: str = "https://api.z.ai/api/paas/v4"
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    # sqlite:///path (one process, the default) or postgresql://user:password@host/db (several
    # processes); a secret: it may hold a password.
    database_url: SecretStr = SecretStr("sqlite:///data/bot.db")
    data_dir: Path = Path("data")  # PostgreSQL: where the scratch folder goes (SQLite: beside it)
    dev_guild_id: int | None = None
    quota_daily_credits: int = Field(default=10, ge=0)
    max_inflight_per_user: int = Field(default=2, ge=1)
    zai_max_concurrent_tasks: int = Field(default=5, ge=1)
    trusted_media_hosts: str = ""
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    health_scheduler_seconds: float = Field(default=180.0, gt=0)
    task_deadline_minutes: float = Field(default=30.0, gt=0)  # least wait for a provider task
    retention_days: float = Field(default=7.0, ge=0)
    # Not below 7: /videoadmin stats reports 7 days from the job rows.
    history_days: float | None = Field(default=None, ge=7)
    # Unset: one unsharded gateway connection (as ever). Set: discord.py's sharded client.
    shard_count: int | None = Field(default=None, ge=1)
    # NoDecode: a comma list ("0,1"), not JSON; checked against SHARD_COUNT (declared before).
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    @field_validator("zai_base_url", "discord_api_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("discord_gateway_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sqlite:///", *POSTGRES_SCHEMES)):
            raise ValueError(
                "must look like sqlite:///path/to/bot.db or postgresql://user@host:5432/db"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        return tuple(_shard_id(part) for part in value.split(","))

    @field_validator("shard_ids")
    @classmethod
    def _shards_fit(
        cls, value: tuple[int, ...] | None, info: ValidationInfo
    ) -> tuple[int, ...] | None:
        if value is None:
            return None
        if "shard_count" not in info.data:
            return value  # SHARD_COUNT itself is invalid and reported on its own
        check_shard_ids(value, info.data["shard_count"])
        return value

    @field_validator("dev_guild_id", "metrics_port", "history_days", "shard_count", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def fallback(self) -> bool:
        """PROVIDER_FALLBACK=on."""
        return self.provider_fallback is Fallback.ON

    @property
    def shards(self) -> tuple[int, ...] | None:
        """The shards this process serves (SHARD_IDS, else all of SHARD_COUNT); None: unsharded."""
        if self.shard_count is None:
            return None
        return self.shard_ids or tuple(range(self.shard_count))

    def secrets(self) -> list[str]:
        """Every configured secret, for the log filter."""
        keys = [self.discord_token, self.zai_api_key, self.gateway_api_key, self.geekai_api_key]
        password = urllib.parse.urlsplit(self.database_url.get_secret_value()).password
        return [key.get_secret_value() for key in keys if key is not None] + (
            [password, urllib.parse.unquote(password)] if password else []
        )

    @property
    def postgres(self) -> bool:
        """DATABASE_URL names a PostgreSQL database."""
        return self.database_url.get_secret_value().startswith(POSTGRES_SCHEMES)

    @property
    def database(self) -> Path | str:
        """What Database.open takes: the SQLite file, or the PostgreSQL URL."""
        return self.database_url.get_secret_value() if self.postgres else self.database_path

    @property
    def database_label(self) -> str:
        """The database for messages and logs: the file, or the URL without its password."""
        if not self.postgres:
            return str(self.database_path)
        url = urllib.parse.urlsplit(self.database_url.get_secret_value())
        if url.password is None:
            return url.geturl()
        return url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@", 1)).geturl()

    @property
    def database_path(self) -> Path:
        """The SQLite file named by DATABASE_URL."""
        return Path(self.database_url.get_secret_value().removeprefix("sqlite:///"))

    @property
    def scratch_parent(self) -> Path:
        """Where the scratch folder goes: beside the SQLite file, or DATA_DIR on PostgreSQL."""
        return self.data_dir if self.postgres else self.database_path.parent

    @property
    def retention(self) -> RetentionPolicy:
        """What the retention sweep keeps."""
        return RetentionPolicy(self.retention_days, self.history_days)

    @property
    def trusted_hosts(self) -> frozenset[str]:
        """Hosts exempt from the private-address guard on downloads."""
        return frozenset(
            h.strip().lower() for h in self.trusted_media_hosts.split(",") if h.strip()
        )


def _shard_id(text: str) -> int:
    """One entry of SHARD_IDS."""
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(
            f"{text.strip()!r} is not a shard number; write the ids as a comma list, e.g. 0,1"
        ) from None


def check_shard_ids(ids: tuple[int, ...], count: int | None) -> None:
    """SHARD_IDS needs SHARD_COUNT, ids in 0 .. count-1, each once."""
    if count is None:
        raise ValueError("needs SHARD_COUNT (the total number of shards of the bot) set as well")
    outside = sorted({i for i in ids if not 0 <= i < count})
    if outside:
        raise ValueError(
            f"{_shards(outside)} outside 0..{count - 1} (SHARD_COUNT={count}); "
            "use ids from 0 to SHARD_COUNT - 1"
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{_shards(repeated)} listed twice; list each shard once")


def _shards(ids: list[int]) -> str:
    """Name the shards: 'shard 2 is' or 'shards 2, 3 are'."""
    listed = ", ".join(map(str, ids))
    return f"shard {listed} is" if len(ids) == 1 else f"shards {listed} are"


def describe_errors(error: ValidationError) -> list[str]:
    """One line per missing or invalid setting, named as its environment variable."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        if item["type"] == "missing":
            lines.append(f"{name} is not set (put it in the environment or in .env)")
        else:
            lines.append(f"{name} is invalid: {item['msg']}")
    return lines
