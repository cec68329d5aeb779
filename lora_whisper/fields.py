"""Config fields that carry their command-line flag, as peft's LoraConfig fields carry their
help: the flag's name, help and checks live with the setting, and cli/_options.py builds the
parser from them, so a new setting is one line here and every command that trains offers it.
"""
from __future__ import annotations

from dataclasses import field
from typing import Any


def setting(default: Any = None, help: str = "", *, factory=None, flag: str | None = None,
            dest: str | None = None, aliases: tuple[str, ...] = (), minimum: float | None = None,
            choices=None, required: bool = False, cli: bool | str = True):
    """A dataclass field with its flag's metadata.

    flag: the flag (default `--field-name`); dest: the override key it fills (default the
    field's name); aliases: former flag names, still accepted for one release, with a note;
    minimum: the smallest value allowed (1 for counts); required: the command needs the flag
    (the dataclass may still have a default, for the Python API); cli: False = no flag, "hidden" = a
    flag left out of --help (debugging aids).
    """
    meta = {"help": help, "flag": flag, "dest": dest, "aliases": tuple(aliases), "minimum": minimum,
            "choices": choices, "required": required, "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)
