"""A member's own defaults on a server (issue 12): the model per mode, some options, `private`.

Precedence, for every entry point but Re-roll and Extend (which keep the job's own options):
what the command says > the member's default > the model's own default. A default option is
used only where the model in use takes that value, so one `quality` default never breaks a
model without quality. Stored by storage/defaults.py; checked against the model table and the
provider catalog through the engine (a `Catalogue`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.errors import InputError
from bot.i18n import Msg, msg
from bot.models import DEFAULT_MODEL, HELP_HINT, VIDEO_MODES, Mode, VideoOptions

# The names a member can set: a mode's model (named by the mode), options, where results go.
MODEL_NAMES: dict[str, Mode] = {mode.value: mode for mode in VIDEO_MODES}
OPTION_NAMES = ("quality", "audio", "size", "duration", "fps")
PRIVATE = "private"
NAMES = (*MODEL_NAMES, *OPTION_NAMES, PRIVATE)

# `/video defaults` as the member's client shows it (localized command names).
DEFAULTS_COMMAND = msg(
    "command.path", group=Msg("name.cmd.video"), sub=Msg("name.cmd.video.defaults")
)


def name_msg(name: str) -> Msg:
    """The localized option name of a default in /video defaults (a mode's model, an option)."""
    own = f"name.opt.video.defaults.{name}"
    return Msg(own if name in MODEL_NAMES else f"name.opt.{name}")


def turned_off(model: str, name: str, offered: list[str]) -> Msg:
    """A model the moderators turned off cannot become a default: what to pick instead."""
    return msg(
        "defaults.turned_off",
        model=model,
        command=DEFAULTS_COMMAND,
        name=name_msg(name),
        offered=", ".join(offered) or Msg("defaults.none_offered"),
    )


def turned_off_hint(refusal: Msg, mode: Mode) -> Msg:
    """A refusal of the member's own default model, with how to change or forget it."""
    return msg(
        "defaults.turned_off_hint",
        text=refusal,
        mode_command=msg(
            "command.path", group=Msg("name.cmd.video"), sub=Msg(f"name.cmd.video.{mode}")
        ),
        command=DEFAULTS_COMMAND,
        name=name_msg(mode.value),
        reset=Msg("name.opt.reset"),
        choice=Msg(f"choice.reset.{mode}"),
    )


class Catalogue(Protocol):
    """What the configured providers offer (the engine)."""

    def models_for(self, mode: Mode) -> list[str]:
        """The models offered in a mode."""
        ...

    def option_values(self, model: str, option: str, mode: Mode) -> tuple[Any, ...] | None:
        """The values a model lists for an option in a mode (None: no such option)."""
        ...

    def takes(self, model: str, option: str, value: Any, mode: Mode) -> bool:
        """Whether a model takes option=value in a mode."""
        ...


@dataclass(frozen=True)
class MemberDefaults:
    """A member's defaults on one server: name → value, only those the member set."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def model_for(self, mode: Mode) -> str:
        """The member's model for a mode, else the mode's usual one."""
        return str(self.values.get(mode.value) or DEFAULT_MODEL[mode])

    def own_model(self, mode: Mode) -> str | None:
        """The model the member set for a mode (None: the usual one)."""
        return self.values.get(mode.value)

    def options(self) -> dict[str, Any]:
        """The options the member set."""
        return {name: self.values[name] for name in OPTION_NAMES if name in self.values}

    @property
    def private(self) -> bool:
        """Whether results go to the member's direct messages unless a command says otherwise."""
        return bool(self.values.get(PRIVATE, False))

    def without(self, names: Iterable[str]) -> MemberDefaults:
        """These defaults with `names` forgotten."""
        gone = set(names)
        return MemberDefaults({k: v for k, v in self.values.items() if k not in gone})

    def changed(self, changes: Mapping[str, Any]) -> MemberDefaults:
        """These defaults with `changes` applied (names from NAMES)."""
        unknown = set(changes) - set(NAMES)
        if unknown:
            raise ValueError(f"not a member default: {', '.join(sorted(unknown))}")
        return MemberDefaults({**self.values, **changes})


def fill(
    mine: MemberDefaults, model: str, mode: Mode, options: VideoOptions, catalogue: Catalogue
) -> VideoOptions:
    """The options of a request: those given, then the member's defaults `model` takes in `mode`."""
    given = options.given()
    extra = {
        option: value
        for option, value in mine.options().items()
        if option not in given and catalogue.takes(model, option, value, mode)
    }
    return VideoOptions(**(extra | given))


def fitting_modes(
    mine: MemberDefaults, option: str, value: Any, catalogue: Catalogue
) -> list[Mode]:
    """The modes whose model (the member's) takes option=value: where the default is used."""
    return [m for m in VIDEO_MODES if catalogue.takes(mine.model_for(m), option, value, m)]


def check(mine: MemberDefaults, catalogue: Catalogue) -> None:
    """Refuse defaults that cannot be used: a model outside its mode, an option no model of
    the member's takes (InputError saying what to do; nothing is stored)."""
    for name, mode in MODEL_NAMES.items():
        model = mine.own_model(mode)
        if model is not None and model not in catalogue.models_for(mode):
            wrong = msg(
                "defaults.wrong_mode",
                model=model,
                mode=Msg(f"name.cmd.video.{mode}"),
                command=DEFAULTS_COMMAND,
                name=name_msg(name),
                offered=", ".join(catalogue.models_for(mode)),
            )
            raise InputError(HELP_HINT, text=wrong)
    for option, value in mine.options().items():
        if not fitting_modes(mine, option, value, catalogue):
            raise InputError(HELP_HINT, text=_unfit(mine, option, value, catalogue))


def _unfit(mine: MemberDefaults, option: str, value: Any, catalogue: Catalogue) -> Msg:
    """Why an option default fits none of the member's models, and what to do."""
    yours = ", ".join(dict.fromkeys(mine.model_for(m) for m in VIDEO_MODES))
    having = [
        (mode, model)
        for mode in VIDEO_MODES
        for model in catalogue.models_for(mode)
        if catalogue.takes(model, option, value, mode)
    ]
    name = name_msg(option)
    if having:
        mode, model = having[0]
        what = msg(
            "defaults.unfit_having",
            model=model,
            command=DEFAULTS_COMMAND,
            mode_option=name_msg(mode.value),
            option=name,
            value=value,
        )
    else:
        what = msg("defaults.unfit_none", option=name)
    return msg(
        "defaults.unfit",
        option=name,
        value=value,
        models=yours,
        what=what,
        command=DEFAULTS_COMMAND,
        reset=Msg("name.opt.reset"),
        choice=Msg(f"choice.reset.{option}"),
    )


def offered_values(
    mine: MemberDefaults, option: str, catalogue: Catalogue
) -> list[tuple[Any, list[Mode]]]:
    """The values the member's models list for an option, each with the modes it fits."""
    listed = [
        value
        for mode in VIDEO_MODES
        for value in catalogue.option_values(mine.model_for(mode), option, mode) or ()
    ]
    return [(v, fitting_modes(mine, option, v, catalogue)) for v in dict.fromkeys(listed)]
