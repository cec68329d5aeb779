"""Which experts apply to which batch row, given to the model's LoRA layers per forward call.

A caller runs each forward call inside `routed(routing)`; every wrapped linear reads the
innermost such scope (none = the bare backbone). A context variable, not an attribute of
the model: routing is then an argument of the call that only that call sees, not state
some other caller (another request's decode in the middle of this one, a trainer, a
similarity probe) may have left behind; and each thread (the server's decode workers) has
its own. The decoder enters a scope per forward call, following its rows through beam
expansion and the dropping of finished rows.

The analysis a layer needs (all bare? one expert for all? which expert per row?) is done
once per Routing and cached, not once per layer call.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property

import torch


@dataclass(frozen=True)
class Slot:
    """One expert per listed row (a MoE row with k experts appears in k slots).

    A layer computes a slot with one batched matmul over per-row stacked A/B: cheaper on a
    CPU than looping over experts when rows are few (one decoder token per row).
    """
    rows: torch.Tensor | None        # LongTensor of row indices, None = every row in order
    experts: list[int]               # per listed row
    weights: torch.Tensor | None     # [n_rows] float, None = all 1


class Routing:
    """Per row of a batch: the experts applied and their weights (row of zeros = bare backbone).

    Held either as indices [B] (-1 = bare) or as weights [B, E]; kept on the CPU, as it is
    small, and moved to the activations' device once per device. A 'bare' or 'single'
    routing applies to a batch of any size; per-row routings must match the batch's rows.

    Weights that require grad (learned MoE gates, expansion/gates.py) are kept live: the
    layers then take each slot's weights from that tensor at every call, so the mixture's
    gradient reaches whatever the weights were computed from. Which experts a row uses is
    still read from their values when the Routing is made.
    """

    def __init__(self, *, index: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                 n_experts: int = 0):
        if (index is None) == (weights is None):
            raise ValueError("Routing needs exactly one of index or weights")
        self.index = None if index is None else index.detach().to("cpu", torch.long).reshape(-1)
        self.weights = None if weights is None else weights.detach().to("cpu", torch.float32)
        # the graph-carrying weights, None for fixed ones
        self.live = weights if weights is not None and weights.requires_grad else None
        self.n_experts = int(n_experts)
        if self.weights is not None and self.weights.dim() != 2:
            raise ValueError(f"routing weights must be [batch, experts], got shape {tuple(self.weights.shape)}")
        self._device_slots: dict[torch.device, list[Slot]] = {}

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_indices(cls, idx, n_experts: int) -> "Routing":
        idx = torch.as_tensor(idx, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < -1 or int(idx.max()) >= n_experts):
            raise ValueError(f"expert index out of range [-1, {n_experts}): {idx.tolist()}")
        return cls(index=idx, n_experts=n_experts)

    @classmethod
    def from_weights(cls, W: torch.Tensor) -> "Routing":
        W = torch.as_tensor(W)
        return cls(weights=W, n_experts=W.shape[-1])

    @classmethod
    def none(cls, batch_size: int) -> "Routing":
        return cls(index=torch.full((batch_size,), -1, dtype=torch.long), n_experts=0)

    @classmethod
    def single(cls, expert: int, batch_size: int, n_experts: int) -> "Routing":
        return cls.from_indices(torch.full((batch_size,), expert, dtype=torch.long), n_experts)

    # -- row operations (beam search, dropping finished rows) ------------------------------
    @property
    def batch_size(self) -> int:
        return (self.index if self.index is not None else self.weights).shape[0]

    def repeat_interleave(self, n: int) -> "Routing":
        if self.index is not None:
            return Routing(index=self.index.repeat_interleave(n), n_experts=self.n_experts)
        return Routing(weights=self._held().repeat_interleave(n, dim=0), n_experts=self.n_experts)

    def index_select(self, index) -> "Routing":
        index = torch.as_tensor(index, dtype=torch.long).to("cpu")
        if self.index is not None:
            return Routing(index=self.index.index_select(0, index), n_experts=self.n_experts)
        held = self._held()
        return Routing(weights=held.index_select(0, index.to(held.device)), n_experts=self.n_experts)

    def _held(self) -> torch.Tensor:
        return self.weights if self.live is None else self.live

    def dense(self) -> torch.Tensor:
        """Weights [B, n_experts] (a one-hot row per indexed row; zeros for bare rows)."""
        if self.weights is not None:
            return self.weights
        W = torch.zeros(self.batch_size, max(self.n_experts, 1))
        rows = (self.index >= 0).nonzero().flatten()
        W[rows, self.index[rows]] = 1.0
        return W[:, : self.n_experts]

    # -- cached analysis for the layers' fast paths ---------------------------------------
    @cached_property
    def _analysis(self) -> tuple[str, int | None, list[list[tuple[int, float]]]]:
        """(kind, single expert, per row the (expert, weight) pairs it applies)."""
        if self.index is not None:
            per_row = [[(e, 1.0)] if e >= 0 else [] for e in self.index.tolist()]
        else:
            per_row = [[(e, w) for e, w in enumerate(row) if w != 0] for row in self.weights.tolist()]
        used = {e for row in per_row for e, _ in row}
        if not used:
            return "bare", None, per_row
        # Live weights are never taken for 1: the layers must multiply by them for a gradient.
        unit_rows = self.live is None and all(len(row) <= 1 and all(w == 1.0 for _, w in row)
                                              for row in per_row)
        if unit_rows and len(used) == 1 and all(row for row in per_row):
            return "single", next(iter(used)), per_row
        return ("rows" if unit_rows else "mixture"), None, per_row

    @property
    def kind(self) -> str:
        """'bare' (no adapter anywhere), 'single' (one expert, weight 1, every row),
        'rows' (at most one expert per row, weight 1) or 'mixture' (MoE rows)."""
        return self._analysis[0]

    @property
    def expert(self) -> int | None:
        """The expert of a 'single' routing."""
        return self._analysis[1]

    @property
    def experts_used(self) -> list[int]:
        return sorted({e for row in self._analysis[2] for e, _ in row})

    def slots(self, device: torch.device | str = "cpu") -> list[Slot]:
        device = torch.device(device)
        cached = self._device_slots.get(device)
        if cached is None:
            per_row = self._analysis[2]
            cached = []
            for k in range(max(len(row) for row in per_row)):
                rows = [i for i, row in enumerate(per_row) if len(row) > k]
                experts = [per_row[i][k][0] for i in rows]
                weights = [per_row[i][k][1] for i in rows]
                cached.append(Slot(
                    None if rows == list(range(len(per_row))) else torch.tensor(rows, device=device),
                    experts,
                    None if all(w == 1.0 for w in weights) else torch.tensor(weights, device=device)))
            self._device_slots[device] = cached
        if self.live is None:
            return cached
        # Gathered afresh at each call (a cached gather would tie every forward pass to the
        # graph of the first); every slot gets weights, as a weight of 1 may still move.
        live = self.live.to(device)
        out = []
        for slot in cached:
            rows = torch.arange(live.shape[0], device=device) if slot.rows is None else slot.rows
            out.append(Slot(slot.rows, slot.experts, live[rows, torch.tensor(slot.experts, device=device)]))
        return out

    def __repr__(self) -> str:
        body = self.index.tolist() if self.index is not None else self.weights.tolist()
        return f"Routing({self.kind}, {body})"


class Scope:
    """One `routed` block: its routing, and the activation cast its layers share."""

    __slots__ = ("routing", "_cast")

    def __init__(self, routing: Routing | None):
        self.routing = routing
        self._cast: tuple[torch.Tensor, int, torch.dtype, torch.Tensor] | None = None

    def cast_once(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`x.to(dtype)`, reused while the layers called next read the same, unchanged tensor
        (the training fast path of LanguageLoRALinear). Held only for this block: no
        activations outlive the forward call."""
        if x.dtype == dtype:
            return x
        c = self._cast
        if c is not None and c[0] is x and c[1] == x._version and c[2] == dtype:
            return c[3]
        out = x.to(dtype)
        self._cast = (x, x._version, dtype, out)
        return out


_SCOPE: ContextVar[Scope | None] = ContextVar("lora_whisper_routing", default=None)


def current_scope() -> Scope | None:
    """The innermost `routed` block of this thread (None outside any: the bare backbone)."""
    return _SCOPE.get()


def current_routing() -> Routing | None:
    scope = _SCOPE.get()
    return None if scope is None else scope.routing


@contextlib.contextmanager
def routed(routing: Routing | None):
    """Forward calls inside the block route their rows with `routing` (None: the bare
    backbone, also inside an outer block); the outer routing is back on exit."""
    if routing is not None and not isinstance(routing, Routing):
        raise TypeError(f"expected a Routing or None, got {type(routing).__name__}")
    token = _SCOPE.set(Scope(routing))
    try:
        yield
    finally:
        _SCOPE.reset(token)
