"""Every SQL statement of the bot, as named constants; schema changes as numbered migrations."""

from __future__ import annotations

from storage.rows import insert_columns, job_columns
from storage.states import (
    AT_PROVIDER,
    CANCELLABLE,
    FINAL,
    GENERATED,
    LEASED,
    SERVED,
    UNFINISHED,
    sql_in,
    sql_literal,
)
from storage.states import JobState as S

FINAL_IN = sql_in(FINAL)  # (here: migration 6 uses it)
LEASED_IN = sql_in(LEASED)  # (here: migration 10 uses it)

# Migrations: index + 1 is the schema version stored in PRAGMA user_version (SQLite) or the
# schema_version table (PostgreSQL, where storage/pg.py translates the types: see PG_TYPES).
MIGRATIONS: list[str] = [
    # 1: jobs, their inputs, credits and per-guild settings.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        mode TEXT NOT NULL,
        prompt TEXT,
        options TEXT NOT NULL,
        origin TEXT NOT NULL,
        parent_job_id INTEGER REFERENCES jobs(id),
        cost INTEGER NOT NULL,
        credit_day TEXT NOT NULL,
        request_id TEXT NOT NULL UNIQUE,
        task_id TEXT,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        submitted_at REAL,
        finished_at REAL,
        delivered_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        polls INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        next_poll_at REAL,
        video_url TEXT,
        cover_url TEXT,
        error_code TEXT,
        error_message TEXT,
        refunded INTEGER NOT NULL DEFAULT 0,
        upload_limit INTEGER,
        status_message_id INTEGER,
        result_message_id INTEGER
    );
    CREATE INDEX jobs_by_state ON jobs (state, next_poll_at);
    CREATE INDEX jobs_by_user ON jobs (user_id, state);
    CREATE INDEX jobs_by_guild_day ON jobs (guild_id, credit_day);
    CREATE TABLE job_inputs (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        idx INTEGER NOT NULL,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (job_id, idx)
    );
    CREATE TABLE credit_usage (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        granted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (guild_id, user_id, day)
    );
    CREATE TABLE credit_ledger (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        delta INTEGER NOT NULL,
        reason TEXT NOT NULL,
        job_id INTEGER REFERENCES jobs(id),
        actor_id INTEGER,
        created_at REAL NOT NULL
    );
    CREATE INDEX ledger_by_user ON credit_ledger (guild_id, user_id, day);
    CREATE TABLE guild_settings (
        guild_id INTEGER PRIMARY KEY,
        daily_credits INTEGER,
        daily_cap INTEGER
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE user_quotas (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        daily_credits INTEGER NOT NULL,
        PRIMARY KEY (guild_id, user_id)
    );
    """,
    # 2: moderation — costs, caps, bans, blocklist, channel and model rules, approval, audit.
    """
    ALTER TABLE guild_settings ADD COLUMN approval_channel_id INTEGER;
    ALTER TABLE guild_settings ADD COLUMN alerts_channel_id INTEGER;
    ALTER TABLE jobs ADD COLUMN approval_message_id INTEGER;
    ALTER TABLE jobs ADD COLUMN decided_by INTEGER;
    CREATE TABLE guild_usage (
        guild_id INTEGER NOT NULL,
        day TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (guild_id, day)
    );
    CREATE TABLE model_costs (
        guild_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        option TEXT NOT NULL DEFAULT '',
        value TEXT NOT NULL DEFAULT '',
        cost INTEGER NOT NULL,
        PRIMARY KEY (guild_id, model, option, value)
    );
    CREATE TABLE bans (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        actor_id INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (guild_id, user_id)
    );
    CREATE TABLE blocklist (
        guild_id INTEGER NOT NULL,
        pattern TEXT NOT NULL,
        is_regex INTEGER NOT NULL,
        actor_id INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (guild_id, pattern)
    );
    CREATE TABLE channel_rules (
        guild_id INTEGER NOT NULL,
        channel_id INTEGER NOT NULL,
        allowed INTEGER NOT NULL,
        PRIMARY KEY (guild_id, channel_id)
    );
    CREATE TABLE model_rules (
        guild_id INTEGER NOT NULL,
        model TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        PRIMARY KEY (guild_id, model)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        actor_id INTEGER,
        action TEXT NOT NULL,
        target_id INTEGER,
        detail TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX audit_by_guild ON audit_log (guild_id, id);
    """,
    # 3: when a poll last found the task still running (the poll schedule learns intervals).
    """
    ALTER TABLE jobs ADD COLUMN last_running_at REAL;
    """,
    # 4: speech-recognition hotwords per server (spoken prompts).
    """
    CREATE TABLE hotwords (
        guild_id INTEGER NOT NULL,
        word TEXT NOT NULL,
        actor_id INTEGER,
        created_at REAL NOT NULL,
        PRIMARY KEY (guild_id, word)
    );
    """,
    # 5: whether an animated picture was used by its first frame (the status says so); how long
    # a request may wait for a moderator's decision (NULL: the default, 24 hours).
    """
    ALTER TABLE jobs ADD COLUMN first_frame_only INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE guild_settings ADD COLUMN approval_hours INTEGER;
    CREATE INDEX jobs_by_guild_state ON jobs (guild_id, state);
    """,
    # 6: input pictures stored once per content (`media`, by SHA-256), linked to the jobs that
    # use them (a Re-roll links the same rows); indexes for retention's deletes (the foreign
    # key checks of a deleted job or picture would otherwise scan the child tables). The blob
    # is the last column: columns after it would be read through its overflow pages.
    f"""
    CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        created_at REAL NOT NULL,
        data BLOB NOT NULL
    );
    INSERT OR IGNORE INTO media (sha256, mime, width, height, created_at, data)
        SELECT sha256_hex(i.data), i.mime, i.width, i.height, j.created_at, i.data
        FROM job_inputs i JOIN jobs j ON j.id = i.job_id ORDER BY i.job_id, i.idx;
    CREATE TABLE job_media (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL REFERENCES media(sha256),
        PRIMARY KEY (job_id, position)
    );
    INSERT INTO job_media (job_id, position, sha256)
        SELECT job_id, idx, sha256_hex(data) FROM job_inputs;
    DROP TABLE job_inputs;
    ALTER TABLE job_media RENAME TO job_inputs;
    CREATE INDEX job_inputs_by_media ON job_inputs (sha256);
    CREATE INDEX ledger_by_job ON credit_ledger (job_id);
    CREATE INDEX jobs_by_parent ON jobs (parent_job_id);
    CREATE INDEX jobs_ended ON jobs (updated_at) WHERE state IN {FINAL_IN};
    """,  # noqa: S608 (enum values)
    # 7: the provider that holds (or will hold) each job's task (issue 13); older jobs are Z.AI's.
    """
    ALTER TABLE jobs ADD COLUMN provider TEXT NOT NULL DEFAULT 'zai';
    """,
    # 8: a private result goes to the requester's direct messages, not the channel (issue 12).
    """
    ALTER TABLE jobs ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: bot processes sharing a PostgreSQL database register here (issue 16): which shards
    # each serves and when it was last alive. (SQLite has one process, held by a file lock.)
    """
    CREATE TABLE processes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        shard_ids TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    """,
    # 10: leases: the process working on a job and until when (several processes share the
    # jobs; a dead one's are taken over when its leases run out). The partial index holds the
    # leased jobs only: renewals find a process's own, the takeover sweep the expired ones.
    f"""
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    CREATE INDEX jobs_leased ON jobs (lease_owner, lease_until) WHERE state IN {LEASED_IN};
    """,  # noqa: S608 (enum values)
    # 11: members' own defaults per server (issue 12): one row per name (a mode's model, an
    # option, `private`), the value as JSON so a bool, a number and a text come back as such.
    """
    CREATE TABLE member_defaults (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (guild_id, user_id, name)
    );
    """,
    # 12: each registered process's SHARD_COUNT (NULL: unsharded), so a process starting with
    # another count, or with shards a live process already runs, is refused (issue 16).
    """
    ALTER TABLE processes ADD COLUMN shard_count INTEGER;
    """,
]

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL survives kill -9; only power loss can drop a commit
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


