"""`train(config)`: from settings to a run directory; `fit_plan`: the one orchestrator that
`train` and `add-language` share (run directory, resume, plan, loop, report).

Everything that can be refused is refused before the first step: unknown recipe or language,
a language without training audio, an existing run without --resume, a resume whose
settings would change the trajectory.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from lora_whisper.backbone.load import load_backbone
from lora_whisper.data.readers import parse_spec
from lora_whisper.errors import UserError
from lora_whisper.training import distributed
from lora_whisper.training import loop   # module access: tests spy on loop.fit
from lora_whisper.training.config import TRAIN_CONFIG_FILE, TrainConfig
from lora_whisper.training.data import RunData, load_run_data
from lora_whisper.training.dev import DevScorer
from lora_whisper.training.loop import FitResult, bf16_available
from lora_whisper.training.recipes import Plan, make_plan


def _prepare_run_dir(config: TrainConfig, is_main: bool, restart: bool = False) -> Path:
    run_dir = Path(config.out)
    if not config.out:
        raise UserError("no run directory: give --out")
    if not is_main:
        return run_dir  # rank 0 checks and creates it; the others would race with it
    if config.resume:
        saved = run_dir / TRAIN_CONFIG_FILE
        _remove_stale_temp_files(run_dir)
        if not (run_dir / "checkpoints" / "last.pt").exists():
            raise UserError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        if saved.exists():
            # Both sides with absolute paths, and --out as given now (the run may have moved).
            before = replace(absolute_paths(TrainConfig.from_toml(saved)), out=config.out)
            diffs = before.trajectory_differences(config)
            if diffs:
                raise UserError(f"{run_dir}: --resume with different settings ({'; '.join(diffs)}); "
                                f"rerun with the settings in {saved}")
        return run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir}: is a file; --out takes a directory to create")
    if restart and run_dir.is_dir() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)
        print(f"note: {run_dir} held an unfinished earlier attempt; starting again (--resume continues it)",
              file=sys.stderr)
    _clear_unstarted(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        hint = " (it has a checkpoint: add --resume to continue it)" \
            if (run_dir / "checkpoints" / "last.pt").exists() else ""
        raise UserError(f"{run_dir}: already exists and is not empty{hint}; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    # What a later `--resume --out RUN` starts from: not the one-off flags of this call.
    replace(config, resume=False, stop_after_steps=None).save(run_dir / TRAIN_CONFIG_FILE)
    return run_dir


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Temp files of atomic writes a kill interrupted (`.last.pt.x1y2.tmp`, up to a
    checkpoint's size): nobody will rename them now."""
    stale = [p for p in run_dir.rglob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        print(f"note: removed {len(stale)} unfinished temp file(s) of an interrupted write in {run_dir}",
              file=sys.stderr)


# What a start writes before its first checkpoint; a directory holding nothing else is a
# start that failed or was stopped early, and a rerun may begin again there.
_BEFORE_FIRST_CHECKPOINT = {TRAIN_CONFIG_FILE, "metrics.jsonl", "checkpoints"}


def _clear_unstarted(run_dir: Path) -> None:
    if not run_dir.is_dir() or not (run_dir / TRAIN_CONFIG_FILE).exists() or (run_dir / "checkpoints" / "last.pt").exists():
        return
    names = {p.name for p in run_dir.iterdir() if not p.name.endswith(".tmp")}
    ckpt_dir = run_dir / "checkpoints"
    if not names <= _BEFORE_FIRST_CHECKPOINT or (ckpt_dir.is_dir() and any(
            not p.name.endswith(".tmp") for p in ckpt_dir.iterdir())):
        return
    shutil.rmtree(run_dir)
    print(f"note: {run_dir} held only a start that never reached its first checkpoint; starting again",
          file=sys.stderr)


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """Data and backbone paths made absolute, so the saved config (and a resume from another
    working directory) names the same files. Hub ids and missing paths are kept as given."""
    def absolute(spec: str | None) -> str | None:
        if not spec:
            return spec
        fmt, path = parse_spec(spec)
        if not path.exists():
            return spec
        return f"{fmt}:{path.resolve()}" if fmt else str(path.resolve())

    changes = {k: absolute(getattr(config, k)) for k in ("data", "dev", "backbone")}
    return replace(config, **{k: v for k, v in changes.items() if v != getattr(config, k)})


def resolve(config: TrainConfig, device) -> TrainConfig:
    """Fill the settings that depend on the recipe or the hardware, so the saved config
    says what actually ran."""
    changes = {}
    if config.lr is None:
        changes["lr"] = config.learning_rate
    if config.bf16 is None:
        changes["bf16"] = bf16_available(device)
    return replace(config, **changes) if changes else config


def train(config: TrainConfig, backbone=None) -> Path:
    """Train as `config` says; returns the run directory.

    `backbone`: an already loaded Backbone to train on (it is modified: adapters are injected
    or, for full-ft, its weights trained); default: load `config.backbone`.
    Under torchrun each process calls this; rank 0 alone writes.
    """
    with distributed.session() as world:
        if backbone is None:
            backbone = load_backbone(config.backbone)
        data = load_run_data(config.data, config.dev, config.languages, backbone.vocab,
                             config.max_train_per_language, config.max_dev_per_language,
                             seed=config.seed, log=print if world.is_main else None)
        fit_plan(config, lambda: make_plan(config.recipe, backbone, data.languages, config.lora, seed=config.seed),
                 data, world)
        return Path(config.out)


def fit_plan(config: TrainConfig, plan: Plan | Callable[[], Plan], data: RunData, world: distributed.World,
             make_scorer: Callable[[Plan], Callable] | None = None, restart: bool = False) -> FitResult:
    """The one training orchestrator, for `train` and `add-language` alike: prepare (or resume)
    the run directory, build the plan (which experts train, which stay frozen, how each
    starts), train it with the loop, report. Every rank calls it; rank 0 alone writes.

    `plan`: the plan, or a function building it once the run directory is accepted (so a
    refused --out costs nothing).
    `make_scorer(plan)`: the dev scorer (default: DevScorer on `data.dev`); built on rank 0
    only. `restart`: a directory left by an unfinished earlier attempt is started again
    rather than refused (add-language's working directory, which no run refers to yet).
    """
    config = resolve(absolute_paths(config), world.device)
    if config.patience and not config.dev:
        raise UserError("--patience needs a dev set (--dev): early stopping watches the dev error")
    say = print if world.is_main else (lambda *a, **k: None)
    run_dir = _prepare_run_dir(config, world.is_main, restart=restart)
    distributed.barrier(world)
    if callable(plan):
        plan = plan()
    plan.model.to(world.device)
    n_train = sum(p.numel() for p in plan.params.values())
    say(f"{plan.recipe}: {len(data.languages)} language(s) ({', '.join(data.languages)}), "
        f"{len(data.train)} training utterances, {n_train:,} trainable parameters{plan.describe()}, "
        f"{world.size} process(es), bf16 {'on' if config.bf16 else 'off'}", file=sys.stderr)
    scorer = None
    if data.dev and world.is_main:
        scorer = (make_scorer or _dev_scorer(config, data))(plan)
    elif data.dev:
        scorer = _Placeholder()  # other ranks only need to know evaluations happen
    result = loop.fit(plan, data, config, run_dir, world, dev_scorer=scorer)
    if world.is_main and result.nothing_to_do:
        say(f"{run_dir}: already finished ({result.steps} of {result.total_steps} steps); nothing to resume",
            file=sys.stderr)
    elif world.is_main and result.interrupted:
        say(f"stopped after step {result.steps} of {result.total_steps}; continue with --resume", file=sys.stderr)
    elif world.is_main:
        best = (f"; best dev error {result.best_error:.2f} at step {result.best_step}"
                if result.best_step else "")
        early = " (stopped early)" if result.stopped_early else ""
        loss = f", last loss {result.last_loss:.4f}" if result.last_loss is not None else ""
        say(f"done: {result.steps} steps{early}{loss}{best}; run in {run_dir}", file=sys.stderr)
    return result


def _dev_scorer(config: TrainConfig, data: RunData) -> Callable[[Plan], DevScorer]:
    return lambda plan: DevScorer(plan, data.dev, config.eval_batch_size, config.eval_max_new_tokens)


class _Placeholder:
    def __call__(self):  # pragma: no cover - never called off rank 0
        raise RuntimeError("dev scoring runs on rank 0 only")
