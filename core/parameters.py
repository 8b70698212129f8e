"""One schema per parameter set: each parameter once, with its type, range, default and help;
the service's check, the form field, the serializer field and the command-line option are all
generated from it, so every door accepts the same values and refuses a bad one with the same
message (``Param.problem``).

A set is declared once per app (``dissect.parameters.RUN_PARAMETERS``,
``annotate.crowd.spec.CAMPAIGN_SPEC``); this module only knows how to turn a ``Param`` into
each door's field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.errors import AppError

_UNSET = object()


@dataclass(frozen=True)
class Param:
    """One parameter. ``low``/``high`` bound numbers (inclusive unless ``open_low``/``open_high``),
    ``choices`` bound text, ``max_length`` bounds free text; ``nullable`` accepts None (no
    value, e.g. no limit). ``cli`` renames the command-line flag (``--tiles``)."""

    name: str
    kind: type
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    max_length: int | None = None
    nullable: bool = False
    cli: str | None = None

    def __post_init__(self):
        if self.kind in (int, float) and (self.low is None or self.high is None):
            raise TypeError(f"parameter {self.name}: numbers need both bounds")
        if self.kind is str and not self.choices and self.max_length is None:
            raise TypeError(f"parameter {self.name}: text needs choices or a max_length")

    # --- the one check ---------------------------------------------------------------------

    def expectation(self) -> str:
        """What a valid value is, in words (the end of every refusal)."""
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.kind is str:
            return f"text of at most {self.max_length} characters"
        what = "a whole number" if self.kind is int else "a number"
        if self.open_low and self.open_high:
            span = f"between {_fmt(self.low)} and {_fmt(self.high)}, exclusive"
        else:
            span = f"from {_fmt(self.low)} to {_fmt(self.high)}"
        none = " (or leave it empty for none)" if self.nullable else ""
        return f"{what} {span}{none}"

    def message(self) -> str:
        """The refusal every door gives for a bad value of this parameter."""
        return f"{self.name}: give {self.expectation()}."

    def problem(self, value: Any) -> str | None:
        """The refusal for ``value``, or None when it is valid (already of the right type)."""
        if value is None:
            return None if self.nullable else self.message()
        if self.kind is bool:
            return None if isinstance(value, bool) else self.message()
        if self.kind is str:
            if not isinstance(value, str):
                return self.message()
            if self.choices and value not in self.choices:
                return self.message()
            if self.max_length is not None and len(value) > self.max_length:
                return self.message()
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.message()
        if not math.isfinite(value) or (self.kind is int and value != int(value)):
            return self.message()
        below = value <= self.low if self.open_low else value < self.low
        above = value >= self.high if self.open_high else value > self.high
        return self.message() if below or above else None

    def clean(self, value: Any, *, error: type[AppError] = AppError) -> Any:
        """``value`` checked and converted to the parameter's type; raises ``error`` naming it."""
        if self.kind in (int, float) and isinstance(value, str):
            try:
                value = self.kind(value.strip())
            except ValueError:
                raise error(self.message(), field=self.name) from None
        if (message := self.problem(value)) is not None:
            raise error(message, field=self.name)
        return value if value is None or self.kind is bool else self.kind(value)

    # --- the doors ------------------------------------------------------------------------------

    def form_field(self, **overrides):
        """A Django form field that refuses what ``problem`` refuses, with its message."""
        from django import forms
        from django.core.exceptions import ValidationError

        def check(value):
            if (message := self.problem(value)) is not None:
                raise ValidationError(message, code="range")

        # Never required: a field left empty takes the default (``form_values`` drops it).
        common = {
            "help_text": self.help,
            "required": False,
            "initial": self.default,
            "validators": [check],
            "error_messages": {"invalid": self.message(), "invalid_choice": self.message()},
        }
        common.update(overrides)
        if self.kind is bool:
            return forms.BooleanField(**common)
        if self.choices:
            return forms.ChoiceField(choices=[(c, c) for c in self.choices], **common)
        if self.kind is str:
            return forms.CharField(max_length=self.max_length, **common)
        form_class = forms.IntegerField if self.kind is int else forms.FloatField
        form_field = form_class(**common)
        form_field.widget.attrs.update(_html_bounds(self))
        return form_field

    def serializer_field(self, *, with_default: bool = True, **overrides):
        """A DRF field that refuses what ``problem`` refuses, with its message; the schema shows
        its range, default and nullability."""
        from rest_framework import serializers

        def check(value):
            if (message := self.problem(value)) is not None:
                raise serializers.ValidationError(message, code="range")

        messages = {"invalid": self.message(), "required": self.message(),
                    "null": self.message(), "max_string_length": self.message()}  # fmt: skip
        common = {"help_text": self.help, "validators": [check], "error_messages": messages}
        if self.nullable:
            common["allow_null"] = True
        if with_default:
            common["default"] = self.default
        else:
            common["required"] = False
        common.update(overrides)
        if self.kind is bool:
            return serializers.BooleanField(**common)
        if self.choices:
            messages["invalid_choice"] = self.message()
            return serializers.ChoiceField(choices=self.choices, **common)
        if self.kind is str:
            return serializers.CharField(max_length=self.max_length, allow_blank=True, **common)
        drf_class = serializers.IntegerField if self.kind is int else serializers.FloatField
        drf_field = drf_class(**common)
        # Shown in the schema as minimum / maximum; the check above enforces them.
        drf_field.min_value, drf_field.max_value = self.low, self.high
        return drf_field

    def flag(self) -> str:
        return "--" + (self.cli or self.name).replace("_", "-")

    def add_argument(self, parser, *, default: Any = _UNSET) -> None:
        """The command-line option: converts the text to the type; the service checks the range,
        so the command prints the same message as the other doors."""
        default = self.default if default is _UNSET else default
        if self.kind is bool:
            parser.add_argument(self.flag(), dest=self.name, action="store_true", help=self.help)
            return
        shown = "" if default is None else f" (default {default})"
        expected = self.expectation()
        kwargs = {
            "dest": self.name,
            "default": default,
            "help": f"{self.help} {expected[0].upper()}{expected[1:]}{shown}.".strip(),
        }
        if self.choices:  # listed, not enforced by argparse: the service refuses with its message
            kwargs["metavar"] = "{" + ",".join(self.choices) + "}"
        elif self.kind in (int, float):
            kwargs["type"] = _number_type(self)
            kwargs["metavar"] = self.name.upper()
        parser.add_argument(self.flag(), **kwargs)