# State literals and IN lists for the statements below, made from storage/states.py.
PENDING_APPROVAL = sql_literal(S.PENDING_APPROVAL)
QUEUED = sql_literal(S.QUEUED)
SUBMITTING = sql_literal(S.SUBMITTING)
PROCESSING = sql_literal(S.PROCESSING)
SUCCEEDED = sql_literal(S.SUCCEEDED)
DELIVERED = sql_literal(S.DELIVERED)
REFUSED = sql_literal(S.REFUSED)
UNFINISHED_IN = sql_in(UNFINISHED)
AT_PROVIDER_IN = sql_in(AT_PROVIDER)
CANCELLABLE_IN = sql_in(CANCELLABLE)
SERVED_IN = sql_in(SERVED)
GENERATED_IN = sql_in(GENERATED)
FAILURES_IN = sql_in((S.FAILED, S.UNDELIVERABLE, S.TIMED_OUT))

# --- jobs -------------------------------------------------------------------------------------

JOB_COLUMNS = ", ".join(job_columns())

INSERT_COLUMNS = ", ".join(insert_columns())
INSERT_VALUES = ", ".join(":" + c for c in insert_columns())
INSERT_JOB = f"INSERT INTO jobs ({INSERT_COLUMNS}) VALUES ({INSERT_VALUES}) RETURNING id"  # noqa: S608

# A picture already stored (same bytes) is not written again: jobs share it.
INSERT_MEDIA = """
INSERT INTO media (sha256, mime, width, height, created_at, data) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (sha256) DO NOTHING
"""

