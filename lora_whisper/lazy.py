"""Package exports imported on first use (PEP 562).

The CLI's parser reads the config dataclasses (LoraSpec, TrainConfig, AddLanguageConfig) to
generate its flags; they are torch-free, but the packages holding them also export the bank,
the loop and add-language, which import torch and transformers. Eager package imports made
`lora-whisper --help` load all of it (seconds); lazy ones keep `from lora_whisper.adapters
import LoRABank` working and cost nothing until used.
"""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """A module `__getattr__` for `package`: name -> the submodule (relative) that defines it."""
    def __getattr__(name: str):
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)   # found directly next time
        return value

    return __getattr__
