"""Issue 12, languages: one message catalog (en-US, zh-CN, ja) complete with identical
placeholders; no user-facing English sentence outside it in cogs/ or bot/; and, through the
fake Discord, replies in the member's language, channel posts in the server's, and the
command registration carrying localized names and descriptions."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import regex

from bot import i18n
from tests.harness import Harness, harness
from tests.test_e2e import private_text, slash
from tests.test_moderation import admin
from tests.util import eventually

ROOT = Path(__file__).resolve().parent.parent
NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")


# --- (a) the catalog ------------------------------------------------------------------------


def _keys(locale: str) -> set[str]:
    """The keys of one locale's .po file."""
    catalog = i18n.read_catalog(locale)
    return {str(m.id[0] if m.pluralizable else m.id) for m in catalog if m.id}


@pytest.mark.parametrize("locale", i18n.LOCALES)
def test_every_key_is_in_every_language_with_the_same_placeholders(locale: str) -> None:
    assert _keys(locale) == _keys(i18n.DEFAULT_LOCALE)
    catalog = i18n.read_catalog(locale)
    for message in catalog:
        if not message.id:
            continue
        key = str(message.id[0] if message.pluralizable else message.id)
        forms = message.string if message.pluralizable else (message.string,)
        assert all(forms), (locale, key, "empty translation")
        assert not message.fuzzy, (locale, key, "fuzzy")
        for count in (1, 2, 5):
            english = i18n.placeholders(i18n.template(i18n.DEFAULT_LOCALE, key, count))
            assert i18n.placeholders(i18n.template(locale, key, count)) == english, (locale, key)


@pytest.mark.parametrize("locale", ("zh-CN", "ja"))
def test_plural_forms_follow_the_language(locale: str) -> None:
    catalog = i18n.read_catalog(locale)
    assert catalog.num_plurals == 1  # Chinese and Japanese have one form
    assert i18n.read_catalog("en-US").num_plurals == 2
    assert i18n.render("en-US", "cancel.done", id=3, count=1).endswith("credit was refunded.")
    assert i18n.render("en-US", "cancel.done", id=3, count=2).endswith("credits were refunded.")


# The moderators' commands texts tell them to type (their names stay English).
ADMIN_COMMANDS = {
    "/videoadmin models enable",
    "/videoadmin blocklist list",
    "/videoadmin hotwords list",
    "/videoadmin channels allow",
}


@pytest.mark.parametrize("locale", ("zh-CN", "ja"))
def test_localized_names_follow_discords_rules_and_commands_in_texts_exist(locale: str) -> None:
    names = {k: i18n.render(locale, k) for k in i18n.keys() if k.startswith("name.")}
    for key, name in names.items():
        if key.startswith("name.menu."):
            assert 1 <= len(name) <= 32
        else:
            assert NAME.match(name) and name == name.lower(), (key, name)
    for key in i18n.keys():
        if key.startswith(("cmd.", "opt.")):
            assert 1 <= len(i18n.render(locale, key)) <= 100, key
    # Every command a text tells the member to type is spelled as their client shows it.
    shown = {"/" + names[k] for k in names if k.startswith("name.cmd.") and k.count(".") == 2}
    shown |= {
        f"/{names['name.cmd.video']} {names[k]}" for k in names if k.startswith("name.cmd.video.")
    }
    shown |= ADMIN_COMMANDS  # moderators' command names are not localized (their texts are)
    for key in i18n.keys():
        text = i18n.template(locale, key, 2)
        for typed in regex.findall(r"`(/[^`{]+)`", text):
            assert typed in shown, (locale, key, typed)


def test_stored_messages_render_later_in_the_readers_language() -> None:
    stored = i18n.msg("job.timed_out", count=3).encode()
    message = i18n.Msg.decode(stored)
    assert message is not None and "3" in i18n.render("ja", message)
    assert i18n.Msg.decode("a provider's own words") is None
    assert i18n.locale_of("zh-TW") == "en-US" and i18n.locale_of("ja") == "ja"


# --- (b) no user-facing literal outside the catalog -----------------------------------------

# Modules whose texts are for the operator (CLI, settings, logs, metrics), never for members.
OPERATOR_MODULES = {
    "bot/__main__.py",
    "bot/backup.py",
    "bot/doctor.py",
    "bot/move.py",  # move-to-postgres (CLI)
    "bot/prune.py",
    "bot/registration.py",  # the start-up refusal over shards (operator, like settings)
    "bot/settings.py",
    "bot/metrics.py",
}
LOG_CALLS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
# Exceptions whose message is for logs or developers (members see BotError texts only).
INTERNAL_ERRORS = {
    "ValueError",
    "RuntimeError",
    "LookupError",
    "KeyError",
    "TypeError",
    "AssertionError",
    "ProviderError",
    "NotImplementedError",
    "Undeliverable",
}
SENTENCE = regex.compile(r"\p{L}{2,}[,;:]? +\p{L}{2,}")
# Provider adapters: their texts are the provider's or protocol diagnostics for the logs; the
# engine picks what members read (catalog keys) from the error kind, never from these.
PROTOCOL_MODULES = {
    "bot/zai.py",
    "bot/providers/geekai.py",
    "bot/providers/http.py",
    "bot/providers/newapi.py",
}
# Functions whose texts are for the operator (cogs/app.py: what to change in the shard settings).
OPERATOR_FUNCTIONS = {"shard_refusal"}
PRAGMA = "# not for members"  # a line's literal is an internal reason (logs, audit detail)


