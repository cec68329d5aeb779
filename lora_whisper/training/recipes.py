"""What is trained, how each batch row is routed, and how the result is saved.

A recipe turns a frozen backbone into a `Plan`; the loop (loop.py) only sees the plan, so a
new recipe (the add-language ones: a new expert trained alone, warm-started or mixed with
frozen experts) is a new function here, not a change to the loop.

- lora-whisper: one expert per language, trained together on mixed-language batches; each
  row goes through its own language's expert (the paper's method).
- shared-lora: one expert, "shared", used by every row (the paper's "LoRA" baseline).
- full-ft: every backbone weight trainable, no adapters (the paper's fine-tuning baseline);
  saved as a plain transformers Whisper under run/model/.
- shared+experts (beyond the paper): a "shared" expert on every row plus the row's own
  language expert, summed (a weighted row of the bank, weights 1 + 1). What all languages
  share is learnt from every row, as in shared-lora, at the start of training when each
  language expert has seen little; what differs goes to the language experts, which keep the
  paper's isolation (a row never touches another language's expert). Saved as a run whose
  languages are MoE rows {shared: 1, <lang>: 1}, so decoding, serving and export need nothing
  new.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from lora_whisper.adapters.model import inject
from lora_whisper.adapters.routing import Routing
from lora_whisper.adapters.run import RouteTable
from lora_whisper.errors import UserError
from lora_whisper.training.config import RECIPES

SHARED = "shared"


@dataclass
class Plan:
    recipe: str
    backbone: object                              # lora_whisper.backbone.load.Backbone
    bank: object | None                           # LoRABank, None for full-ft
    trained: list[str]                            # experts this run trains
    routing_fn: Callable[[dict], Routing | None]  # batch -> routing of its rows
    route_all_to: str | None = None               # decode every language with this expert
    # How each trained expert starts ("random", "copy:<expert>"; default random) and which
    # experts of the bank ride along frozen (an added language's MoE partners, a run's
    # existing experts): the plan says it, the loop never needs to.
    init: dict[str, str] = field(default_factory=dict)
    params: dict[str, nn.Parameter] = field(default_factory=dict)  # name -> trainable param
    # Saving: which experts go into the run (None = every expert of the bank, so a run made
    # by extending another holds the frozen experts too), and per-expert provenance to record
    # (e.g. {"cy": {"init": "copy:pl", "moe": {"experts": {...}}}}).
    save_experts: list[str] | None = None
    expert_provenance: dict[str, dict] = field(default_factory=dict)
    # Dev decoding: a RunInfo-like object whose .mixture(language) gives MoE routing, or None.
    run_info: object | None = None

    @property
    def model(self) -> nn.Module:
        return self.backbone.model

    @property
    def frozen(self) -> list[str]:
        """The bank's experts this plan does not train (never written by it)."""
        return [] if self.bank is None else [n for n in self.bank.experts if n not in self.trained]

    def describe(self) -> str:
        """What trains and from where, for the start-of-training line."""
        if self.bank is None:
            return ""
        trained = [f"{n} (from {self.init[n][len('copy:'):]})" if self.init.get(n, "").startswith("copy:") else n
                   for n in self.trained]
        parts = [f"; training {', '.join(trained)}"]
        if self.frozen:
            parts.append(f"; frozen {', '.join(self.frozen)}")
        return "".join(parts)

    def collect_params(self) -> None:
        # Names from the model (not the bank) so checkpoints of every recipe key alike.
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        if not self.params:
            raise RuntimeError(f"recipe {self.recipe}: nothing to train")


def lora_whisper(backbone, languages: list[str], spec, seed: int = 0) -> Plan:
    bank = inject(backbone.model, spec, languages, seed=seed)
    bank.set_trainable(languages)

    def routing_fn(batch: dict) -> Routing:
        return bank.routing_for(batch["languages"])

    plan = Plan("lora-whisper", backbone, bank, list(languages), routing_fn)
    plan.collect_params()
    return plan


def shared_lora(backbone, languages: list[str], spec, seed: int = 0) -> Plan:
    bank = inject(backbone.model, spec, [SHARED], seed=seed)
    bank.set_trainable([SHARED])

    def routing_fn(batch: dict) -> Routing:
        return Routing.single(0, len(batch["language_index"]), len(bank.experts))

    plan = Plan("shared-lora", backbone, bank, [SHARED], routing_fn, route_all_to=SHARED)
    plan.collect_params()
    return plan


def full_ft(backbone, languages: list[str], spec=None, seed: int = 0) -> Plan:
    backbone.model.requires_grad_(True)
    plan = Plan("full-ft", backbone, None, [], lambda batch: None)
    plan.collect_params()
    return plan


class _Mixtures(RouteTable):
    """The RunInfo.mixture(language) that dev decoding asks, before the run is saved."""

    def __init__(self, mixtures: dict[str, dict[str, float]]):
        self._mixtures = mixtures

    def mixture(self, name: str) -> dict[str, float] | None:
        return self._mixtures.get(name)


def shared_experts(backbone, languages: list[str], spec, seed: int = 0) -> Plan:
    if SHARED in languages:
        raise UserError(f"recipe shared+experts names its shared expert {SHARED!r}: not a language")
    names = [SHARED, *languages]
    bank = inject(backbone.model, spec, names, seed=seed)
    bank.set_trainable(names)
    mixtures = {lang: {SHARED: 1.0, lang: 1.0} for lang in languages}

    def routing_fn(batch: dict) -> Routing:
        return bank.routing_for([mixtures.get(lang) for lang in batch["languages"]])

    plan = Plan("shared+experts", backbone, bank, names, routing_fn,
                expert_provenance={lang: {"moe": {"experts": mix}} for lang, mix in mixtures.items()},
                run_info=_Mixtures(mixtures))
    plan.collect_params()
    return plan


# One builder per recipe that config.RECIPES names (checked at import: a recipe added there
# without a plan here fails at once, not when someone trains it).
BUILDERS: dict[str, Callable[..., Plan]] = {
    "lora-whisper": lora_whisper,
    "shared-lora": shared_lora,
    "full-ft": full_ft,
    "shared+experts": shared_experts,
}
assert tuple(BUILDERS) == RECIPES, f"recipes without a plan builder, or the reverse: {set(BUILDERS) ^ set(RECIPES)}"


def make_plan(recipe: str, backbone, languages: list[str], spec, seed: int = 0) -> Plan:
    try:
        build = BUILDERS[recipe]
    except KeyError:
        raise UserError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}") from None
    # Adapter initialisation draws from the global generator too: seed it for a run that
    # is the same whatever ran before it in this process.
    torch.manual_seed(seed)
    return build(backbone, languages, spec, seed=seed)
