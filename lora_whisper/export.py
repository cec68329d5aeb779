"""Merge one language's expert (or its MoE mixture) into a plain Whisper and write it out.

`hf`: a transformers directory (safetensors, config, generation config with the suppress
ids, tokenizer files, preprocessor config) that `WhisperForConditionalGeneration`,
`load_backbone` and peft-free tools load as an ordinary Whisper.
`ct2`: a CTranslate2 directory that faster-whisper loads. ctranslate2's own Whisper loader
builds the model spec from our merged in-memory model, so no hub access and no
transformers tokenizer round-trip is needed.

merged W = W + sum_k w_k * (alpha/r) * B_k A_k   (one expert: the single term, w = 1).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from ctranslate2.converters.transformers import WhisperLoader
from transformers import WhisperFeatureExtractor, WhisperTokenizerFast

from lora_whisper.adapters.run import load_run, read_run
from lora_whisper.backbone.load import EMBEDDED, EXPORT_FILE, embedded_ct2_dir, generation_config, load_backbone
from lora_whisper.errors import UserError

FORMATS = ("hf", "ct2")
QUANTIZATIONS = ("float32", "int8", "int8_float32", "float16", "int8_float16", "bfloat16")


class ExportError(UserError):
    pass


def merged_model(run_dir: str | Path, language: str, backbone_source: str | None = None):
    """-> (plain Backbone whose weights have `language` baked in, RunInfo, {expert: weight}).

    The experts and weights are those the run routes `language` with (`RunInfo.route`: its own
    expert, its MoE mixture, or a shared-LoRA run's one expert), so the export decodes as the run does.
    """
    info = read_run(run_dir)
    backbone = load_backbone(backbone_source or info.backbone_source)
    bank, info = load_run(run_dir, backbone)
    mix = info.route(language, bank.experts)
    if not mix:
        raise ExportError(f"{run_dir}: no expert for {language!r} to export (this run has: "
                          f"{', '.join(info.experts) or 'none'})")
    model = backbone.model
    with torch.no_grad():
        for path, layer in bank.layers.items():
            base = layer.base_layer
            delta = sum(float(w) * layer.delta_weight(bank.index(name)) for name, w in mix.items())
            base.weight.add_(delta.to(base.weight.dtype))
            parent, _, leaf = path.rpartition(".")
            setattr(model.get_submodule(parent), leaf, base)  # unwrap: a plain nn.Linear again
    return backbone, info, mix


def _alignment_heads(backbone) -> list[list[int]]:
    """whisper-base's heads when exporting the embedded model; else the last half of layers
    (ctranslate2's own default), which only word timestamps use."""
    if backbone.source == EMBEDDED:
        cfg = json.loads((embedded_ct2_dir() / "config.json").read_text())
        if cfg.get("alignment_heads"):
            return [list(map(int, h)) for h in cfg["alignment_heads"]]
    c = backbone.config
    return [[l, h] for l in range(c.decoder_layers // 2, c.decoder_layers) for h in range(c.decoder_attention_heads)]


def _generation_config(backbone):
    return generation_config(backbone.vocab, backbone.config, _alignment_heads(backbone))


def _write_tokenizer_files(backbone, out: Path) -> None:
    """tokenizer.json (what our loader and faster-whisper read) plus the hub-style files
    transformers' WhisperProcessor wants."""
    backbone.vocab.tokenizer.save(str(out / "tokenizer.json"))
    try:
        tok = WhisperTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
        tok.save_pretrained(str(out))
        backbone.vocab.tokenizer.save(str(out / "tokenizer.json"))  # keep the original bytes' meaning
    except Exception:  # noqa: BLE001  (the extra files are a convenience; tokenizer.json is enough)
        pass
    WhisperFeatureExtractor(feature_size=backbone.n_mels).save_pretrained(str(out))


def _vocabulary_tokens(backbone) -> list[str]:
    tok = backbone.vocab.tokenizer
    n = tok.get_vocab_size(with_added_tokens=True)
    tokens = [tok.id_to_token(i) for i in range(n)]
    # ctranslate2 expects one entry per logit: timestamp tokens fill the rest, as its converter does.
    tokens += ["<|%.2f|>" % (i * 0.02) for i in range(backbone.config.vocab_size - n)]
    return tokens


def _write_hf(backbone, out: Path) -> None:
    model = backbone.model
    model.generation_config = _generation_config(backbone)
    model.config.suppress_tokens = list(backbone.vocab.suppress)
    model.config.begin_suppress_tokens = list(backbone.vocab.suppress_begin)
    model.save_pretrained(str(out), safe_serialization=True)
    _write_tokenizer_files(backbone, out)


def _write_ct2(backbone, out: Path, quantization: str) -> None:
    model = backbone.model
    model.generation_config = _generation_config(backbone)
    loader = WhisperLoader()
    spec = loader.get_model_spec(model)
    g = model.generation_config
    spec.config.suppress_ids = list(g.suppress_tokens)
    spec.config.suppress_ids_begin = list(g.begin_suppress_tokens)
    spec.config.lang_ids = sorted(g.lang_to_id.values())
    spec.config.alignment_heads = [list(h) for h in g.alignment_heads]
    spec.register_vocabulary(_vocabulary_tokens(backbone))
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(out))
    backbone.vocab.tokenizer.save(str(out / "tokenizer.json"))
    WhisperFeatureExtractor(feature_size=backbone.n_mels).save_pretrained(str(out))


def export(run_dir: str | Path, language: str, out: str | Path, fmt: str = "hf",
           quantization: str | None = None, backbone_source: str | None = None,
           force: bool = False) -> Path:
    """Write `language`'s merged Whisper to `out` (written to a temporary sibling, then renamed)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if fmt == "hf" and quantization not in (None, "float32"):
        raise ExportError("--quantization applies to --format ct2 only (hf is written in float32)")
    quantization = quantization or "float32"
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; use one of: {', '.join(QUANTIZATIONS)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise ExportError(f"{out}: exists and is not empty (pass --force to replace it)")
    backbone, info, mix = merged_model(run_dir, language, backbone_source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        if fmt == "hf":
            _write_hf(backbone, tmp)
        else:
            _write_ct2(backbone, tmp, quantization)
        meta = {
            "format": fmt, "quantization": quantization if fmt == "ct2" else "float32",
            "language": language, "experts": mix, "run": str(Path(run_dir).resolve()),
            "backbone": {"source": info.backbone_source, "fingerprint": info.backbone_fingerprint},
            "lora": info.data["lora"],
            "adapters": {n: info.entry(n)["sha256"] for n in mix},
            "provenance": {n: info.provenance(n) for n in mix},
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