INSERT_JOB_INPUT = "INSERT INTO job_inputs (job_id, position, sha256) VALUES (?, ?, ?)"

# A Re-roll links its parent's pictures: no bytes copied.
COPY_JOB_INPUTS = """
INSERT INTO job_inputs (job_id, position, sha256)
SELECT ?, position, sha256 FROM job_inputs WHERE job_id = ? ORDER BY position
"""

SELECT_JOB_INPUTS = """
SELECT m.mime, m.width, m.height, m.data FROM job_inputs i JOIN media m USING (sha256)
WHERE i.job_id = ? ORDER BY i.position
"""

COUNT_JOB_INPUTS = "SELECT count(*) FROM job_inputs WHERE job_id = ?"

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"  # noqa: S608 (constant text)

SELECT_USER_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?
"""  # noqa: S608

SELECT_JOBS_IN_STATES = f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (%s) ORDER BY id"  # noqa: S608

SELECT_CANCELLABLE = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE guild_id = ? AND user_id = ? AND state IN {CANCELLABLE_IN}
ORDER BY id DESC LIMIT ?
"""  # noqa: S608 (enum values)

SELECT_PENDING_APPROVAL = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE guild_id = ? AND state = {PENDING_APPROVAL} ORDER BY id LIMIT ?
"""  # noqa: S608 (enum values)

# Requests nobody decided on in time: each server's approval_hours, else the default.
SELECT_EXPIRED_APPROVALS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE state = {PENDING_APPROVAL}
  AND created_at + 3600 * coalesce(
      (SELECT approval_hours FROM guild_settings g WHERE g.guild_id = jobs.guild_id),
      :default_hours) <= :now
ORDER BY id
"""  # noqa: S608 (enum values)

COUNT_USER_UNFINISHED = f"""
SELECT count(*) FROM jobs WHERE user_id = ? AND state IN {UNFINISHED_IN}
"""  # noqa: S608 (enum values)

COUNT_ACTIVE = f"SELECT count(*) FROM jobs WHERE state IN {AT_PROVIDER_IN}"  # noqa: S608

# Fair order of the queue: each user's k-th queued job ranks after everyone's (k-1)-th, counting
# the jobs a user already has at the provider, so one user's ten jobs do not block others' one.
# Jobs just finished and still being delivered count too: when several slots free at once, the
# user who was just served does not tie with one who has waited all along.
_FAIR_RANKING = f"""
WITH active AS (
    SELECT user_id, count(*) AS n FROM jobs
    WHERE state IN {SERVED_IN}
    GROUP BY user_id
),
ranked AS (
    SELECT j.id,
           ROW_NUMBER() OVER (PARTITION BY j.user_id ORDER BY j.id) + coalesce(a.n, 0) AS turn
    FROM jobs j LEFT JOIN active a ON a.user_id = j.user_id
    WHERE j.state = {QUEUED}
)
"""  # noqa: S608

SELECT_FAIR_QUEUE = f"""{_FAIR_RANKING}
SELECT {JOB_COLUMNS} FROM jobs JOIN ranked USING (id)
WHERE jobs.next_attempt_at <= ?
ORDER BY ranked.turn, jobs.id
LIMIT ?
"""  # noqa: S608

SELECT_QUEUE_POSITION = f"""{_FAIR_RANKING},
me AS (SELECT turn, id FROM ranked WHERE id = ?)
SELECT count(*) + 1 FROM ranked, me
WHERE ranked.turn < me.turn OR (ranked.turn = me.turn AND ranked.id < me.id)
"""  # noqa: S608

# The second parameter is a JSON list of the jobs whose poll is already in flight; the third
# the polling process: it polls the jobs it holds the lease of (storage/leases.py).
SELECT_DUE_POLLS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE state = {PROCESSING} AND next_poll_at <= ?
  AND id NOT IN (SELECT value FROM json_each(?)) AND lease_owner = ?
ORDER BY next_poll_at LIMIT ?
"""  # noqa: S608

# Only future times: what is due already waits for a slot or a poll in flight, whose end wakes.
# Polls of this process's jobs only (the second parameter); queued jobs are anyone's.
SELECT_NEXT_WAKE = f"""
SELECT min(t) FROM (
    SELECT min(next_poll_at) AS t FROM jobs
    WHERE state = {PROCESSING} AND next_poll_at > ? AND lease_owner = ?
    UNION ALL
    SELECT min(next_attempt_at) FROM jobs WHERE state = {QUEUED} AND next_attempt_at > ?
) AS wakes
"""  # noqa: S608

# What the poll schedule learns from: finished after last_running_at (or the submit, when no
# poll found it running), before finished_at.
SELECT_RECENT_OBSERVATIONS = f"""
SELECT model, options, coalesce(last_running_at - submitted_at, 0.0) AS lower,
       finished_at - submitted_at AS upper
