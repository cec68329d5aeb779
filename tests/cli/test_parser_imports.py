"""The parser is built from the config dataclasses without importing torch or transformers
(lora_whisper/lazy.py): `lora-whisper --help` answers at once, and the lazy package exports
still resolve."""
from __future__ import annotations

import subprocess
import sys


def test_building_the_parser_imports_neither_torch_nor_transformers():
    code = ("import sys, lora_whisper.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_lazy_exports_resolve_to_their_modules():
    import pkgutil

    import lora_whisper.adapters as adapters
    import lora_whisper.expansion as expansion
    import lora_whisper.training as training
    # the submodules first: importing one binds its name on the package, so an export must
    # never share a submodule's name (it would resolve to the module)
    from lora_whisper.adapters.model import LoRABank
    from lora_whisper.expansion.add import add_language
    from lora_whisper.training.run import train

    for package in (adapters, expansion, training):
        assert not set(package.__all__) & {m.name for m in pkgutil.iter_modules(package.__path__)}

    assert (adapters.LoRABank, expansion.add_language, training.train) == (LoRABank, add_language, train)
    for package in (adapters, expansion, training):
        assert all(getattr(package, name) is not None for name in package.__all__)
    try:
        adapters.no_such_name
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")
