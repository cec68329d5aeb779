"""Flags several commands share (a module starting with "_" is not a command)."""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing

from lora_whisper.backbone import COMPUTE_TYPES  # torch-free: the parser builds fast
from lora_whisper.errors import UserError
from lora_whisper.inference.routing_policy import RoutingPolicy


def add_compute_type(p) -> None:
    p.add_argument("--compute-type", choices=COMPUTE_TYPES, default="float32",
                   help="int8: CPU inference with int8 decoder layers (per-token scales, as "
                        "CTranslate2) and a bfloat16 encoder where the CPU has it; adapters stay float32")


def _whole(text: str, what: str, ok, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch of 0 or -1 threads is a typo, not a setting)."""
    return _whole(text, "a whole number", lambda v: v >= 1, "at least 1")


def port_number(text: str) -> int:
    """argparse type: a TCP port (0 lets the system choose one)."""
    return _whole(text, "a port number", lambda v: 0 <= v <= 65535, "between 0 and 65535")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value
def add_routing(p, candidates_flag: str = "--languages") -> None:
    """Candidate languages, and the routing policy's flags (from RoutingPolicy's fields)."""
    p.add_argument(candidates_flag, dest="candidates", default=None,
                   help="candidate languages for detection, e.g. pl,en (default: the run's experts' "
                        "languages, all without a run; 'all': every Whisper language)")
    add_config_flags(p, RoutingPolicy, group="routing")


def routing_from_args(args):
    """(candidates, RoutingPolicy) from the flags `add_routing` adds; UserError on bad values."""
    changes = {k: v for k, v in config_overrides(args, RoutingPolicy).items() if v is not None}
    try:
        policy = dataclasses.replace(RoutingPolicy(), **changes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return args.candidates, policy


# -- flags generated from config dataclasses (lora_whisper/fields.py) -------------------------------
def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _nonnegative_int(text: str) -> int:
    return _whole(text, "a whole number", lambda v: v >= 0, "0 or more")


class _Alias(argparse.Action):
    """Stores like `store`, and says so when a former flag name was used."""

    def __init__(self, *args, aliases=(), **kwargs):
        self.aliases = tuple(aliases)
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.aliases:
            print(f"note: {option_string} is the former name of {self.option_strings[0]}; it is accepted "
                  f"until the next release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _flag_type(hint, minimum):
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) \
        if typing.get_origin(hint) in (types.UnionType, typing.Union) else hint
    if typing.get_origin(base) is tuple:
        return _float_list if typing.get_args(base)[:1] == (float,) else _comma_list
    if base is int:
        return positive_int if minimum == 1 else _nonnegative_int if minimum == 0 else int
    if base is float:
        return positive_float if minimum == 0 else float
    if base is bool:
        return bool
    return str


_METAVARS = {positive_int: "N", _nonnegative_int: "N", int: "N", positive_float: "X", float: "X",
             _comma_list: "A,B", _float_list: "X,Y"}


def config_flags(cls, exclude=()) -> list:
    """(field, flag, dest, type) for each field of dataclass `cls` that has a flag."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in exclude or not meta.get("cli", False):
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        out.append((f, flag, meta.get("dest") or f.name, _flag_type(hints[f.name], meta.get("minimum"))))
    return out


def add_config_flags(p, cls, exclude=(), group: str | None = None) -> None:
    """One flag per field of `cls` (a frozen config dataclass), from its metadata. Every flag
    defaults to None: a setting not given comes from --config or the dataclass's default."""
    target = p.add_argument_group(group) if group else p
    for f, flag, dest, kind in config_flags(cls, exclude):
        meta = f.metadata
        text = meta.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        if "default" not in text and default not in (None, "", ()) and kind is not bool:
            text += f" (default: {','.join(map(str, default)) if isinstance(default, tuple) else default})"
        text = text.replace("%", "%%")
        if meta.get("aliases"):
            text += f" [former name{'s' if len(meta['aliases']) > 1 else ''}: {', '.join(meta['aliases'])}]"
        if meta.get("cli") == "hidden":
            text = argparse.SUPPRESS
        if kind is bool:
            target.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        metavar = None if meta.get("choices") else _METAVARS.get(kind, dest.upper())
        target.add_argument(flag, *meta.get("aliases", ()), dest=dest, type=kind, default=None, metavar=metavar,
                            choices=meta.get("choices"), help=text, action=_Alias, aliases=meta.get("aliases", ()),
                            required=bool(meta.get("required")))


def config_overrides(args, *classes, exclude=()) -> dict:
    """{override key: value} of the generated flags (None where a flag was not given)."""
    return {dest: getattr(args, dest, None) for cls in classes for _, _, dest, _ in config_flags(cls, exclude)}
