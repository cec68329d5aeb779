"""Optional learned mixture weights for LoRA MoE (`--learned-gates`).

The new language's rows are routed with the mixture {new: 1, k: g_k}, whose weights are
a tensor that requires grad: a `Routing` made from it keeps its graph (routing.py), so
every LoRA layer computes

    y = W x + B_new A_new x + sum_k g_k * B_k A_k x        (the layer's own scale applied)

with the g_k taken from the live tensor, and the loss's gradient reaches theta through
them. The learned values are stored as an ordinary mixture in the run's provenance, and
inference routes that mixture with nothing of this module.

g_k = w_k + GATE_SCALE * theta_k with theta_k = 0 at the start (w_k: the similarity weight).
The loop gives every parameter the same learning rate, tuned for LoRA matrices (1e-4);
Adam moves a parameter by about the learning rate per step, which would leave a scalar
gate where it started. The scale makes a step move a gate by about 1e-2.
"""
from __future__ import annotations

import torch
from torch import nn

from lora_whisper.adapters.routing import Routing

GATE_SCALE = 100.0


class LearnedGates:
    def __init__(self, bank, frozen: dict[str, float]):
        self.bank = bank
        self.names = list(frozen)
        self.init = torch.tensor([float(frozen[n]) for n in self.names])
        self.theta = nn.Parameter(torch.zeros(len(self.names)))
        self.idx = [bank.index(n) for n in self.names]

    def values(self) -> torch.Tensor:
        return self.init.to(self.theta.device) + GATE_SCALE * self.theta

    def mixture(self) -> dict[str, float]:
        with torch.no_grad():
            return {n: float(v) for n, v in zip(self.names, self.values().cpu())}

    def weights(self, own: str) -> torch.Tensor:
        """The mixture's row over the bank's experts: 1 for `own`, g_k for the frozen ones
        (a function of theta: a Routing made from it trains the gates)."""
        n = len(self.bank.experts)
        row = torch.zeros(n, device=self.theta.device)
        row[self.bank.index(own)] = 1.0
        return row.index_add(0, torch.tensor(self.idx, device=row.device), self.values())

    def routing(self, own: str, batch_size: int) -> Routing:
        """Every row of a batch of `own` routed through the mixture, gradient to theta included."""
        return Routing.from_weights(self.weights(own).expand(batch_size, -1))

    def to(self, device) -> "LearnedGates":
        with torch.no_grad():
            self.theta.data = self.theta.data.to(device)
        return self
