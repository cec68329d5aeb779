"""The README cannot rot: every `lora-whisper` command in it parses with today's CLI (every
subcommand and flag exists, every value is accepted), its Python examples compile, and
every benchmark script it names exists. The commands' behaviour is tested end to end in the
module tests (tests/cli, tests/training, tests/expansion, tests/serving, tests/export, ...).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lora_whisper.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[list[str]]:
    cmds = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("lora-whisper "):
                cmds.append(shlex.split(line)[1:])
            elif "-m lora_whisper.cli " in line and "..." not in line:
                argv = shlex.split(line.split("-m lora_whisper.cli ", 1)[1])
                cmds.append(argv[1:] if argv[:1] == ["--"] else argv)   # "--": torchrun's separator
    return cmds


def test_readme_opens_with_the_two_setup_commands():
    head = README.read_text().splitlines()[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


@pytest.mark.parametrize("argv", _commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_command_parses(argv):
    parser = build_parser()
    args = parser.parse_args(argv)  # exits (SystemExit) on an unknown command or flag
    assert callable(args.func)


def test_readme_has_many_commands():
    assert len(_commands()) >= 12


def test_readme_python_examples_compile():
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        compile(code, "README.md", "exec")


def test_readme_benchmark_scripts_exist():
    root = README.parent
    for script in re.findall(r"python (benchmarks/\w+\.py)", README.read_text()):
        assert (root / script).exists(), script
