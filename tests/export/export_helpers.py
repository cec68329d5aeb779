"""Build a run with random non-zero experts (de, en) and a MoE language (pl) on any backbone."""
from __future__ import annotations

from pathlib import Path



def make_run(backbone, run_dir: Path, std: float, seed: int = 0) -> Path:
    """Inject experts into `backbone.model` (which then carries them) and save the run."""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.run import save_run
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(backbone.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en", "pl"], seed=seed)
    perturb_experts(bank, std, seed + 1)
    save_run(run_dir, bank, backbone, {"pl": {"init": "moe", "moe": {"experts": {"de": 0.6, "en": 0.15, "pl": 0.25}}}})
    return run_dir
