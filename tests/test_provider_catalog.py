"""The gateway model catalog: rules checked before sending, bodies the fakes accept, fallback."""

from __future__ import annotations

import itertools

import pytest

from bot.errors import InputError, ProviderError, ProviderErrorKind
from bot.images import ImageInfo
from bot.models import Mode
from bot.providers import (
    FallbackReason,
    Option,
    Picture,
    VideoRequest,
    catalog,
    fallback_reason,
    geekai,
    newapi,
)
from bot.providers import ProviderName as P
from tests.fakes import geekai as fake_geekai
from tests.fakes import newapi as fake_newapi
from tests.fakes.media import make_png

PIC = Picture(make_png(), "image/png", "https://cdn.example.test/p.png")
PICS = {Mode.TEXT: (), Mode.IMAGE: (PIC,), Mode.FRAMES: (PIC, PIC), Mode.REFERENCE: (PIC, PIC)}
BUILDERS = {P.GATEWAY: newapi.build_body, P.GEEKAI: geekai.build_body}
VALIDATORS = {P.GATEWAY: fake_newapi.validate_request, P.GEEKAI: fake_geekai.validate_request}


def req(model: str, mode: Mode, prompt: str | None = "go", **options) -> VideoRequest:
    """A request with the mode's usual number of pictures."""
    return VideoRequest(model, mode, prompt, options, PICS[mode], "req-000001", "user-000001")


def check(api: P, request: VideoRequest) -> None:
    """The catalog check the engine runs before spending."""
    catalog.check_request(catalog.rules_for(api, request.model), request)


def test_catalog_has_the_issue_models() -> None:
    assert catalog.models_of(P.GATEWAY) == [
        "viduq3p-540p",
        "viduq3p-720p",
        "viduq3p-1080p",
        "viduq3t-540p",
        "viduq3t-720p",
        "viduq3t-1080p",
        "viduq3p-mix-720p",
    ]
    assert catalog.models_of(P.GEEKAI) == ["cogvideox-flash", "cogvideox", "cogvideox-2"]
    assert catalog.models_of(P.ZAI) == ["cogvideox-2"]
    assert catalog.rules_for(P.GATEWAY, "viduq3t-1080p").resolution == "1080p"
    assert catalog.rules_for(P.GEEKAI, "cogvideox-flash").free


def _option_values(rules: catalog.ModelRules, mode: Mode) -> list[dict]:
    """One options dict per allowed value of each option (seeds: ends of the range)."""
    cases: list[dict] = [{}]
    for option, allowed in rules.options.items():
        modes = rules.option_modes.get(option)
        if modes is not None and mode not in modes:
            continue
        if option is Option.NEGATIVE_PROMPT:
            values = ["blurry, text", "x" * catalog.NEGATIVE_PROMPT_MAX]
        elif isinstance(allowed, range):
            values = [allowed[0], allowed[-1]]
        else:
            values = list(allowed)
        cases.extend({option.value: value} for value in values)
    return cases


GATEWAY_ROWS = [
    (api, name, mode)
    for (api, name), rules in catalog.CATALOG.items()
    if api in BUILDERS
    for mode in sorted(rules.modes)
]


@pytest.mark.parametrize(("api", "model", "mode"), GATEWAY_ROWS)
def test_every_value_the_catalog_allows_passes_the_fake(api: P, model: str, mode: Mode) -> None:
    """The catalog never lets through what the API (as its fake encodes the seed) refuses."""
    rules = catalog.rules_for(api, model)
    for options in _option_values(rules, mode):
        request = req(model, mode, "A @Image1 and @Image2", **options)
        check(api, request)
        assert VALIDATORS[api](BUILDERS[api](request)) == model


@pytest.mark.parametrize(("api", "model", "mode"), GATEWAY_ROWS)
def test_all_options_at_once(api: P, model: str, mode: Mode) -> None:
    rules = catalog.rules_for(api, model)
    options = {}
    for case in _option_values(rules, mode)[1:]:
        options |= case
    request = req(model, mode, **options)
    check(api, request)
    assert VALIDATORS[api](BUILDERS[api](request)) == model


@pytest.mark.parametrize(
    ("api", "model", "mode", "options", "says"),
    [
        (P.GATEWAY, "viduq3p-720p", Mode.TEXT, {"duration": 17}, "1 to 16 seconds"),
        (P.GATEWAY, "viduq3p-720p", Mode.TEXT, {"duration": 0}, "1 to 16 seconds"),
        (P.GATEWAY, "viduq3p-720p", Mode.TEXT, {"duration": True}, "1 to 16 seconds"),
        (P.GATEWAY, "viduq3p-720p", Mode.TEXT, {"aspect_ratio": "4:3"}, "`16:9`"),
        (P.GATEWAY, "viduq3p-720p", Mode.IMAGE, {"aspect_ratio": "16:9"}, "follows your picture"),
        (P.GATEWAY, "viduq3t-540p", Mode.TEXT, {"seed": -1}, "from 0 to"),
        (P.GATEWAY, "viduq3t-540p", Mode.TEXT, {"fps": 30}, "no `fps` option"),
        (P.GATEWAY, "viduq3t-540p", Mode.TEXT, {"size": "1280x720"}, "no `size` option"),
        (P.GEEKAI, "cogvideox-flash", Mode.TEXT, {"fps": 25}, "`24`, `30`, `60`"),
        (P.GEEKAI, "cogvideox-flash", Mode.TEXT, {"duration": 6}, "`5`, `10`"),
        (P.GEEKAI, "cogvideox", Mode.TEXT, {"size": "1280x720"}, "`720x480`"),
        (P.GEEKAI, "cogvideox", Mode.TEXT, {"quality": "pro"}, "`speed`"),
        (P.GEEKAI, "cogvideox-2", Mode.TEXT, {"negative_prompt": "x" * 513}, "Shorten"),
        (P.GEEKAI, "cogvideox-2", Mode.TEXT, {"seed": 1}, "no `seed` option"),
        (P.ZAI, "cogvideox-2", Mode.TEXT, {"fps": 24}, "`30`, `60`"),
        (P.ZAI, "cogvideox-2", Mode.TEXT, {"watermark": True}, "no `watermark` option"),
    ],
)
def test_refused_options_say_what_to_pick(api, model, mode, options, says) -> None:
    with pytest.raises(InputError) as caught:
        check(api, req(model, mode, **options))
    assert says in caught.value.user_message


