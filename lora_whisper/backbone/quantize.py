"""The `int8` compute type for CPU inference: faster-whisper's speed, without the per-batch
activation scale of torch's dynamic int8 making one row's transcript depend on its batch mates.

- Decoder linear layers (run once per token) hold int8 weights (per output channel) and
  quantise activations **per token**, as CTranslate2 does. torch's dynamic int8 kernels
  (fbgemm) quantise the whole input with one scale, which would couple the rows of a batch:
  so each token is first mapped affinely onto [-1, 1] (undone exactly after the matmul, the
  shift through the weight's row sums), and one pinned row fixes the tensor's range at
  exactly [-1, 1]. The integer matmul is exact, so every row's result is its own.
- The encoder, and the decoder's cross-attention key/value projections (run once per window
  over 1500 positions), run in bfloat16 where the CPU has it natively (AVX512-BF16/AMX):
  as fast as int8 there, with no scale shared between rows; a padded row still agrees with
  the same row decoded alone only to bfloat16 rounding (rows of equal length: exactly; the
  float32 encoder differs there by ~5e-7). Elsewhere they stay float32.
- The LoRA experts stay float32 and are routed as before.

Applied when a backbone is loaded (`load_backbone(..., compute_type=)`, `open_run`, which
injects the experts first), and recorded on it as `Backbone.compute_type`: the conversion
is in place, so whoever holds the backbone sees what it computes in.

Measured on the 2-core AMD EPYC here (whisper-base, batch 8 of 30 s windows, 1 thread):
encoder 4.37 s (torch dynamic int8) vs 3.88 s (bfloat16); per-token quantisation costs about
10 us per layer call at decoding batch sizes.

Why not torchao: its CPU int8 path wants torch.compile; this needs nothing beyond torch.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from lora_whisper.backbone import check_compute_type


class Int8Linear(nn.Module):
    """nn.Linear with int8 weights and per-token int8 activations (inference only)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch's deprecation notice for quantized tensors
            qw = torch.quantize_per_channel(w, scales, torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)
        self._packed = torch.ops.quantized.linear_prepack(qw, None)
        self.register_buffer("row_sums", qw.dequantize().sum(dim=1), persistent=False)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float(), persistent=False)
        pin = torch.zeros(1, self.in_features)
        pin[0, 0], pin[0, -1] = -1.0, 1.0
        self.register_buffer("pin", pin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, self.in_features).float()
        lo, hi = torch.aminmax(x, dim=-1, keepdim=True)
        center = (hi + lo) * 0.5
        half = ((hi - lo) * 0.5).clamp_(min=1e-12)
        unit = ((x - center) / half).clamp_(-1.0, 1.0)
        y = torch.ops.quantized.linear_dynamic(torch.cat([unit, self.pin]), self._packed, True)[:-1]
        out = torch.addcmul(y * half, center, self.row_sums)   # W(x) = half * W(unit) + center * W(1)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-token"


def native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _swap_linears(module: nn.Module, skip: set[int]) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear) and id(child) not in skip:
            setattr(module, name, Int8Linear(child))
        else:
            _swap_linears(child, skip)


@torch.no_grad()
def quantize_int8(model: nn.Module) -> nn.Module:
    """Convert a Whisper (with or without injected experts) for the int8 compute type, in place."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("compute type int8 is for CPU; on a GPU use float32 (or a half-precision backbone)")
    decoder = model.model.decoder
    cross_kv = [p for layer in decoder.layers for p in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)]
    if native_bf16():
        # Experts (any module's lora_A/lora_B) stay float32: they were trained in it.
        experts = {id(p) for m in model.modules() if hasattr(m, "lora_A") for p in [*m.lora_A, *m.lora_B]}
        for part in [model.model.encoder, *(_base(p) for p in cross_kv)]:
            for p in part.parameters():
                if id(p) not in experts:
                    p.data = p.data.to(torch.bfloat16)
        # The cross k/v projections now give bfloat16, and init_cache keeps their dtype.
    # Inside a LoRA wrapper the frozen base layer is the nn.Linear swapped; the experts stay.
    keep_float = {id(_base(p)) for p in cross_kv}
    _swap_linears(decoder, keep_float)
    if isinstance(model.proj_out, nn.Linear):
        model.proj_out = Int8Linear(model.proj_out)
    model.requires_grad_(False)
    return model


def _base(layer: nn.Module) -> nn.Module:
    return getattr(layer, "base_layer", layer)


def prepare(backbone, compute_type: str):
    """Make a loaded Backbone (experts injected or not) compute in `compute_type`, in place,
    and record it; for callers holding one in memory (tests, evaluation). Loading does it
    with `load_backbone(..., compute_type=)` or `adapters.run.open_run(..., compute_type=)`."""
    check_compute_type(compute_type)
    if compute_type == backbone.compute_type:
        return backbone
    if backbone.compute_type != "float32":
        raise ValueError(f"this backbone already computes in {backbone.compute_type}; "
                         f"load it again for {compute_type}")
    quantize_int8(backbone.model)
    backbone.compute_type = compute_type
    return backbone