def _skipped(tree: ast.AST) -> set[int]:
    """Literals that never reach a member: docstrings, log lines, internal exceptions."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.FunctionDef) and node.name in OPERATOR_FUNCTIONS:
            skip |= {id(n) for n in ast.walk(node)}
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in LOG_CALLS or name in INTERNAL_ERRORS or name == "failpoint":
                skip |= {id(n) for n in ast.walk(node)}
    return skip


def stray_literals(path: Path) -> list[str]:
    """String literals that read like words for people and are not catalog keys."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    skip = _skipped(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip or i18n.has(node.value) or PRAGMA in lines[node.lineno - 1]:
            continue
        if SENTENCE.search(node.value):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_no_user_facing_literal_outside_the_catalog() -> None:
    files = sorted((ROOT / "cogs").glob("*.py")) + sorted((ROOT / "bot").rglob("*.py"))
    checked = [
        f for f in files if str(f.relative_to(ROOT)) not in OPERATOR_MODULES | PROTOCOL_MODULES
    ]
    strays = [line for path in checked for line in stray_literals(path)]
    assert strays == [], "\n".join(strays)


def test_the_scan_catches_a_new_english_reply(tmp_path: Path) -> None:
    source = tmp_path / "cogs" / "new.py"
    source.parent.mkdir()
    source.write_text(
        "async def f(i):\n"
        '    """Docstrings are fine."""\n'
        '    log.info("logs are fine too")\n'
        '    await i.response.send_message("Your video is on its way!")\n'
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert [s.split(": ", 1)[1] for s in stray_literals(source)] == [
            "'Your video is on its way!'"
        ]
    finally:
        ROOT = saved


# --- (c) through the fake Discord ------------------------------------------------------------


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running bot (Z.AI only)."""
    async with harness(tmp_path) as running:
        yield running


async def test_commands_are_registered_with_localized_names_and_descriptions(h: Harness) -> None:
    video = h.discord.find_command("video", None, 1)
    assert video["name_localizations"] == {"zh-CN": "视频", "ja": "動画"}
    assert video["description_localizations"]["ja"] == "Z.AI で短い動画を作る"
    text = next(o for o in video["options"] if o["name"] == "text")
    assert text["name_localizations"]["ja"] == "テキスト"
    prompt = next(o for o in text["options"] if o["name"] == "prompt")
    assert prompt["name_localizations"] == {"zh-CN": "提示词", "ja": "プロンプト"}
    assert "512" in prompt["description_localizations"]["zh-CN"]
    image = h.discord.find_command("image", None, 1)
    quality = next(o for o in image["options"] if o["name"] == "quality")
    assert {c["name_localizations"]["ja"] for c in quality["choices"]} == {
        "高精細（hd）",
        "標準（standard）",
    }
    menu = h.discord.find_command("Animate image", None, 3)
    assert menu["name_localizations"]["zh-CN"] == "让图片动起来"


async def test_a_zh_member_gets_replies_and_refusals_in_chinese(h: Harness) -> None:
    h.discord.user_locale = "zh-CN"
    refused = await slash(h, "text", prompt="a cat", model="viduq1-text", duration=10)
    text = await private_text(refused)
    assert "viduq1-text 只能生成 5 秒的视频" in text and "`/视频 帮助`" in text
    jobs = await h.discord.slash(h.guild, h.channel, h.alice, "jobs")
    assert "你在这里还没有视频" in await private_text(jobs)


async def test_a_ja_members_autocomplete_choices_are_japanese(h: Harness) -> None:
    h.discord.user_locale = "ja"
    typing = await h.discord.autocomplete(
        h.guild, h.channel, h.alice, "video", subcommand="text", option="duration", typed=""
    )
    await typing.wait_callback()
    assert typing.callback["type"] == 8
    names = [c["name"] for c in typing.callback["data"]["choices"]]
    assert names == ["5 秒（既定）", "10 秒"]


async def test_a_ja_server_gets_its_status_post_in_japanese_while_the_member_reads_chinese(
    h: Harness,
) -> None:
    h.guild.locale = "ja"
    h.discord.user_locale = "zh-CN"
    asked = await slash(h, "text", prompt="a dog")
    assert "✅ 已受理，编号为视频 #" in await private_text(asked)
    await eventually(
        lambda: any("さんの動画 #" in m.content for m in h.bot_messages()),
        what="the status post in the server's language",
    )
    result = await h.discord.wait_for_message(
        lambda m: m.content.startswith(f"<@{h.alice.id}> 動画ができました"), channel=h.channel
    )
    assert [f["name"] for f in result.embeds[0]["fields"]][:2] == ["モデル", "設定"]


# --- (d) /video defaults, the /jobs Cancel buttons and /videoadmin in the reader's language ---


async def test_defaults_is_registered_with_its_own_localized_option_names(h: Harness) -> None:
    video = h.discord.find_command("video", None, 1)
    mine = next(o for o in video["options"] if o["name"] == "defaults")
    assert mine["name_localizations"] == {"zh-CN": "默认设置", "ja": "既定値"}
    options = {o["name"]: o for o in mine["options"]}
    # `image` here is the member's image model, not a picture: its own name.
    assert options["image"]["name_localizations"] == {"zh-CN": "图片模型", "ja": "画像モデル"}
    assert options["quality"]["name_localizations"]["ja"] == "品質"  # the shared option name
    reset = {c["value"]: c["name_localizations"] for c in options["reset"]["choices"]}
    assert reset["all"] == {"zh-CN": "全部", "ja": "すべて"}
    assert reset["frames"]["ja"] == "フレームのモデル"
    assert "DM" in options["private"]["description_localizations"]["ja"]


async def test_a_ja_member_sets_defaults_and_reads_japanese(h: Harness) -> None:
    h.discord.user_locale = "ja"
    shown = await private_text(await slash(h, "defaults", image="vidu2-image", duration=10))
    assert shown.startswith("**このサーバーでのあなたの既定値**")
    assert (
        "画像 **vidu2-image** · フレーム **" in shown
        and "テキスト **cogvideox-3**（通常）" in shown
    )
    assert "• 長さ：`10`（" in shown and "結果：チャンネルに投稿します。" in shown
    assert "`/動画 既定値`" in shown
    refused = await private_text(await slash(h, "defaults", text="vidu2-reference"))
    assert "vidu2-reference はここでは「テキスト」の動画を作れません" in refused
    assert "`/動画 既定値 テキストモデル:`" in refused and "何も変更していません" in refused
    assert "`/動画 ヘルプ`" in refused  # the pointer to help, in Japanese too
    typing = await h.discord.autocomplete(
        h.guild, h.channel, h.alice, "video", subcommand="defaults", option="duration", typed=""
    )
    await typing.wait_callback()
    names = [c["name"] for c in typing.callback["data"]["choices"]]
    # Each value with where the member's models use it, their own marked.
    assert names == [
        "5 秒 · テキスト, フレーム",
        "10 秒 · テキスト, フレーム（あなたの設定）",
        "4 秒 · 画像, 参照",
    ]


async def test_a_zh_members_jobs_list_cancel_button_is_chinese(h: Harness) -> None:
    h.discord.user_locale = "zh-CN"
    await h.discord.slash(
        h.guild,
        h.channel,
        h.mod,
        "videoadmin",
        group="approval",
        subcommand="on",
        options={"channel": h.guild.channel("mods")},
    )
    await private_text(await slash(h, "text", prompt="a kite"))
    listing = (await h.discord.slash(h.guild, h.channel, h.alice, "jobs")).wait_response()
    message = await listing
    labels = [c.get("label") for row in message.components for c in row["components"]]
    assert labels == ["取消 #1"]
    assert "下方的按钮或 `/视频 取消`" in message.content


async def test_a_zh_moderator_reads_videoadmin_in_chinese_while_the_server_posts_japanese(
    h: Harness,
) -> None:
    h.discord.user_locale = "zh-CN"
    assert await admin(h, "models disable", model="vidu2-image") == "✅ vidu2-image 已停用。"
    assert await admin(h, "unban", member=h.bob) == f"{h.bob.mention} 没有被禁止。"
    assert "• 所有模型：1" in await admin(h, "cost list")
    # The approval request is a channel post: the server's language (ja), buttons too.
    h.guild.locale = "ja"
    await admin(h, "approval on", channel=h.guild.channel("mods"))
    await private_text(await slash(h, "text", prompt="a kite"))
    request = await h.discord.wait_for_message(
        lambda m: "動画リクエスト #1" in m.content, channel=h.guild.channel("mods")
    )
    labels = [c.get("label") for row in request.components for c in row["components"]]
    assert labels == ["承認", "却下"]
    mods = h.guild.channel("mods")
    denied = await h.discord.click(h.guild, mods, h.alice, request, "approval:approve:1")
    assert "你需要“管理服务器”权限" in await private_text(denied)  # a member's click, in zh-CN
    click = await h.discord.click(
        h.guild, h.guild.channel("mods"), h.mod, request, "approval:reject:1"
    )
    await click.wait_callback()
    assert click.modal["title"] == "拒绝这个视频请求"  # the moderator's own language
    field = click.modal["components"][0]["components"][0]
    submitted = await h.discord.submit_modal(click, h.mod, {field["custom_id"]: "不合适"})
    assert await private_text(submitted) == "请求 #1 已拒绝，已退还成员的额度。"
    await eventually(lambda: "が却下しました：不合适" in request.content, what="the post's note")
