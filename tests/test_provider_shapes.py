"""Issue 10 items 5, 9, 16: provider answers of every shape, through the fake Z.AI over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import SecretStr

from bot.engine import JobEvent, JobRequest
from bot.errors import ProviderError, ProviderErrorKind
from bot.models import Mode, VideoOptions
from bot.provider import TaskState
from bot.zai import MESSAGE_MAX, ZaiClient
from storage.db import Database
from tests.conftest import make_engine
from tests.fakes.zai import FakeZai, Fault

KEY = "sk-" + uuid.uuid4().hex  # 35 characters, distinctive


def _body() -> dict:
    return {"model": "viduq1-text", "prompt": "a cat", "request_id": uuid.uuid4().hex,
            "user_id": "1234567"}  # fmt: skip


def _text(prompt: str = "a cat") -> JobRequest:
    return JobRequest(10, 20, 7, "viduq1-text", Mode.TEXT, prompt, VideoOptions())


@pytest.fixture
def keyed(http, fake_zai: FakeZai) -> ZaiClient:
    """A client whose key the fake accepts and which is long and distinctive."""
    fake_zai.api_key = KEY
    return ZaiClient(http, fake_zai.base_url, SecretStr(KEY))


# --- item 5: scrub, then cut -------------------------------------------------------------


@pytest.mark.parametrize("offset", range(MESSAGE_MAX - len(KEY) - 2, MESSAGE_MAX + 2))
async def test_a_key_straddling_the_cut_never_leaks(
    keyed: ZaiClient, fake_zai: FakeZai, offset: int
) -> None:
    message = "x" * offset + KEY + " y" * 200
    fake_zai.script("submit", Fault.http(500, code="500", message=message))
    with pytest.raises(ProviderError) as caught:
        await keyed.submit(_body())
    text = caught.value.message
    assert len(text) <= MESSAGE_MAX
    pieces = {KEY[i : i + 6] for i in range(len(KEY) - 5)}
    assert not any(piece in text for piece in pieces), text[-60:]


# --- item 16: both error shapes, code as string or integer ---------------------------------

SHAPES = [
    (429, {"code": 1113, "message": "balance"}, ProviderErrorKind.ACCOUNT, "1113"),
    (429, {"code": "1113", "message": "balance"}, ProviderErrorKind.ACCOUNT, "1113"),
    (429, {"error": {"code": 1113, "message": "balance"}}, ProviderErrorKind.ACCOUNT, "1113"),
    (400, {"code": "1301", "message": "unsafe"}, ProviderErrorKind.CONTENT_FILTER, "1301"),
    (400, {"error": {"code": "1301", "message": "x"}}, ProviderErrorKind.CONTENT_FILTER, "1301"),
    (429, {"code": 1302, "message": "rate"}, ProviderErrorKind.RETRY, "1302"),
    (500, {"error": "internal error"}, ProviderErrorKind.RETRY, "500"),
    (503, "not json at all", ProviderErrorKind.RETRY, "503"),
    (400, [1, 2], ProviderErrorKind.BAD_REQUEST, "400"),
]


@pytest.mark.parametrize(("status", "body", "kind", "code"), SHAPES)
async def test_both_error_shapes_are_read(
    zai_client: ZaiClient, fake_zai: FakeZai, status: int, body, kind, code: str
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    fake_zai.script("submit", Fault.raw(status, raw))
    with pytest.raises(ProviderError) as caught:
        await zai_client.submit(_body())
    assert (caught.value.kind, caught.value.code) == (kind, code)


async def test_a_top_level_1113_halts_and_is_not_retried(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    eng, rec = make_engine(db, zai_client)
    fake_zai.script("submit", Fault.raw(429, json.dumps({"code": 1113, "message": "balance"})))
    await eng.start()
    try:
        await eng.submit(_text())
        [failed] = await rec.wait(JobEvent.FAILED)
        assert failed.state == "failed" and failed.error_code == "1113"
        assert rec.of(JobEvent.HALTED) and fake_zai.submits == []
        assert [r.kind for r in fake_zai.request_log] == ["submit"]  # not retried
    finally:
        await eng.close()


# --- item 9: malformed answers are provider errors with backoff ----------------------------

MALFORMED_POLLS = [
    "not json",
    "[]",
    "{}",
    '{"task_status": 7}',
    '{"task_status": "SUCCESS", "video_result": {"url": "http://x/v.mp4"}}',
    '{"task_status": "SUCCESS", "video_result": "http://x/v.mp4"}',
    '{"task_status": "SUCCESS", "video_result": ["http://x/v.mp4"]}',
    '{"task_status": "SUCCESS", "video_result": []}',
    '{"task_status": "SUCCESS", "video_result": [{"url": 5}]}',
    '{"task_status": "SUCCESS"}',
    "null",
]


@pytest.mark.parametrize("raw", MALFORMED_POLLS)
async def test_malformed_poll_answers_are_retryable_errors(
    zai_client: ZaiClient, fake_zai: FakeZai, raw: str
) -> None:
    task_id = await zai_client.submit(_body())
    fake_zai.script("poll", Fault.raw(200, raw))
    with pytest.raises(ProviderError) as caught:
        await zai_client.get_task(task_id)
    assert (caught.value.kind, caught.value.code) == (ProviderErrorKind.RETRY, "malformed_answer")


async def test_a_fail_answer_with_error_as_a_string_is_a_failure(
    zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    task_id = await zai_client.submit(_body())
    fake_zai.script("poll", Fault.raw(200, '{"task_status": "FAIL", "error": "bad frame"}'))
    state = await zai_client.get_task(task_id)
    assert state.message == "bad frame"


async def test_malformed_answers_are_retried_with_backoff_then_delivered(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    eng, rec = make_engine(db, zai_client)
    fake_zai.script("poll", *(Fault.raw(200, raw) for raw in MALFORMED_POLLS))
    fake_zai.script("submit", Fault.raw(200, '{"id": {"nested": 1}}'))  # no usable id
    await eng.start()
    try:
        await eng.submit(_text())
        [ended] = await rec.wait(JobEvent.FAILED)
        assert ended.error_code == "submit_unconfirmed" and ended.refunded == 1
        job = await eng.submit(_text("a dog"))
        [done] = await rec.wait(JobEvent.FINISHED)
        assert done.id == job.id
        polls = [r for r in fake_zai.request_log if r.kind == "poll"]
        # One poll per scripted answer, then the good one: no tight loop of re-polls.
        assert len(polls) == len(MALFORMED_POLLS) + 1
    finally:
        await eng.close()


class FlakyParse(ZaiClient):
    """The real client with a parsing bug on the first poll (an exception the engine did not
    anticipate)."""

    broken = 1

    async def get_task(self, task_id: str) -> TaskState:
        if self.broken:
            self.broken -= 1
            raise KeyError("video_result")
        return await super().get_task(task_id)


async def test_an_unexpected_exception_in_poll_reschedules_the_job(
    db: Database, http, fake_zai: FakeZai
) -> None:
    client = FlakyParse(http, fake_zai.base_url, SecretStr(fake_zai.api_key))
    eng, rec = make_engine(db, client)
    await eng.start()
    try:
        await eng.submit(_text())
        [done] = await rec.wait(JobEvent.FINISHED)
        assert client.broken == 0 and done.state == "succeeded"
    finally:
        await eng.close()


async def test_an_unexpected_exception_in_submit_frees_the_slot(
    db: Database, zai_client: ZaiClient, fake_zai: FakeZai
) -> None:
    eng, rec = make_engine(db, zai_client, max_submit_attempts=3, max_concurrent=1)
    job = await eng.submit(_text())
    # A stored option the model table no longer accepts (e.g. after an upgrade): building the
    # body raises pydantic's ValidationError, not a ProviderError.
    await db.execute("UPDATE jobs SET options = ? WHERE id = ?", ('{"duration": 7}', job.id))
    await eng.start()
    try:
        [failed] = await rec.wait(JobEvent.FAILED)
        assert failed.id == job.id and failed.state == "failed" and failed.refunded == 1
        assert fake_zai.submits == []
        second = await eng.submit(_text("a dog"))  # the slot was freed
        [done] = await rec.wait(JobEvent.FINISHED)
        assert done.id == second.id
    finally:
        await eng.close()
