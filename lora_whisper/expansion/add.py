"""Add one language to a trained run without touching its existing experts.

Inits (`--init`):
- random: a fresh expert, peft's init (A kaiming-uniform, B = 0: it starts as the bare backbone).
- warm: a copy of the expert of the most similar run language (paper: "LoRA warm start").
- moe: the new language's rows go through its own trainable expert (random init) plus the
  frozen experts of its top-k most similar run languages (paper: "LoRA MoE", k = 2):

      y = W x + B_new A_new x + sum_{k in top-k} w_k B_k A_k x,   w_k = s_k / sum_{top-k} s_j

  The paper says the mixture is built from the similarity but not how the new expert's own
  weight relates to the others. We keep the own expert at weight 1 (it is the part that
  trains, and at weight 1 its update means what a plain expert's does) and normalise the
  similarities over the top-k so the frozen part has the size of one expert: the start is
  a similarity-weighted average of the similar languages' adaptations, and k = 1 is a warm
  start whose copy stays frozen under a trainable correction. `--learned-gates` (off by
  default, not in the paper) lets the w_k train from these values (see gates.py).
  The mixture is stored as provenance `moe.experts` = {new: 1, l1: w1, l2: w2}, which
  `RunInfo.mixture` returns and `Transcriber` routes with.
- full-ft: every backbone weight fine-tuned on the new language (the catastrophic-forgetting
  baseline). It needs `--out`: the new run holds the fine-tuned Whisper in OUT/model and
  byte-for-byte copies of the original experts on top of it, so the damage to the old
  languages is measured on the same system with only the shared weights changed.

A language Whisper has no token for is added under its own code with `prompt_language`,
the Whisper token its prompts use in training and (recorded in provenance) in inference.

Training goes through the orchestrator `train` uses (`training.run.fit_plan`) with a plan
built here (the new expert trains; the run's experts ride along frozen), so it runs under
torchrun and an interrupted attempt continues with `--resume`. Its working files
(train_config.toml, metrics.jsonl, checkpoints) go to RUN/expansion/<code>/.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file

from lora_whisper.adapters import run as rundir   # module access: tests patch rundir.save_run
from lora_whisper.adapters.files import WEIGHTS_FILE
from lora_whisper.adapters.model import check_expert_name, has_lora
from lora_whisper.adapters.routing import Routing
from lora_whisper.adapters.run import (MODEL_DIR, RouteTable, RunInfo, copy_run, load_run, read_meta, read_run,
                                       remove_run_file, write_meta)
from lora_whisper.backbone.load import load_backbone, weights_fingerprint
from lora_whisper.data.sampling import subsample
from lora_whisper.errors import UserError
from lora_whisper.expansion.config import WORK_DIR, AddLanguageConfig
from lora_whisper.expansion.gates import LearnedGates
from lora_whisper.expansion.guard import ExpertGuard
from lora_whisper.expansion.similarity import Similarity, language_similarity, lid_languages
from lora_whisper.expansion.sources import read_language, relabel
from lora_whisper.languages import normalize_code
from lora_whisper.training import distributed
from lora_whisper.training.config import TRAIN_CONFIG_FILE, TrainConfig
from lora_whisper.training.data import RunData
from lora_whisper.training.dev import DevScorer
from lora_whisper.training.recipes import Plan, full_ft
from lora_whisper.training.run import fit_plan
from lora_whisper.training.screen import screen


@dataclass
class AddLanguageResult:
    run: Path                      # the run that now has the language
    language: str
    init: str
    prompt_language: str
    similarity: Similarity | None
    mixture: dict[str, float] | None = None
    warm_from: str | None = None
    steps: int = 0
    best_error: float | None = None
    provenance: dict = field(default_factory=dict)


# -- checks that need no weights -------------------------------------------------------------
def _preflight(run: Path, language: str, out: Path | None, resume: bool) -> tuple[RunInfo, Path]:
    """(the run's info, the run the language goes into). The settings themselves were
    checked by AddLanguageConfig."""
    info = read_run(run)  # refuses a missing or malformed run
    check_expert_name(language)
    if language in info.experts:
        raise UserError(f"{run}: already has an expert for {language!r} (experts: {', '.join(info.experts)})")
    if out is not None:
        if out.resolve() == run.resolve():
            raise UserError("--out must differ from --run (leave --out out to add in place)")
        if out.exists() and any(out.iterdir()) and not (resume and _resumable(out, language)):
            raise UserError(f"{out}: already exists and is not empty; choose another --out")
    return info, out or run


def _resumable(target: Path, language: str) -> bool:
    """An earlier, interrupted attempt at `language` left a checkpoint in `target`."""
    return (target / WORK_DIR / language / "checkpoints" / "last.pt").exists()


def _resolve_prompt(vocab, language: str, prompt_language: str | None) -> tuple[str, bool]:
    """-> (Whisper code the prompts use, whether `language` itself is a Whisper language)."""
    known = language in vocab.language_ids
    if prompt_language is None:
        if not known:
            raise UserError(f"{language!r} is not a language Whisper has a token for; name the token its "
                            f"prompts should use with --prompt-language (e.g. its most similar language: "
                            f"`lora-whisper similarity` ranks them)")
        return language, known
    return vocab.check_language(prompt_language), known


# -- the plan the training loop runs ----------------------------------------------------------
def _lora_plan(backbone, bank, language: str, init: str, mixture: dict[str, float] | None,
               learned_gates: bool):
    bank.set_trainable([language])
    e = bank.index(language)
    gates = None
    if init == "moe" and learned_gates:
        gates = LearnedGates(bank, {k: v for k, v in mixture.items() if k != language})
    weights = None
    if init == "moe" and not learned_gates:
        weights = torch.zeros(len(bank.experts))
        for name, w in mixture.items():
            weights[bank.index(name)] = float(w)

    def routing_fn(batch: dict) -> Routing:
        B = len(batch["language_index"])
        if gates is not None:
            return gates.routing(language, B)   # carries theta's graph: the gates train
        if weights is not None:
            return Routing.from_weights(weights.expand(B, -1).clone())
        return Routing.single(e, B, len(bank.experts))

    plan = Plan(f"add-language:{init}", backbone, bank, [language], routing_fn)
    plan.save_experts = [language]  # the staging run holds the new expert only
    plan.collect_params()
    if gates is not None:
        plan.params["expansion.gates.theta"] = gates.theta
    return plan, gates


class _MixtureInfo(RouteTable):
    """A RunInfo stand-in for dev decoding: every dev row is the new language (prompted with
    its Whisper token, which may be a base language's), routed as training routes it."""

    def __init__(self, mixture_fn: Callable[[], dict[str, float]]):
        self.mixture_fn = mixture_fn

    def mixture(self, language):
        return self.mixture_fn()


class _DevScorer:
    """Training's DevScorer, with the mixture in force at each evaluation put in the plan's
    provenance of the new expert: learned gates move, and when the loop saves the adapters of
    the best evaluation it saves that evaluation's gates with them (on disk, so a resumed
    run keeps them too)."""

    def __init__(self, plan, utterances, config, language: str, mixture_fn):
        plan.run_info = _MixtureInfo(mixture_fn)
        self.inner = DevScorer(plan, utterances, config.eval_batch_size, config.eval_max_new_tokens)
        self.plan, self.language, self.mixture_fn = plan, language, mixture_fn

    def __call__(self):
        # dev decoding routes the gates' current values, as floats
        self.plan.expert_provenance[self.language] = {"moe": {"experts": self.mixture_fn()}}
        return self.inner()


def _train_config(config: AddLanguageConfig, spec, backbone_source: str, recipe: str, prompt: str,
                  work: Path) -> TrainConfig:
    """The user's training settings, with what the plan decides filled in: the new language
    (under its prompt token), the run's backbone and LoRA spec, the working directory."""
    return replace(config.train, data=config.data, dev=config.dev, languages=(prompt,), out=str(work),
                   backbone=backbone_source, recipe=recipe, lora=spec)


# -- the command ---------------------------------------------------------------------------------
def add_language(config: AddLanguageConfig, similarity: Similarity | None = None, backbone=None,
                 log=print) -> AddLanguageResult:
    """Train `config.language` into `config.run` (or into a copy at `config.out`); returns
    what was done. Under torchrun every process calls this; rank 0 alone writes.

    `similarity`: a precomputed Similarity to reuse (else measured on up to
    `config.similarity_utterances` training utterances).
    `backbone`: a loaded Backbone to use (it is modified: adapters are injected or, for
    full-ft, its weights trained); default: the run's backbone.
    """
    with distributed.session() as world:
        quiet = log is None or not world.is_main
        say = (lambda *a, **k: None) if quiet else (lambda *a, **k: log(*a, file=sys.stderr, **k))
        return _add_language(config, similarity, backbone, say, world)


def _add_language(config: AddLanguageConfig, similarity, backbone, say, world) -> AddLanguageResult:
    train = config.train
    init, top_k = config.init, config.top_k
    run, out = Path(config.run), (Path(config.out) if config.out is not None else None)
    language = normalize_code(config.language)
    info, target = _preflight(run, language, out, train.resume)
    if backbone is None:
        backbone = load_backbone(info.backbone_source)
    vocab = backbone.vocab
    prompt, known = _resolve_prompt(vocab, language, config.prompt_language)
    if backbone.fingerprint != info.backbone_fingerprint:
        raise UserError(f"{run}: made with backbone {info.backbone_fingerprint[:16]}, "
                        f"got {backbone.fingerprint[:16]} ({backbone.source})")
    # Refuse a corrupted original before any work (a copy is checked again below).
    original = ExpertGuard(run)

    seed = train.seed
    train_utts = subsample(read_language(config.data, language, known), train.max_train_per_language, seed)
    dev_utts = None
    if config.dev:
        dev_utts = subsample(read_language(config.dev, language, known), train.max_dev_per_language, seed)

    # similarity: the bare backbone's ear, on the new language's training audio
    base_langs = lid_languages(info.experts, vocab)
    # Measured for every init (random and full-ft record it too), when the run has languages to rank.
    if similarity is None and (init in ("warm", "moe") or base_langs):
        if not base_langs:
            raise UserError(f"{run}: no expert is named by a Whisper language ({', '.join(info.experts)}), "
                            f"so none can be ranked by similarity for --init {init}")
        probe = subsample(train_utts, config.similarity_utterances, seed)
        say(f"measuring similarity on {len(probe)} utterances of {language} ...")
        similarity = language_similarity(backbone, [u.audio for u in probe], base_langs)
    if similarity is not None:
        unknown = [c for c in similarity.scores if c not in info.experts]
        if unknown:
            raise UserError(f"the similarity given ranks {', '.join(unknown)}, which {run} has no expert for")
        say("similarity: " + ", ".join(f"{c} {s:.3f}" for c, s in similarity.ranked()))

    provenance: dict = {"recipe": "add-language", "init": init, "prompt_language": prompt,
                        "train_utterances": len(train_utts)}
    if similarity is not None:
        provenance["similarity"] = similarity.to_dict()
    result = AddLanguageResult(target, language, init, prompt, similarity)

    train_rows = relabel(train_utts, prompt)
    dev_rows = relabel(dev_utts, prompt) if dev_utts else []
    checked = screen(train_rows, backbone.vocab)   # skip undecodable clips and overlong texts, with a count
    if checked.skipped:
        say(checked.note("training", len(train_rows)))
    if not checked.kept:
        raise UserError(f"no usable training utterances for {language} in {config.data} "
                        f"({checked.note('training', len(train_rows))[len('note: '):]})")
    rd = RunData([prompt], checked.kept, dev_rows, checked.durations)
    recipe = "full-ft" if init == "full-ft" else "lora-whisper"  # the loop's defaults (lr) per kind
    spec = info.spec

    work = target / WORK_DIR / language
    if init == "full-ft":
        return _full_ft(config, run, target, work, info, original, backbone, prompt, rd, provenance, result, say,
                        world)

    if out is not None and not (train.resume and _resumable(target, language)):
        if world.is_main:
            copy_run(run, target)
        distributed.barrier(world)
    guard = original if target == run else ExpertGuard(target)
    bank, _ = load_run(target, backbone)
    before = {n: bank.state_dict_of(n) for n in bank.experts}
    torch.manual_seed(seed)  # the new expert's A draws from the global generator
    mixture = None
    if init == "warm":
        result.warm_from = similarity.most_similar
        bank.add_language(language, init=f"copy:{result.warm_from}")
        provenance["warm_from"] = result.warm_from
    else:
        bank.add_language(language, init="random", seed=seed)
    if init == "moe":
        top = similarity.top(top_k)
        total = sum(s for _, s in top)
        mixture = {language: 1.0, **{c: s / total for c, s in top}}
    plan, gates = _lora_plan(backbone, bank, language, init, mixture, config.learned_gates)
    if result.warm_from:
        plan.init[language] = f"copy:{result.warm_from}"

    def current_mixture() -> dict[str, float]:
        if mixture is None:
            return {language: 1.0}
        if gates is None:
            return dict(mixture)
        return {language: 1.0, **gates.mixture()}

    train_config = _train_config(config, spec, info.backbone_source, recipe, prompt, work)

    def make_scorer(plan):
        return _DevScorer(plan, dev_rows, train_config, language, current_mixture)

    if prompt != language:
        say(f"add-language {language}: trained and decoded with the prompt <|{prompt}|>")
    fitted = fit_plan(train_config, plan, rd, world, make_scorer=make_scorer, restart=not train.resume)
    result.steps, result.best_error = fitted.steps, fitted.best_error
    if fitted.interrupted:
        say(f"{language} is not added yet: continue with --resume")
        return result
    if not world.is_main:
        distributed.barrier(world)   # rank 0 registers the expert
        return result
    chosen = work  # the best dev adapters with a dev set, else the final ones
    sd = load_file(str(chosen / "adapters" / language / WEIGHTS_FILE))
    bank.load_expert(language, sd)
    if mixture is not None:
        # With a dev set the run keeps the best evaluation's adapters, and so its gates.
        final_mix = (read_meta(chosen)["experts"][0]["provenance"].get("moe", {}).get("experts")
                     if dev_rows else None) or current_mixture()
        provenance["moe"] = {"experts": final_mix, "top_k": top_k, "learned_gates": config.learned_gates,
                             "weights": "own expert 1; top-k similarities renormalised to sum to 1"
                                        + ("; then trained" if config.learned_gates else "")}
        result.mixture = final_mix
    staged = read_meta(chosen)["experts"][0]["provenance"]
    for k in ("step", "dev_error_clipped", "selected"):
        if k in staged:
            provenance[k] = staged[k]
    provenance["train_config"] = f"{WORK_DIR}/{language}/{TRAIN_CONFIG_FILE}"

    # Nothing but the new expert may have moved, in memory or on disk.
    for n, sd_before in before.items():
        now = bank.state_dict_of(n)
        if any(not torch.equal(sd_before[k], now[k]) for k in sd_before):
            raise UserError(f"internal error: expert {n!r} changed in memory during training; not saving")
    rundir.save_run(target, bank, backbone, provenance={language: provenance}, only=[language])
    guard.check()
    _tidy(work)
    distributed.barrier(world)
    result.provenance = provenance
    say(f"added {language} to {target} ({fitted.steps} steps"
        f"{'' if fitted.best_error is None else f', best dev error {fitted.best_error:.2f}'})")
    return result


def _tidy(work: Path) -> None:
    """Keep the training record (train_config.toml, metrics.jsonl); drop the staging copies
    of the weights and the optimizer state, now that the run holds the expert."""
    for name in ("adapters", "final", "checkpoints"):
        shutil.rmtree(work / name, ignore_errors=True)
    remove_run_file(work)


def _full_ft(config, run, target, work, info, original, backbone, prompt, rd, provenance, result, say,
             world) -> AddLanguageResult:
    """Fine-tune every weight on the new language (bare rows); OUT = fine-tuned Whisper + the
    original experts copied byte for byte."""
    language = result.language
    if has_lora(backbone.model):
        raise UserError("full-ft needs a backbone without adapters injected")
    plan = full_ft(backbone, [prompt])
    train_config = _train_config(config, info.spec, info.backbone_source, "full-ft", prompt, work)
    if world.is_main:
        target.mkdir(parents=True, exist_ok=True)
    fitted = fit_plan(train_config, plan, rd, world, restart=not config.train.resume)
    plan.model.requires_grad_(False).eval()
    result.steps, result.best_error = fitted.steps, fitted.best_error
    if fitted.interrupted:
        say(f"{language} is not fine-tuned yet: continue with --resume")
        return result
    if not world.is_main:
        distributed.barrier(world)   # rank 0 writes the new run
        return result
    # best dev model at work/model, else the final one there; work/final/ is a duplicate
    shutil.move(str(work / MODEL_DIR), str(target / MODEL_DIR))
    staged = read_meta(work)
    _tidy(work)  # work/final/ is a duplicate; the checkpoint a full optimizer state (~3x the model)
    for k in ("step", "dev_error_clipped", "selected"):
        if k in staged.get("provenance", {}):
            provenance[k] = staged["provenance"][k]
    provenance["train_config"] = f"{WORK_DIR}/{language}/{TRAIN_CONFIG_FILE}"
    copy_run(run, target)
    tuned = (target / MODEL_DIR).resolve()
    data_out = read_meta(target)
    data_out["backbone"] = {"source": str(tuned), "fingerprint": weights_fingerprint(tuned)}
    # Not an expert (the new language decodes with the fine-tuned backbone alone): recorded
    # at the top level; save_run on this run later would drop it, which is harmless.
    data_out["full_ft"] = {"language": language, "from_run": str(run.resolve()),
                           "base_backbone": info.data["backbone"], **provenance}
    write_meta(target, data_out)
    if ExpertGuard(target).before != original.before:
        raise UserError(f"{target}: the copied experts differ from {run}'s")
    distributed.barrier(world)
    result.provenance = provenance
    say(f"full fine-tuning on {language} written to {target} ({fitted.steps} steps)")
    return result
