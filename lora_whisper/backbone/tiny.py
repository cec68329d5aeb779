"""A tiny random-weight multilingual Whisper, for tests and quick dry runs of the CLI.

Same tokenizer and special-token ids as the real multilingual models, so every code path
(prompts, language ids, adapters, export) is exercised; only the sizes are small.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from lora_whisper.backbone.load import Backbone, embedded_files, load_backbone


def tiny_config(d_model: int = 64, layers: int = 2, heads: int = 4, n_mels: int = 80) -> WhisperConfig:
    return WhisperConfig(
        vocab_size=51865, num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=50257, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
        begin_suppress_tokens=[220, 50257], suppress_tokens=[], tie_word_embeddings=True,
    )


def save_tiny(out: str | Path, seed: int = 0, **kw) -> Path:
    """Write a tiny random Whisper as a transformers directory (config, safetensors, tokenizer)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(tiny_config(**kw))
    model.save_pretrained(out)
    d1, _ = embedded_files()
    shutil.copy(d1 / "tokenizer.json", out / "tokenizer.json")
    return out


def tiny_backbone(out: str | Path, seed: int = 0, **kw) -> Backbone:
    return load_backbone(str(save_tiny(out, seed=seed, **kw)))
