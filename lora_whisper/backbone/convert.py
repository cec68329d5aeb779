"""CTranslate2 Whisper weights -> a transformers `WhisperForConditionalGeneration` state dict.

The mapping is exact (strict load): CT2 fuses self-attention q|k|v into `linear_0` and
cross-attention k|v into `linear_1`; k has no bias in transformers (CT2 stores zeros).
"""
from __future__ import annotations

import re

import numpy as np
import torch
from transformers import WhisperConfig

_LN = {"gamma": "weight", "beta": "bias"}


def _t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).to(dtype)  # the mmap-like buffer is read-only


def whisper_config_from_ct2(v: dict[str, np.ndarray], ct2_config: dict) -> WhisperConfig:
    d_model = v["encoder/conv1/weight"].shape[0]
    n_mels = v["encoder/conv1/weight"].shape[1]
    vocab, _ = v["decoder/embeddings/weight"].shape
    enc_layers = 1 + max(int(m.group(1)) for k in v if (m := re.match(r"encoder/layer_(\d+)/", k)))
    dec_layers = 1 + max(int(m.group(1)) for k in v if (m := re.match(r"decoder/layer_(\d+)/", k)))
    # Multilingual ids (transformers' WhisperConfig() defaults are the English-only ones).
    multilingual = vocab >= 51865
    eot = 50257 if multilingual else 50256
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=n_mels,
        d_model=d_model,
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=eot + 1,
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, eot])),
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        tie_word_embeddings=True,
    )


def state_dict_from_ct2(v: dict[str, np.ndarray], config: WhisperConfig,
                        dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    d = config.d_model

    def ln(dst: str, src: str) -> None:
        for ct2_name, hf_name in _LN.items():
            sd[f"{dst}.{hf_name}"] = _t(v[f"{src}/{ct2_name}"], dtype)

    def lin(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = _t(v[f"{src}/weight"], dtype)
        sd[f"{dst}.bias"] = _t(v[f"{src}/bias"], dtype)

    def fused_qkv(dst: str, src: str, names: tuple[str, ...]) -> None:
        w = _t(v[f"{src}/weight"], dtype)
        b = _t(v[f"{src}/bias"], dtype)
        for i, name in enumerate(names):
            sd[f"{dst}.{name}.weight"] = w[i * d:(i + 1) * d].clone()
            if name != "k_proj":  # transformers' k_proj has no bias; CT2 stores zeros
                sd[f"{dst}.{name}.bias"] = b[i * d:(i + 1) * d].clone()

    for side in ("encoder", "decoder"):
        p = f"model.{side}"
        sd[f"{p}.embed_positions.weight"] = _t(v[f"{side}/position_encodings/encodings"], dtype)
        ln(f"{p}.layer_norm", f"{side}/layer_norm")
        n = config.encoder_layers if side == "encoder" else config.decoder_layers
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"{p}.layers.{i}"
            ln(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
            fused_qkv(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            lin(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
            if side == "decoder":
                ln(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
                lin(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
                fused_qkv(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
                lin(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            ln(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
            lin(f"{dst}.fc1", f"{src}/ffn/linear_0")
            lin(f"{dst}.fc2", f"{src}/ffn/linear_1")
    for conv in ("conv1", "conv2"):
        lin(f"model.encoder.{conv}", f"encoder/{conv}")
    sd["model.decoder.embed_tokens.weight"] = _t(v["decoder/embeddings/weight"], dtype)
    return sd