FROM jobs
WHERE finished_at IS NOT NULL AND submitted_at IS NOT NULL
  AND state IN {GENERATED_IN}
ORDER BY id DESC LIMIT ?
"""  # noqa: S608

MARK_SUBMITTING = f"""
UPDATE jobs SET state = {SUBMITTING}, attempts = attempts + 1, updated_at = ?
WHERE id = ? AND state = {QUEUED}
"""  # noqa: S608 (enum values)

MARK_PROCESSING = f"""
UPDATE jobs SET state = {PROCESSING}, task_id = ?, submitted_at = ?, next_poll_at = ?, updated_at = ?
WHERE id = ? AND state = {SUBMITTING}
"""  # noqa: S608 (enum values)

MARK_REQUEUED = f"""
UPDATE jobs SET state = {QUEUED}, next_attempt_at = ?, error_code = ?, error_message = ?,
       updated_at = ?
WHERE id = ? AND state = {SUBMITTING}
"""  # noqa: S608 (enum values)

# A submit refused for balance, overload or an outage moves to the next provider (fallback).
MARK_MOVED = f"""
UPDATE jobs SET state = {QUEUED}, provider = ?, next_attempt_at = ?, error_code = ?,
       error_message = ?, updated_at = ?
WHERE id = ? AND state = {SUBMITTING}
"""  # noqa: S608 (enum values)

MARK_POLLED = f"""
UPDATE jobs SET polls = polls + 1, next_poll_at = ?, updated_at = ?
WHERE id = ? AND state = {PROCESSING}
"""  # noqa: S608 (enum values)

# A poll that found the task still running (written in batches: losing one to a crash only
# means the job is polled again).
MARK_RUNNING = f"""
UPDATE jobs SET polls = polls + 1, next_poll_at = ?, last_running_at = ?, updated_at = ?
WHERE id = ? AND state = {PROCESSING}
"""  # noqa: S608 (enum values)

# A still answers its submit with the picture: submitting → succeeded in one step, no polls.
MARK_GENERATED = f"""
UPDATE jobs SET state = {SUCCEEDED}, task_id = ?, submitted_at = ?, finished_at = ?,
       video_url = ?, updated_at = ?
WHERE id = ? AND state = {SUBMITTING}
"""  # noqa: S608 (enum values)

MARK_SUCCEEDED = f"""
UPDATE jobs SET state = {SUCCEEDED}, polls = polls + 1, finished_at = ?, video_url = ?,
       cover_url = ?, updated_at = ?
WHERE id = ? AND state = {PROCESSING}
"""  # noqa: S608 (enum values)

# A job ends badly at most once: the state guard makes the refund below happen once.
MARK_ENDED = """
UPDATE jobs SET state = ?, error_code = ?, error_message = ?, finished_at = coalesce(finished_at, ?),
       refunded = CASE WHEN ? = 1 THEN 1 ELSE refunded END, updated_at = ?
WHERE id = ? AND state IN (%s)
"""

MARK_DELIVERED = f"""
UPDATE jobs SET state = {DELIVERED}, delivered_at = ?, result_message_id = ?, updated_at = ?
WHERE id = ? AND state = {SUCCEEDED}
"""  # noqa: S608 (enum values)

SET_STATUS_MESSAGE = "UPDATE jobs SET status_message_id = ?, updated_at = ? WHERE id = ?"

# Why a delivered job reached its requester another way (a private result whose DM failed).
SET_DELIVERY_NOTE = "UPDATE jobs SET error_code = ?, error_message = ?, updated_at = ? WHERE id = ?"

# --- leases (storage/leases.py) -------------------------------------------------------------
# A lease is (lease_owner, lease_until) on a job in LEASED: the one process that may send,
# poll, time out or deliver it. Every claim is a guarded UPDATE; on PostgreSQL the rows are
# first locked with FOR UPDATE SKIP LOCKED, so claimers never wait on each other's rows.

_EXPIRED = "(lease_owner IS NULL OR lease_until < :expired_before)"

# queued -> submitting under this process's lease (after the slot count, same transaction).
CLAIM_SUBMIT = f"""
UPDATE jobs SET state = {SUBMITTING}, attempts = attempts + 1, updated_at = :now,
       lease_owner = :owner, lease_until = :until
