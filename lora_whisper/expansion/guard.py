"""Proof that adding a language leaves every existing expert as it was.

`save_run(..., only=[new])` does not write other experts; this guard does not take that on
trust. Before training it checks that each existing expert's file matches the sha256 that
the run file records (a run already corrupted is refused), and after saving it checks
both again, plus the adapter_config.json bytes and the order of the experts. On a mismatch
the run file is put back as it was and the command fails.
"""
from __future__ import annotations

from pathlib import Path

from lora_whisper.adapters.model import AdapterError
from lora_whisper.adapters.run import RUN_FILE, expert_fingerprints, restore, snapshot


class ExpertGuard:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.before = expert_fingerprints(self.run_dir)
        bad = [n for n, f in self.before.items() if f["weights"] != f["recorded"]]
        if bad:
            raise AdapterError(f"{self.run_dir}: expert(s) {', '.join(bad)} do not match the checksum in "
                               f"{RUN_FILE} (corrupted or modified); refusing to add a language to it")
        self.saved = snapshot(self.run_dir)

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
        restore(self.run_dir, self.saved)
