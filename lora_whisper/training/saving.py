"""Writing a trained plan as a run directory (adapters/run.py) that inference and evaluation load.

Adapter recipes write peft-format experts (`save_run`). Full fine-tuning has no adapters: the
whole model goes to run/model/ as a plain transformers Whisper (`save_full_model`).
"""
from __future__ import annotations

from pathlib import Path

from lora_whisper.adapters.run import save_full_model, save_run


def save_plan(plan, dest: str | Path, languages: list[str], provenance: dict) -> Path:
    dest = Path(dest)
    if plan.bank is None:
        return save_full_model(dest, plan.backbone, languages, {"recipe": plan.recipe, **provenance})
    prov = {name: {"recipe": plan.recipe, **provenance, **plan.expert_provenance.get(name, {})}
            for name in plan.trained}
    if plan.route_all_to is not None:
        # One expert serves every language: say which, so a loader can route them all to it.
        prov[plan.route_all_to].update(route_all=True, languages=list(languages))
    save_run(dest, plan.bank, plan.backbone, provenance=prov, only=plan.save_experts)
    return dest
