"""LanguageLoRALinear: a frozen nn.Linear with one LoRA expert per language, routed per row.

Why ours and not peft's `lora.Linear`: peft switches the active adapter per call, and its
mixed batches (`adapter_names=`) exist only for inference. We train a whole bank of
per-language experts in one pass over a mixed-language batch, and mix experts per row (MoE),
so routing is per row, in training and in generation. The numerics of one expert are
peft's exactly (`base(x) + B(A(dropout(x))) * alpha/r`, same init), which the tests check.

A layer holds no routing: each call reads the caller's `routed(...)` block (routing.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lora_whisper.adapters.routing import Routing, current_scope


class LanguageLoRALinear(nn.Module):
    def __init__(self, base_layer: nn.Linear, r: int, scale: float, dropout: float):
        super().__init__()
        self.base_layer = base_layer
        self.r = r
        self.scale = scale
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dropout_p = float(dropout)
        # The training fast path (see `_train_input`); False gives the plain peft-style path,
        # kept for the side-by-side speed benchmark and the numerics tests.
        self.fast_train = True
        # Separate Parameters per expert, so one can train while the others stay frozen.
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()
        self.merged_expert: int | None = None
        self._unmerged_weight: torch.Tensor | None = None

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> torch.Tensor:  # code that reads `.weight` of a projection still works
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base_layer.bias

    @property
    def n_experts(self) -> int:
        return len(self.lora_A)

    def add_expert(self, generator: torch.Generator | None = None) -> int:
        """Append an expert initialised as peft does (A kaiming-uniform, B zero); its index."""
        w = self.base_layer.weight
        # Half-precision backbones still keep adapters in fp32, as peft's autocast_adapter_dtype.
        dtype = torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype
        A = torch.empty(self.r, self.in_features, dtype=dtype)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5), generator=generator)
        B = torch.zeros(self.out_features, self.r, dtype=dtype)
        self.lora_A.append(nn.Parameter(A.to(w.device)))
        self.lora_B.append(nn.Parameter(B.to(w.device)))
        return self.n_experts - 1

    def delta_weight(self, expert: int) -> torch.Tensor:
        return (self.lora_B[expert] @ self.lora_A[expert]) * self.scale

    # -- serving: bake one expert into the base weight ----------------------------------
    @torch.no_grad()
    def merge(self, expert: int) -> None:
        if self.merged_expert is not None:
            raise RuntimeError(f"expert {self.merged_expert} is already merged; unmerge() first")
        w = self.base_layer.weight
        # Keep the original: subtracting the delta back would not be bit-exact.
        self._unmerged_weight = w.detach().clone()
        w.add_(self.delta_weight(expert).to(w.dtype))
        self.merged_expert = expert

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged_expert is None:
            return
        self.base_layer.weight.copy_(self._unmerged_weight)
        self._unmerged_weight = None
        self.merged_expert = None

    # -- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        scope = current_scope()
        fast = self._fast_path(x)
        if fast:
            # The cast autocast would make for the base layer anyway, made once and shared
            # with the experts (no fp32 round trip of the activations per expert product)
            # and with the next layers that read the same tensor (q, k and v read one layer
            # norm's output; every cross-attention k and v the encoder's output).
            dtype = torch.get_autocast_dtype(x.device.type)
            x = x.to(dtype) if scope is None else scope.cast_once(x, dtype)
            result = self._frozen_base(x) if not (args or kwargs) else self.base_layer(x, *args, **kwargs)
        else:
            result = self.base_layer(x, *args, **kwargs)
        routing = None if scope is None else scope.routing
        if self.merged_expert is not None:
            self._check_merged(routing)
            return result
        if routing is None or self.n_experts == 0:
            return result
        kind = routing.kind
        if kind == "bare":
            return result
        if kind == "single":
            return self._single(x, result, routing.expert, fast)
        if x.shape[0] != routing.batch_size:
            raise ValueError(f"LoRA routing is for {routing.batch_size} rows but the batch has {x.shape[0]}; "
                             "repeat_interleave/index_select the routing along with the batch")
        return self._per_row(x, result, routing, fast)

    # -- the training fast path -----------------------------------------------------------
    def _fast_path(self, x: torch.Tensor) -> bool:
        """Training under autocast on a CPU. There the plain path spends a third of a step on
        dropout (torch's CPU Bernoulli draws ~8 ns an element) and on casting activations to
        float32 for dropout and back to bfloat16 for the matmul (measured with torch.profiler,
        benchmarks/train_speed.py). The fast path computes the same thing: the expert sees the
        activations autocast gives it, with a keep mask of the same rate; the 1/(1-p) of
        inverted dropout is folded into the output scale instead of into the activations."""
        if not (self.fast_train and x.device.type == "cpu" and torch.is_grad_enabled()
                and torch.is_autocast_enabled("cpu")):
            return False
        return x.dtype in (torch.float32, torch.get_autocast_dtype("cpu"))

    def _frozen_base(self, x: torch.Tensor) -> torch.Tensor:
        """The base linear as autocast computes it, but with the frozen weight's low-precision
        copy made once, not at every call (autocast caches only weights that require grad)."""
        base = self.base_layer
        if type(base) is not nn.Linear or base.weight.requires_grad:
            return base(x)
        return F.linear(x, frozen_cast(base.weight, x.dtype),
                        None if base.bias is None else frozen_cast(base.bias, x.dtype))

    def _train_input(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(the expert's input after dropout, the factor to apply to its output)."""
        if not (self.dropout_p > 0 and self.lora_dropout.training):
            return x, 1.0
        # where(), not x * mask: a bool mask would be cast to x's dtype in forward and backward
        return (torch.where(keep_mask(x.shape, self.dropout_p), x, 0.0),
                1.0 / (1.0 - quantized_rate(self.dropout_p)))

    def _compute_dtype(self, x: torch.Tensor) -> torch.dtype:
        """The experts' own dtype (peft's rule: a half-precision base still adds float32
        adapters), except for bfloat16 inference (the int8 compute type's encoder), where
        casting every activation to float32 and back costs more than the base layer saves."""
        if x.dtype == torch.bfloat16 and not torch.is_grad_enabled():
            return torch.bfloat16
        return self.lora_A[0].dtype

    def _single(self, x, result, e, fast=False):
        if fast:
            xd, gain = self._train_input(x)
            # The scale goes on the r-wide intermediate: its backward then costs an r-wide
            # multiply, not an out-wide one.
            delta = F.linear(F.linear(xd, self.lora_A[e]) * (self.scale * gain), self.lora_B[e])
            return result.add_(delta.to(result.dtype))
        dtype = self._compute_dtype(x)
        A, B = self.lora_A[e].to(dtype), self.lora_B[e].to(dtype)
        delta = F.linear(F.linear(self.lora_dropout(x.to(dtype)), A), B)
        if delta.dtype != result.dtype:  # half-precision base without autocast: add in fp32, as peft
            return (result + delta * self.scale).to(result.dtype)
        # One fused op for "* scale" and "+": decode steps are short, so op count is the cost.
        return result.add_(delta, alpha=self.scale)  # result is the base layer's fresh output

    def _per_row(self, x, result, routing: Routing, fast=False):
        # Rows (T tokens each) with different experts: stack each row's A and B and use bmm.
        # Measured on CPU at batch 8: as fast as one shared expert for long rows (encoder),
        # ~1.5x faster than looping over experts for one-token rows (decoder steps).
        out_dtype = result.dtype
        squeeze = x.dim() == 2
        if squeeze:
            x, result = x.unsqueeze(1), result.unsqueeze(1)
        elif x.dim() != 3:
            raise ValueError(f"per-row LoRA routing expects [batch, tokens, features], got {tuple(x.shape)}")
        scale = self.scale
        if fast:
            dtype = x.dtype
            x, gain = self._train_input(x)
            scale = scale * gain
        else:
            dtype = self._compute_dtype(x)
            x = self.lora_dropout(x.to(dtype))
        for slot in routing.slots(x.device):
            xs = x if slot.rows is None else x.index_select(0, slot.rows)
            A = torch.stack([self.lora_A[e] for e in slot.experts]).to(dtype)          # [n, r, in]
            B = torch.stack([self.lora_B[e] for e in slot.experts]).to(dtype)          # [n, out, r]
            if fast:
                # scale and MoE weights on the r-wide intermediate (cheaper backward, see _single)
                t = torch.bmm(xs, A.transpose(1, 2))
                w = scale if slot.weights is None else slot.weights.to(t.dtype)[:, None, None] * scale
                d = torch.bmm(t * w, B.transpose(1, 2)).to(out_dtype)
                if slot.rows is None:
                    result.add_(d)
                else:
                    result.index_add_(0, slot.rows, d)
                continue
            d = torch.bmm(torch.bmm(xs, A.transpose(1, 2)), B.transpose(1, 2))
            if slot.weights is not None:
                d = d * slot.weights.to(d.dtype)[:, None, None]
            d = d.to(out_dtype)
            # In place on the base layer's fresh output (autograd allows it: linear's backward
            # does not need its output); alpha fuses the scale into the add.
            if slot.rows is None:
                result.add_(d, alpha=scale)
            else:
                result.index_add_(0, slot.rows, d, alpha=scale)
        return result.squeeze(1) if squeeze else result

    def _check_merged(self, routing: Routing | None) -> None:
        if routing is None:
            return  # a merged model is served as a plain Whisper with the expert baked in
        if routing.kind == "single" and routing.expert == self.merged_expert:
            return
        raise RuntimeError(f"expert {self.merged_expert} is merged into the weights; unmerge() "
                           f"before routing to {routing}")

    def extra_repr(self) -> str:
        return f"r={self.r}, scale={self.scale}, experts={self.n_experts}"


# -- dropout masks for the training fast path --------------------------------------------------
_MASK_LEVELS = 1 << 16


def quantized_rate(p: float) -> float:
    """The drop rate the 16-bit mask realises (0.05 -> 3277/65536 = 0.0500031)."""
    return round(p * _MASK_LEVELS) / _MASK_LEVELS


def keep_mask(shape, p: float) -> torch.Tensor:
    """A bool keep-mask with P(keep) = 1 - quantized_rate(p), from numpy's PCG64 (4 masks per
    64-bit draw: ~7x faster than torch's CPU Bernoulli). Its seed is drawn from torch's
    generator, so `torch.manual_seed` makes the masks, and a resumed run, reproducible."""
    seed = int(torch.randint(0, 2 ** 62, (1,)).item())
    n = math.prod(shape)
    raw = np.random.PCG64(seed).random_raw((n + 3) // 4).view(np.uint16)[:n]
    return torch.from_numpy(raw >= round(p * _MASK_LEVELS)).view(shape)


def frozen_cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A frozen tensor cast to `dtype`, kept on the tensor and made again only when the tensor
    changes (merge, load, an optimizer step of a full fine-tuning run)."""
    if t.dtype == dtype:
        return t
    key = (t.data_ptr(), t._version, dtype)
    cached = getattr(t, "_lw_cast", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    out = t.detach().to(dtype)
    t._lw_cast = (key, out)
    return out


def set_fast_train(model: nn.Module, on: bool) -> None:
    """Switch every LoRA layer of `model` between the training fast path and the plain one."""
    for m in model.modules():
        if isinstance(m, LanguageLoRALinear):
            m.fast_train = bool(on)
