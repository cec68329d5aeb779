"""Optional learned mixture weights for LoRA MoE (`--learned-gates`).

A `Routing` carries fixed weights (detached): fine for the paper's MoE, where the weights come
from the similarity. To learn one scalar gate per frozen expert we leave the bank routing
the new language's own expert alone and add the frozen experts' updates ourselves, in a
forward hook on every LoRA layer:

    y = W x + B_new A_new x + sum_k g_k * B_k A_k x        (the layer's own scale applied)

which is what the layer computes for the mixture {new: 1, k: g_k}, so the learned values
are stored as an ordinary mixture in the run's provenance and inference reproduces them
with no hook.

g_k = w_k + GATE_SCALE * theta_k with theta_k = 0 at the start (w_k: the similarity weight).
The loop gives every parameter the same learning rate, tuned for LoRA matrices (1e-4);
Adam moves a parameter by about the learning rate per step, which would leave a scalar
gate where it started. The scale makes a step move a gate by about 1e-2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GATE_SCALE = 100.0


class LearnedGates:
    def __init__(self, bank, frozen: dict[str, float]):
        self.bank = bank
        self.names = list(frozen)
        self.init = torch.tensor([float(frozen[n]) for n in self.names])
        self.theta = nn.Parameter(torch.zeros(len(self.names)))
        self.idx = [bank.index(n) for n in self.names]
        self.active = False
        self._handles = [layer.register_forward_hook(self._hook) for layer in bank.layers.values()]

    def values(self) -> torch.Tensor:
        return self.init.to(self.theta.device) + GATE_SCALE * self.theta

    def mixture(self) -> dict[str, float]:
        with torch.no_grad():
            return {n: float(v) for n, v in zip(self.names, self.values().cpu())}

    def to(self, device) -> "LearnedGates":
        with torch.no_grad():
            self.theta.data = self.theta.data.to(device)
        return self

    def _hook(self, module, inputs, output):
        if not self.active:
            return output
        x = module.lora_dropout(inputs[0].to(module.lora_A[0].dtype))
        g = self.values()
        extra = 0
        for j, e in enumerate(self.idx):
            A, B = module.lora_A[e], module.lora_B[e]
            extra = extra + g[j].to(A.dtype) * F.linear(F.linear(x, A), B)
        return output + (extra * module.scale).to(output.dtype)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.active = False
