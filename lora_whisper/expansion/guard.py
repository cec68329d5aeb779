"""Proof that adding a language leaves every existing expert as it was.

`save_run(..., only=[new])` does not write other experts; this guard does not take that on
trust. Before training it checks that each existing expert's file matches the sha256 that
the run file records (a run already corrupted is refused), and after saving it checks
both again, plus the adapter_config.json bytes and the order of the experts. On a mismatch
the run file is put back as it was and the command fails.
"""
from __future__ import annotations

from pathlib import Path

from lora_whisper.adapters.files import CONFIG_FILE, WEIGHTS_FILE
from lora_whisper.adapters.model import AdapterError
from lora_whisper.adapters.run import RUN_FILE, read_run, run_file
from lora_whisper.atomic import atomic_write_bytes
from lora_whisper.backbone.load import sha256_file


def _sha(path: Path) -> str | None:
    return sha256_file(path) if path.exists() else None


def expert_fingerprints(run_dir: str | Path) -> dict[str, dict[str, str | None]]:
    """Per expert: the sha256 recorded in the run file, and that of its files on disk."""
    info = read_run(run_dir)
    out = {}
    for name in info.experts:
        adir = info.adapter_dir(name)
        out[name] = {"recorded": info.entry(name)["sha256"], "weights": _sha(adir / WEIGHTS_FILE),
                     "config": _sha(adir / CONFIG_FILE)}
    return out


class ExpertGuard:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.before = expert_fingerprints(self.run_dir)
        bad = [n for n, f in self.before.items() if f["weights"] != f["recorded"]]
        if bad:
            raise AdapterError(f"{self.run_dir}: expert(s) {', '.join(bad)} do not match the checksum in "
                               f"{RUN_FILE} (corrupted or modified); refusing to add a language to it")
        self.run_file = run_file(self.run_dir).read_bytes()

    @property
    def experts(self) -> list[str]:
        return list(self.before)

    def changed(self) -> list[str]:
        after = expert_fingerprints(self.run_dir)
        names = list(after)
        changed = [n for n, f in self.before.items() if after.get(n) != f]
        if names[: len(self.before)] != list(self.before):
            changed.append("(expert order)")
        return changed

    def check(self) -> None:
        """Raise (after restoring the run file) if any existing expert changed."""
        changed = self.changed()
        if changed:
            self.restore()
            raise AdapterError(f"{self.run_dir}: existing expert(s) {', '.join(changed)} changed while adding "
                               f"a language; {RUN_FILE} was restored, the new expert is not registered")

    def restore(self) -> None:
        atomic_write_bytes(run_file(self.run_dir), self.run_file)