@pytest.mark.parametrize(
    ("api", "model", "mode", "says"),
    [
        (P.GATEWAY, "viduq3p-720p", Mode.REFERENCE, "does not do reference mode"),
        (P.GATEWAY, "viduq3p-mix-720p", Mode.TEXT, "it does reference"),
        (P.ZAI, "cogvideox-2", Mode.FRAMES, "does not do frames mode"),
        (P.GEEKAI, "cogvideox", Mode.REFERENCE, "does not do reference mode"),
    ],
)
def test_modes_not_offered(api, model, mode, says) -> None:
    with pytest.raises(InputError, match=says):
        check(api, req(model, mode))


def test_prompt_rules() -> None:
    with pytest.raises(InputError, match="needs a prompt"):
        check(P.GATEWAY, req("viduq3p-720p", Mode.IMAGE, None))
    with pytest.raises(InputError, match="needs a prompt"):
        check(P.GEEKAI, req("cogvideox-flash", Mode.IMAGE, "  "))
    check(P.ZAI, req("cogvideox-2", Mode.IMAGE, None))  # the Z.AI format takes a picture alone
    with pytest.raises(InputError, match="limit is 512"):
        check(P.GATEWAY, req("viduq3p-720p", Mode.TEXT, "x" * 513))
    with pytest.raises(InputError, match="@Image3 but you gave 2"):
        check(P.GATEWAY, req("viduq3p-mix-720p", Mode.REFERENCE, "@Image1 meets @Image3"))
    with pytest.raises(InputError, match="@Image0"):
        check(P.GATEWAY, req("viduq3p-mix-720p", Mode.REFERENCE, "@Image0"))


def test_unknown_model_names_the_offered_ones() -> None:
    with pytest.raises(InputError, match="viduq3p-540p"):
        catalog.rules_for(P.GATEWAY, "viduq9")


def test_picture_rules() -> None:
    rules = catalog.rules_for(P.GATEWAY, "viduq3p-mix-720p")
    square = ImageInfo(512, 512, "PNG", 1000)
    catalog.check_pictures(rules, Mode.REFERENCE, [square] * 3)
    with pytest.raises(InputError, match="1-3 picture"):
        catalog.check_pictures(rules, Mode.REFERENCE, [square] * 4)
    with pytest.raises(InputError, match="within 1:4"):
        catalog.check_pictures(rules, Mode.REFERENCE, [ImageInfo(2000, 400, "PNG", 1000)])
    with pytest.raises(InputError, match="takes 2 picture"):
        catalog.check_pictures(rules, Mode.FRAMES, [square])


def _error(kind: ProviderErrorKind, code: str, status: int | None) -> ProviderError:
    return ProviderError(kind, code, "m", status=status)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_error(ProviderErrorKind.ACCOUNT, "1113", 429), FallbackReason.BALANCE),
        (_error(ProviderErrorKind.ACCOUNT, "insufficient_user_quota", 403), FallbackReason.BALANCE),
        (_error(ProviderErrorKind.RETRY, "1305", 429), FallbackReason.OVERLOAD),
        (_error(ProviderErrorKind.RETRY, "upstream_unavailable", 503), FallbackReason.OVERLOAD),
        (_error(ProviderErrorKind.RETRY, "503", 503), FallbackReason.OUTAGE),
        (_error(ProviderErrorKind.RETRY, "500", 500), FallbackReason.OUTAGE),
        (_error(ProviderErrorKind.RETRY, "ConnectError", None), FallbackReason.OUTAGE),
        (_error(ProviderErrorKind.RETRY, "1302", 429), None),  # rate limit: wait here
        (_error(ProviderErrorKind.RETRY, "WriteTimeout", None), None),
        (_error(ProviderErrorKind.AMBIGUOUS, "ReadTimeout", None), None),  # may exist: never
        (_error(ProviderErrorKind.AMBIGUOUS, "504", 504), None),
        (_error(ProviderErrorKind.AUTH, "1001", 401), None),
        (_error(ProviderErrorKind.BAD_REQUEST, "1214", 400), None),
        (_error(ProviderErrorKind.CONTENT_FILTER, "1301", 400), None),
    ],
)
def test_fallback_reason(error: ProviderError, reason: FallbackReason | None) -> None:
    assert fallback_reason(error) is reason


def test_catalog_modes_cover_every_mode() -> None:
    """Every video mode is reachable through at least one gateway model (stills are Z.AI's)."""
    offered = set(itertools.chain.from_iterable(r.modes for r in catalog.CATALOG.values()))
    assert offered == set(Mode) - {Mode.STILL}
