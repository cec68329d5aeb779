"""A small two-language corpus of espeak-ng clips (about a second each) with manifests."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SENTENCES = {
    "pl": ["dzień dobry", "dziękuję bardzo", "jak się masz", "do widzenia", "dobranoc", "tak i nie"],
    "pt": ["bom dia", "muito obrigado", "como vai você", "até logo", "boa noite", "sim e não"],
}


def write_corpus(root: Path, per_language: int = 4, dev_per_language: int = 1) -> dict[str, Path]:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (make test installs it)")
    root.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "dev": []}
    for lang, texts in SENTENCES.items():
        for i, text in enumerate(texts[: per_language + dev_per_language]):
            split = "train" if i < per_language else "dev"
            wav = root / f"{lang}-{i}.wav"
            subprocess.run(["espeak-ng", "-v", lang, "-s", "220", "-w", str(wav), text], check=True)
            rows[split].append({"id": f"{lang}-{i}", "audio": wav.name, "text": text, "language": lang})
    out = {}
    for split, recs in rows.items():
        out[split] = root / f"{split}.jsonl"
        out[split].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture()
def config_for(corpus, tiny_dir):
    """Settings for a tiny run: 2 languages x 4 clips, batch 4, a few steps, no dropout noise
    from bf16, dev decoding capped at 4 tokens."""
    from lora_whisper.training.config import TrainConfig

    def make(out: Path, **kw) -> TrainConfig:
        base = dict(data=str(corpus["train"]), dev=str(corpus["dev"]), out=str(out),
                    backbone=str(tiny_dir), batch_size=4, max_steps=4, eval_every=2,
                    checkpoint_every=2, log_every=1, num_workers=0, eval_max_new_tokens=4,
                    bf16=False, progress=False, lr=1e-3)
        base.update(kw)
        lora = {k: base.pop(k) for k in ("rank", "alpha", "lora_dropout") if k in base}
        lora.setdefault("rank", 4)
        return TrainConfig(**base).with_overrides(**lora)

    return make


def read_adapters(run_dir: Path) -> dict:
    """Every expert's tensors of a run, keyed 'expert/key'."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(run_dir, "adapters").glob("*/adapter_model.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.parent.name}/{k}"] = v
    return out


@pytest.fixture()
def adapters_of():
    return read_adapters