def _number_type(param: Param):
    """argparse type: any text becomes a number or is passed on for the service to refuse."""

    def convert(text: str):
        try:
            return param.kind(text)
        except ValueError:
            return text  # Param.clean refuses it with the parameter's message

    convert.__name__ = param.kind.__name__
    return convert


def _html_bounds(param: Param) -> dict:
    attrs = {"min": _fmt(param.low), "max": _fmt(param.high)}
    if param.kind is float:
        attrs["step"] = "any"
    return attrs


def _fmt(number: float | None) -> str:
    if number is None:
        return ""
    if float(number).is_integer():
        return str(int(number))
    return repr(number)


@dataclass(frozen=True)
class ParamSet:
    """An ordered, immutable set of parameters (one schema per door-crossing action)."""

    params: tuple[Param, ...]

    def __iter__(self):
        return iter(self.params)

    def __contains__(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def clean(
        self, values: dict[str, Any], *, partial: bool = False, error: type[AppError] = AppError
    ) -> dict[str, Any]:
        """Every value checked and converted (missing ones take their defaults unless
        ``partial``); raises ``error`` naming the first bad or unknown parameter."""
        unknown = sorted(set(values) - set(self.names()))
        if unknown:
            raise error(
                f"{unknown[0]}: unknown parameter; use {', '.join(self.names())}.",
                field=unknown[0],
            )
        cleaned = {}
        for param in self.params:
            if param.name in values:
                cleaned[param.name] = param.clean(values[param.name], error=error)
            elif not partial:
                cleaned[param.name] = param.default
        return cleaned

    def form_values(self, cleaned_data: dict) -> dict[str, Any]:
        """This set's values from a form's cleaned data; empty fields are left out (defaults)."""
        return {
            name: value
            for name, value in cleaned_data.items()
            if name in self and value is not None and value != ""
        }

    def form_fields(self, **overrides_by_name) -> dict:
        return {p.name: p.form_field(**overrides_by_name.get(p.name, {})) for p in self.params}

    def serializer_fields(self, *, with_default: bool = True) -> dict:
        return {p.name: p.serializer_field(with_default=with_default) for p in self.params}

    def add_arguments(self, parser, *, defaults: bool = True) -> None:
        for param in self.params:
            param.add_argument(parser, default=param.default if defaults else None)