WHERE id = :id AND state = {QUEUED}
"""  # noqa: S608 (enum values)

# The row of a queued job, locked for the claim (PostgreSQL; SQLite's BEGIN IMMEDIATE suffices).
LOCK_QUEUED = f"SELECT id FROM jobs WHERE id = :id AND state = {QUEUED} FOR UPDATE SKIP LOCKED"  # noqa: S608

RENEW_LEASES = f"""
UPDATE jobs SET lease_until = :until WHERE lease_owner = :owner AND state IN {LEASED_IN}
"""  # noqa: S608 (enum values)

# Leased jobs whose lease ran out (or was given up), not this process's own, oldest first.
SELECT_EXPIRED_LEASES = f"""
SELECT id FROM jobs
WHERE state IN {LEASED_IN} AND {_EXPIRED} AND (lease_owner IS NULL OR lease_owner <> :owner)
ORDER BY id LIMIT :limit
"""  # noqa: S608 (enum values)

# PostgreSQL: the same rows locked, skipping those another claimer holds right now.
SELECT_EXPIRED_LEASES_LOCKED = SELECT_EXPIRED_LEASES.rstrip() + " FOR UPDATE SKIP LOCKED"

TAKE_LEASE = f"""
UPDATE jobs SET lease_owner = :owner, lease_until = :until
WHERE id = :id AND state IN {LEASED_IN} AND {_EXPIRED}
"""  # noqa: S608 (enum values)

# Delivery: a finished job this process holds, or whose holder's lease ran out.
CLAIM_DELIVERY = f"""
UPDATE jobs SET lease_owner = :owner, lease_until = :until
WHERE id = :id AND state = {SUCCEEDED} AND (lease_owner = :owner OR {_EXPIRED})
"""  # noqa: S608 (enum values)

# A request waiting for approval whose moderators were never asked: one process claims the
# ask (a new request is created claimed by its process); a claim whose process died before
# posting runs out, and the next start asks. The posted request's id clears the claim.
CLAIM_APPROVAL_ASK = f"""
UPDATE jobs SET lease_owner = :owner, lease_until = :until
WHERE id = :id AND state = {PENDING_APPROVAL} AND approval_message_id IS NULL AND {_EXPIRED}
"""  # noqa: S608 (enum values)

RELEASE_LEASES = f"""
UPDATE jobs SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner = :owner AND state IN {LEASED_IN}
"""  # noqa: S608 (enum values)

# --- credits ----------------------------------------------------------------------------------

ENSURE_USAGE_ROW = """
INSERT OR IGNORE INTO credit_usage (guild_id, user_id, day) VALUES (?, ?, ?)
"""

# The reservation is one conditional statement: it cannot over-grant however many run at once.
RESERVE_CREDITS = """
UPDATE credit_usage SET used = used + :cost
WHERE guild_id = :guild_id AND user_id = :user_id AND day = :day
  AND used + :cost <= :allowance + granted
"""

ENSURE_GUILD_USAGE_ROW = "INSERT OR IGNORE INTO guild_usage (guild_id, day) VALUES (?, ?)"

# The server's daily cap, taken in the same transaction as the user's credit.
RESERVE_GUILD_CREDITS = """
UPDATE guild_usage SET used = used + :cost
WHERE guild_id = :guild_id AND day = :day
  AND (CAST(:cap AS INTEGER) IS NULL OR used + :cost <= :cap)
"""

RELEASE_GUILD_CREDITS = """
UPDATE guild_usage SET used = used - :cost WHERE guild_id = :guild_id AND day = :day
"""

RELEASE_CREDITS = """
UPDATE credit_usage SET used = used - :cost
WHERE guild_id = :guild_id AND user_id = :user_id AND day = :day
"""

GRANT_CREDITS = """
UPDATE credit_usage SET granted = granted + :amount
WHERE guild_id = :guild_id AND user_id = :user_id AND day = :day
"""

SELECT_USAGE = (
    "SELECT used, granted FROM credit_usage WHERE guild_id = ? AND user_id = ? AND day = ?"
)

INSERT_LEDGER = """
INSERT INTO credit_ledger (guild_id, user_id, day, delta, reason, job_id, actor_id, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""

SELECT_GUILD_SETTINGS = """
SELECT daily_credits, daily_cap, approval_channel_id, alerts_channel_id, approval_hours
FROM guild_settings WHERE guild_id = ?
"""

ENSURE_GUILD_SETTINGS = "INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)"

# Column names come from a fixed allow-list in storage/moderation.py, never from users.
UPDATE_GUILD_SETTING = "UPDATE guild_settings SET %s = ? WHERE guild_id = ?"

SELECT_GUILDS_WITH_ALERTS = """
SELECT guild_id, coalesce(alerts_channel_id, approval_channel_id) FROM guild_settings
WHERE coalesce(alerts_channel_id, approval_channel_id) IS NOT NULL
"""

UPSERT_USER_QUOTA = """
INSERT INTO user_quotas (guild_id, user_id, daily_credits) VALUES (?, ?, ?)
ON CONFLICT (guild_id, user_id) DO UPDATE SET daily_credits = excluded.daily_credits
"""

SUM_UNFINISHED_COST = f"""
SELECT coalesce(sum(cost), 0) FROM jobs
WHERE guild_id = ? AND user_id = ? AND credit_day = ? AND refunded = 0
  AND state IN {UNFINISHED_IN}
"""  # noqa: S608

# --- moderation -------------------------------------------------------------------------------

SELECT_COSTS = "SELECT model, option, value, cost FROM model_costs WHERE guild_id = ? ORDER BY model, option, value"

UPSERT_COST = """
INSERT INTO model_costs (guild_id, model, option, value, cost) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (guild_id, model, option, value) DO UPDATE SET cost = excluded.cost
"""

SELECT_BAN = "SELECT reason FROM bans WHERE guild_id = ? AND user_id = ?"

UPSERT_BAN = """
INSERT INTO bans (guild_id, user_id, reason, actor_id, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (guild_id, user_id) DO UPDATE SET reason = excluded.reason, actor_id = excluded.actor_id,
    created_at = excluded.created_at
"""

DELETE_BAN = "DELETE FROM bans WHERE guild_id = ? AND user_id = ?"

SELECT_BLOCKLIST = "SELECT pattern, is_regex FROM blocklist WHERE guild_id = ? ORDER BY created_at"

INSERT_BLOCK = """
INSERT INTO blocklist (guild_id, pattern, is_regex, actor_id, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (guild_id, pattern) DO UPDATE SET is_regex = excluded.is_regex,
    actor_id = excluded.actor_id, created_at = excluded.created_at
"""

DELETE_BLOCK = "DELETE FROM blocklist WHERE guild_id = ? AND pattern = ?"

SELECT_CHANNEL_RULES = "SELECT channel_id, allowed FROM channel_rules WHERE guild_id = ?"

UPSERT_CHANNEL_RULE = """
INSERT INTO channel_rules (guild_id, channel_id, allowed) VALUES (?, ?, ?)
ON CONFLICT (guild_id, channel_id) DO UPDATE SET allowed = excluded.allowed
"""

DELETE_CHANNEL_RULE = "DELETE FROM channel_rules WHERE guild_id = ? AND channel_id = ?"

SELECT_HOTWORDS = "SELECT word FROM hotwords WHERE guild_id = ? ORDER BY created_at, word"

INSERT_HOTWORD = """
INSERT OR IGNORE INTO hotwords (guild_id, word, actor_id, created_at) VALUES (?, ?, ?, ?)
"""

DELETE_HOTWORD = "DELETE FROM hotwords WHERE guild_id = ? AND word = ?"

SELECT_MODEL_RULES = "SELECT model, enabled FROM model_rules WHERE guild_id = ?"

UPSERT_MODEL_RULE = """
INSERT INTO model_rules (guild_id, model, enabled) VALUES (?, ?, ?)
ON CONFLICT (guild_id, model) DO UPDATE SET enabled = excluded.enabled
"""

INSERT_AUDIT = """
INSERT INTO audit_log (guild_id, actor_id, action, target_id, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)
"""

SELECT_AUDIT = """
SELECT actor_id, action, target_id, detail, created_at FROM audit_log
WHERE guild_id = ? ORDER BY id DESC LIMIT ?
"""

APPROVE_JOB = f"""
UPDATE jobs SET state = {QUEUED}, decided_by = ?, next_attempt_at = ?, updated_at = ?
WHERE id = ? AND state = {PENDING_APPROVAL}
"""  # noqa: S608 (enum values)

SET_APPROVAL_MESSAGE = """
UPDATE jobs SET approval_message_id = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL
WHERE id = ?
"""

SET_DECIDED_BY = "UPDATE jobs SET decided_by = ? WHERE id = ?"

STATS_BY_MODEL = f"""
SELECT model, count(*) AS jobs,
       sum(CASE WHEN refunded = 0 THEN cost ELSE 0 END) AS credits,
       sum(CASE WHEN state IN {FAILURES_IN} THEN 1 ELSE 0 END) AS failures,
       sum(CASE WHEN state = {REFUSED} THEN 1 ELSE 0 END) AS refused
FROM jobs WHERE guild_id = ? AND created_at >= ?
GROUP BY model ORDER BY jobs DESC
"""  # noqa: S608 (enum values)

STATS_TOP_USERS = f"""
SELECT user_id, count(*) AS jobs, sum(CASE WHEN refunded = 0 THEN cost ELSE 0 END) AS credits,
       sum(CASE WHEN state = {REFUSED} THEN 1 ELSE 0 END) AS refused
FROM jobs WHERE guild_id = ? AND created_at >= ?
GROUP BY user_id ORDER BY jobs DESC, credits DESC LIMIT ?
"""  # noqa: S608 (enum values)

# --- metrics (computed when Prometheus scrapes; no counters to keep in step) -----------------

METRICS_JOBS = "SELECT state, model, provider, count(*) FROM jobs GROUP BY state, model, provider"

METRICS_CREDITS_SPENT = f"""
SELECT model, coalesce(sum(cost), 0) FROM jobs WHERE state = {DELIVERED} AND refunded = 0
GROUP BY model
"""  # noqa: S608 (enum values)

# Histograms over every job that got that far, in one pass: rows of (bucket, count, sum), where
# bucket is the index of the first bound (a JSON array parameter) at or above the value.
METRICS_DELIVERY_LAG = f"""
SELECT (SELECT count(*) FROM json_each(:bounds) AS b WHERE b.value < x) AS bucket,
       count(*), sum(x)
FROM (SELECT delivered_at - finished_at AS x FROM jobs
      WHERE state = {DELIVERED} AND delivered_at IS NOT NULL AND finished_at IS NOT NULL)
GROUP BY bucket
"""  # noqa: S608 (enum values)

METRICS_POLLS = """
SELECT (SELECT count(*) FROM json_each(:bounds) AS b WHERE b.value < x) AS bucket,
       count(*), sum(x)
FROM (SELECT polls AS x FROM jobs WHERE task_id IS NOT NULL AND finished_at IS NOT NULL)
GROUP BY bucket
"""

# --- backup (bot/backup.py) -------------------------------------------------------------------

SELECT_TABLES = """
SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name
"""

# The table name comes from SELECT_TABLES and is checked against it before use.
COUNT_ROWS = 'SELECT count(*) FROM "%s"'

SELECT_META = "SELECT value FROM meta WHERE key = ?"

UPSERT_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"

SELECT_USER_QUOTA = "SELECT daily_credits FROM user_quotas WHERE guild_id = ? AND user_id = ?"


# --- retention (storage/retention.py) ---------------------------------------------------------
# A final job's `updated_at` is when it ended (MARK_DELIVERED and MARK_ENDED set it last; a
# later status-message edit only moves it later, which keeps pictures longer, never shorter).

# Driven from the links (CROSS JOIN fixes the order): they are only those of jobs still within
# retention, a few thousand, while the jobs table keeps every job ever made.
SELECT_EXPIRED_INPUT_JOBS = f"""
SELECT DISTINCT i.job_id FROM job_inputs i CROSS JOIN jobs j ON j.id = i.job_id
WHERE j.state IN {FINAL_IN} AND j.updated_at < ? LIMIT ?
"""  # noqa: S608 (enum values)

# Only a final job's links: an unfinished job still needs its pictures to be submitted.
SELECT_FINAL_JOB = f"SELECT id FROM jobs WHERE id = ? AND state IN {FINAL_IN}"  # noqa: S608

SELECT_MEDIA_OF_JOBS = "SELECT DISTINCT sha256 FROM job_inputs WHERE job_id IN (%s)"

DELETE_JOB_INPUTS = "DELETE FROM job_inputs WHERE job_id IN (%s)"

# The partial index holds only final jobs: polls, which update unfinished jobs, never touch it.
SELECT_OLD_JOBS = f"""
SELECT id FROM jobs INDEXED BY jobs_ended
WHERE state IN {FINAL_IN} AND updated_at < ? ORDER BY updated_at LIMIT ?
"""  # noqa: S608 (enum values)

# Deleted jobs leave the ledger whole (its sums are the credit history); only the link goes.
DETACH_LEDGER = "UPDATE credit_ledger SET job_id = NULL WHERE job_id IN (%s)"

DETACH_CHILDREN = "UPDATE jobs SET parent_job_id = NULL WHERE parent_job_id IN (%s)"

DELETE_JOBS = "DELETE FROM jobs WHERE id IN (%s)"

# Reads the primary key's index only, not the table's pages (a picture's row fills most of one).
SELECT_UNUSED_MEDIA = """
SELECT sha256 FROM media
WHERE NOT EXISTS (SELECT 1 FROM job_inputs i WHERE i.sha256 = media.sha256) LIMIT ?
"""

SELECT_MEDIA_SIZES = "SELECT sha256, length(data) FROM media WHERE sha256 IN (%s)"

SELECT_UNUSED_MEDIA_OF = """
SELECT sha256, length(data) FROM media
WHERE sha256 IN (%s) AND NOT EXISTS (SELECT 1 FROM job_inputs i WHERE i.sha256 = media.sha256)
"""

DELETE_MEDIA = "DELETE FROM media WHERE sha256 IN (%s)"

# --- members' defaults ------------------------------------------------------------------------

SELECT_MEMBER_DEFAULTS = (
    "SELECT name, value FROM member_defaults WHERE guild_id = ? AND user_id = ? ORDER BY name"
)

UPSERT_MEMBER_DEFAULT = """
INSERT INTO member_defaults (guild_id, user_id, name, value, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (guild_id, user_id, name) DO UPDATE SET value = excluded.value,
    updated_at = excluded.updated_at
"""

DELETE_MEMBER_DEFAULT = (
    "DELETE FROM member_defaults WHERE guild_id = ? AND user_id = ? AND name = ?"
)

# --- processes (storage/processes.py): registration on PostgreSQL ---------------------------

UPSERT_PROCESS = """
INSERT INTO processes (id, host, pid, shard_ids, shard_count, started_at, heartbeat_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    shard_ids = excluded.shard_ids, shard_count = excluded.shard_count,
    heartbeat_at = excluded.heartbeat_at
"""

HEARTBEAT_PROCESS = "UPDATE processes SET heartbeat_at = ? WHERE id = ?"

DELETE_PROCESS = "DELETE FROM processes WHERE id = ?"

PROCESS_COLUMNS = "id, host, pid, shard_ids, shard_count, started_at, heartbeat_at"

SELECT_PROCESSES = f"SELECT {PROCESS_COLUMNS} FROM processes ORDER BY started_at, id"  # noqa: S608

# The other processes alive (a heartbeat since `?`), read at a start under the registry's lock.
SELECT_LIVE_PROCESSES = f"""
SELECT {PROCESS_COLUMNS} FROM processes WHERE heartbeat_at >= ? AND id <> ? ORDER BY started_at, id
"""  # noqa: S608 (column names)

DELETE_STALE_PROCESSES = "DELETE FROM processes WHERE heartbeat_at < ?"


# --- PostgreSQL dialect (storage/pg.py) --------------------------------------------------------
# Statements above are written for SQLite; storage/pg.py translates the mechanical differences
# (`?`/`:name` parameters, INSERT OR IGNORE, INDEXED BY) and uses these where the text differs.

# Serialises transactions over one key until commit (storage.db.lock_scope; PostgreSQL only).
LOCK_SCOPE = "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))"

# Concurrent starts migrate one at a time (the loser then finds the schema current).
PG_LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock(hashtextextended('videobot:migrate', 0))"

PG_CREATE_SCHEMA_VERSION = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"

PG_SELECT_SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_version"

PG_CLEAR_SCHEMA_VERSION = "DELETE FROM schema_version"

PG_SET_SCHEMA_VERSION = "INSERT INTO schema_version (version) VALUES (?)"

# The tables whose `id` is an identity column: their sequences move past copied ids.
PG_RESET_IDENTITIES = (
    "SELECT setval(pg_get_serial_sequence('jobs', 'id'), coalesce(max(id), 0) + 1, false)"
    " FROM jobs",
    "SELECT setval(pg_get_serial_sequence('credit_ledger', 'id'), coalesce(max(id), 0) + 1,"
    " false) FROM credit_ledger",
    "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), coalesce(max(id), 0) + 1, false)"
    " FROM audit_log",
)

PG_SELECT_TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name
"""

# Statements whose PostgreSQL text differs beyond the mechanical translation.
PG_STATEMENTS: dict[str, str] = {
    SELECT_DUE_POLLS: f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE state = {PROCESSING} AND next_poll_at <= ?
  AND id NOT IN (SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST(? AS jsonb)))
  AND lease_owner = ?
ORDER BY next_poll_at LIMIT ?
""",  # noqa: S608 (enum values)
    METRICS_DELIVERY_LAG: f"""
SELECT (SELECT count(*) FROM jsonb_array_elements_text(CAST(:bounds AS jsonb)) AS b(value)
        WHERE CAST(b.value AS DOUBLE PRECISION) < x) AS bucket,
       count(*), sum(x)
FROM (SELECT delivered_at - finished_at AS x FROM jobs
      WHERE state = {DELIVERED} AND delivered_at IS NOT NULL AND finished_at IS NOT NULL) AS lags
GROUP BY bucket
""",  # noqa: S608 (enum values)
    METRICS_POLLS: """
SELECT (SELECT count(*) FROM jsonb_array_elements_text(CAST(:bounds AS jsonb)) AS b(value)
        WHERE CAST(b.value AS DOUBLE PRECISION) < x) AS bucket,
       count(*), sum(x)
FROM (SELECT polls AS x FROM jobs WHERE task_id IS NOT NULL AND finished_at IS NOT NULL) AS p
GROUP BY bucket
""",
    # SQLite's CROSS JOIN fixes the join order; PostgreSQL plans it itself.
    SELECT_EXPIRED_INPUT_JOBS: f"""
SELECT DISTINCT i.job_id FROM job_inputs i JOIN jobs j ON j.id = i.job_id
WHERE j.state IN {FINAL_IN} AND j.updated_at < ? LIMIT ?
""",  # noqa: S608 (enum values)
}

# --- move-to-postgres (bot/move.py): table and column names come from the SQLite schema -------

SQLITE_TABLE_COLUMNS = "SELECT name FROM pragma_table_info(?) ORDER BY cid"

PG_TABLE_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position
"""

# Table names checked against SELECT_TABLES before use; rowid order keeps a Re-roll after the
# job it copies (its parent_job_id refers back). Columns by position, checked equal first.
COPY_SELECT = 'SELECT * FROM "%s" ORDER BY rowid'  # noqa: S608

COPY_INSERT = 'INSERT INTO "%s" VALUES (%s)'  # noqa: S608
