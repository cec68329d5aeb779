"""The training loop: one function, read top to bottom (in the manner of nanoGPT's train.py).

It knows nothing of recipes: it trains `plan.params`, routes each batch with
`plan.routing_fn`, and saves with `saving.save_plan`. The same code runs as one process or
under `torchrun --nproc_per_node N`: every rank walks its share of the same batch list,
gradients are summed over ranks, and only rank 0 writes.

Arithmetic that makes runs comparable:
- The loss of an optimizer step is the token-level cross-entropy over the whole global batch
  (every micro-batch of every rank): each micro-batch's summed loss is divided by the step's
  total token count, all-reduced before the first backward. So N ranks, or N accumulated
  micro-batches, compute the same step as one process with the same batches.
- Dropout is reseeded from (seed, step, rank) at every step, so a resumed run draws the same
  masks as an uninterrupted one whatever the data loader consumed from the generator.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from lora_whisper.adapters.layer import frozen_cast
from lora_whisper.adapters.routing import routed
from lora_whisper.atomic import atomic_write_text
from lora_whisper.backbone.forward import decoder_hidden, decoder_logits, encode
from lora_whisper.data.batching import IGNORE_INDEX, DurationBucketSampler, SpeechDataset, make_loader
from lora_whisper.data.features import log_mel
from lora_whisper.errors import UserError
from lora_whisper.evaluation.metrics import macro_average
from lora_whisper.training import checkpoint as ckpt
from lora_whisper.training.config import TRAIN_CONFIG_FILE
from lora_whisper.training.distributed import World, all_reduce_sum, barrier, sum_gradients
from lora_whisper.training.metrics_log import MetricsLog
from lora_whisper.training.saving import save_plan
from lora_whisper.training.schedule import default_warmup, make_scheduler

FINAL_DIR = "final"
FIT_FILE = "fit.json"   # how the run ended: steps used, best dev step, early stop


class TrainingDiverged(UserError):
    """The loss (or gradient norm) stopped being a finite number."""


@dataclass
class FitResult:
    steps: int
    total_steps: int
    last_loss: float | None
    best_step: int | None
    best_error: float | None
    interrupted: bool = False     # stopped by `stop_after_steps` (debug)
    stopped_early: bool = False   # `patience` dev evaluations without improvement
    nothing_to_do: bool = False   # a resume of a run that had already finished


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1_009 + rank


def bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    # Without native bf16 instructions, CPU autocast emulates it and is slower than fp32.
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_optimizer(groups, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused where torch has the kernel (one pass over each parameter instead of a
    dozen foreach ops; the same update up to float rounding)."""
    if device.type in ("cpu", "cuda") and all(p.is_floating_point() for g in groups for p in g["params"]):
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    return torch.optim.AdamW(groups, lr=lr)


def _project(proj: torch.nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """The vocabulary projection; its frozen (tied-embedding) weight cast to bf16 once, not
    every step, when autocast runs on a CPU and nothing trains it."""
    if (h.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not proj.weight.requires_grad
            and type(proj) is torch.nn.Linear):
        dtype = torch.get_autocast_dtype("cpu")
        return F.linear(h.to(dtype), frozen_cast(proj.weight, dtype),
                        None if proj.bias is None else frozen_cast(proj.bias, dtype))
    return proj(h)


def forward_loss(model, batch: dict, routing, autocast: bool,
                 labelled_only: bool = True) -> tuple[torch.Tensor, int]:
    """Summed token cross-entropy of one micro-batch, and its token count.

    `labelled_only`: project to the 51k-word vocabulary only the positions that have a label
    (not the prompt, not the padding): the same loss, without a third of the largest matmul
    and softmax of the step."""
    device = next(model.parameters()).device
    labels = batch["labels"].to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast), routed(routing):
        enc, keep = encode(model, batch["input_features"].to(device), batch["frame_lengths"].to(device))
        if labelled_only:
            hidden = decoder_hidden(model, batch["decoder_input_ids"].to(device), enc, keep)
            labelled = labels != IGNORE_INDEX
            logits = _project(model.proj_out, hidden[labelled])
            labels = labels[labelled]
        else:
            logits = decoder_logits(model, batch["decoder_input_ids"].to(device), enc, keep).flatten(0, 1)
            labels = labels.flatten()
    loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return loss, int((labels != IGNORE_INDEX).sum())


def step_batches(sampler, dataset, grad_accum: int, steps_per_epoch: int, start_step: int,
                 num_workers: int, pad_30s: bool, n_mels: int):
    """Yield (epoch, [grad_accum micro-batches]) per optimizer step, from `start_step` on.

    Each epoch's batch list is fixed by (seed, epoch), so resuming at a step is skipping the
    micro-batches before it in that epoch's list.
    """
    epoch, done = divmod(start_step, steps_per_epoch)
    while True:
        sampler.set_epoch(epoch)
        mine = list(sampler)[: steps_per_epoch * grad_accum][done * grad_accum:]
        it = iter(make_loader(dataset, mine, num_workers=num_workers))
        for _ in range(len(mine) // grad_accum):
            micro = [next(it) for _ in range(grad_accum)]
            if pad_30s:
                for b in micro:
                    b["input_features"], b["frame_lengths"] = log_mel(b.pop("audio"), n_mels, pad_30s=True)
            yield epoch, micro
        del it
        epoch, done = epoch + 1, 0


def fit(plan, data, config, run_dir: Path, world: World, dev_scorer=None) -> FitResult:

    model, params = plan.model, list(plan.params.values())
    run_dir = Path(run_dir)
    main = world.is_main
    log = MetricsLog(run_dir / "metrics.jsonl", enabled=main)
    autocast = bool(config.bf16)

    # -- data ------------------------------------------------------------------------------
    dataset = SpeechDataset(data.train, plan.backbone.vocab, data.languages, plan.backbone.n_mels,
                            features_in_collate=not config.pad_30s)
    sampler = DurationBucketSampler(data.durations, [u.language for u in data.train],
                                    max_utterances=config.batch_size, mode="mixed", seed=config.seed,
                                    num_replicas=world.size, rank=world.rank)
    steps_per_epoch = len(sampler) // config.grad_accum
    if steps_per_epoch == 0:
        raise UserError(f"{len(data.train)} training utterances make {len(sampler)} batch(es) of "
                        f"{config.batch_size} per process, fewer than grad_accum={config.grad_accum}; "
                        f"lower --batch-size or --grad-accum")
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    eval_every = config.eval_every or steps_per_epoch

    # -- optimizer: no weight decay on biases and norms (nanoGPT's rule: dim < 2) ------------
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    optimizer = make_optimizer(groups, config.learning_rate, world.device)
    warmup = config.warmup_steps if config.warmup_steps is not None else default_warmup(total_steps)
    scheduler = make_scheduler(optimizer, total_steps, warmup)

    # -- resume ----------------------------------------------------------------------------
    step, best = 0, None
    data_fingerprint = data.fingerprint() if hasattr(data, "fingerprint") else None
    if config.resume:
        state = ckpt.load_checkpoint(run_dir)
        saved_fp = state.get("data_fingerprint")
        if saved_fp and data_fingerprint and saved_fp != data_fingerprint:
            raise UserError(f"{run_dir}: the training or dev data changed since the checkpoint "
                            f"(now {len(data.train)} training utterances); resume with the data it was "
                            f"started on, or train into a new --out")
        if state["world_size"] != world.size:
            raise UserError(f"{run_dir}: checkpoint written by {state['world_size']} process(es), "
                            f"resuming with {world.size}; the data order would differ")
        if state["backbone_fingerprint"] != plan.backbone.fingerprint:
            raise UserError(f"{run_dir}: checkpoint made on another backbone")
        ckpt.load_trainable_state(plan.params, state["params"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        step, best = state["step"], state["best"]
        done = json.loads((run_dir / FIT_FILE).read_text()) if (run_dir / FIT_FILE).exists() else {}
        if done.get("steps") == step:
            # Finished (fit.json is written last, after the final adapters): nothing to redo,
            # and redoing the final save would overwrite its provenance.
            return FitResult(step, total_steps, done.get("last_loss"), done.get("best_step"),
                             done.get("best_dev_error_clipped"), stopped_early=bool(done.get("stopped_early")),
                             nothing_to_do=True)
        log.truncate_after(step)

    def save_checkpoint():
        if main:
            ckpt.save_checkpoint(run_dir, {
                "step": step, "epoch": step // steps_per_epoch,
                "micro_batches_in_epoch": (step % steps_per_epoch) * config.grad_accum,
                "params": ckpt.trainable_state(plan.params), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": ckpt.rng_state(), "best": best,
                "world_size": world.size, "backbone_fingerprint": plan.backbone.fingerprint,
                "recipe": plan.recipe, "data_fingerprint": data_fingerprint,
            })

    def provenance(**extra) -> dict:
        return {"step": step, "train_config": TRAIN_CONFIG_FILE,
                "train_utterances": len(data.train), **extra}

    def out_of_patience() -> bool:
        # Counted from the steps, not kept in a counter: a resumed run decides the same way.
        if not config.patience or best is None:
            return False
        return (step - best["step"]) // eval_every >= config.patience

    # -- loop ------------------------------------------------------------------------------
    bar = tqdm(total=total_steps, initial=step, unit="step", disable=not (main and config.progress),
               dynamic_ncols=True, desc=plan.recipe)
    batches = step_batches(sampler, dataset, config.grad_accum, steps_per_epoch, step,
                           config.num_workers, config.pad_30s, plan.backbone.n_mels)
    model.train()
    last_loss = None
    window = {"loss": 0.0, "steps": 0, "samples": 0, "seconds": 0.0}
    stopped_early = out_of_patience()   # a resumed run that had already stopped
    while step < total_steps and not stopped_early:
        t0 = time.perf_counter()
        epoch, micro = next(batches)
        torch.manual_seed(step_seed(config.seed, step, world.rank))
        lr = optimizer.param_groups[0]["lr"]

        # forward/backward over the step's micro-batches, normalised by the global token count
        counts = torch.tensor([float(sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in micro)),
                               float(sum(len(b["languages"]) for b in micro))], device=world.device)
        all_reduce_sum(counts, world)
        n_tokens, n_samples = max(counts[0].item(), 1.0), int(counts[1].item())
        loss_sum = torch.zeros((), device=world.device)
        for b in micro:
            loss, _ = forward_loss(model, b, plan.routing_fn(b), autocast)
            (loss / n_tokens).backward()
            loss_sum += loss.detach().float()
        step_loss = all_reduce_sum(loss_sum, world).item() / n_tokens
        if not math.isfinite(step_loss):
            raise TrainingDiverged(_diverged(f"loss is {step_loss}", step + 1, run_dir, config))

        sum_gradients(params, world)
        if config.max_grad_norm:
            norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            if not math.isfinite(float(norm)):
                raise TrainingDiverged(_diverged(f"gradient norm is {float(norm)}", step + 1, run_dir, config))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last_loss = step_loss

        # logging
        dt = time.perf_counter() - t0
        window["loss"] += step_loss
        window["steps"] += 1
        window["samples"] += n_samples
        window["seconds"] += dt
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.3f}", sps=f"{n_samples / dt:.2f}", refresh=False)
        if step % config.log_every == 0 or step == total_steps:
            log.write({"step": step, "epoch": epoch, "loss": window["loss"] / window["steps"],
                       "lr": lr, "samples_per_s": window["samples"] / window["seconds"]})
            window = {"loss": 0.0, "steps": 0, "samples": 0, "seconds": 0.0}
        if config.stop_after_steps and step >= config.stop_after_steps and step < total_steps:
            bar.close()
            return FitResult(step, total_steps, last_loss, best and best["step"], best and best["error"],
                             interrupted=True)

        # dev evaluation; the best adapters so far are the run directory's own
        if dev_scorer is not None and (step % eval_every == 0 or step == total_steps):
            if main:
                scores = dev_scorer()
                error = macro_average(scores, clipped=True)
                log.write({"step": step, "dev_error": macro_average(scores), "dev_error_clipped": error,
                           "dev": {k: round(s.error, 4) for k, s in scores.items()}})
                bar.write(f"step {step}: dev error {error:.2f} (clipped, macro over "
                          f"{', '.join(scores)})")
                if best is None or error < best["error"]:
                    best = {"error": error, "step": step}
                    save_plan(plan, run_dir, data.languages, provenance(dev_error_clipped=error, selected="best dev"))
            best = world_broadcast_best(best, world)
            barrier(world)
            if out_of_patience():
                stopped_early = True
                if main:
                    log.write({"step": step, "early_stop": True, "best_step": best["step"],
                               "best_dev_error_clipped": best["error"], "patience": config.patience})
                    bar.write(f"step {step}: no better dev error in {config.patience} evaluation(s) since "
                              f"step {best['step']}: stopping early")
                save_checkpoint()

        if step % config.checkpoint_every == 0 or step == total_steps:
            save_checkpoint()
    bar.close()

    # final weights: the run itself without a dev set, run/final/ beside the best with one
    if main:
        dest = run_dir / FINAL_DIR if dev_scorer is not None else run_dir
        save_plan(plan, dest, data.languages, provenance(selected="final", loss=last_loss))
    barrier(world)
    result = FitResult(step, total_steps, last_loss, best and best["step"], best and best["error"],
                       stopped_early=stopped_early)
    if main:

        atomic_write_text(run_dir / FIT_FILE, json.dumps({
            "steps": step, "max_steps": total_steps, "steps_per_epoch": steps_per_epoch,
            "epochs": round(step / steps_per_epoch, 3), "best_step": result.best_step,
            "best_dev_error_clipped": result.best_error, "stopped_early": stopped_early,
            "patience": config.patience, "eval_every": eval_every, "last_loss": last_loss,
        }, indent=2) + "\n")
    return result


def world_broadcast_best(best, world: World):
    """Rank 0 scores the dev set; the others learn the best so far (for early stopping)."""
    if world.size == 1:
        return best

    box = [best]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _diverged(what: str, step: int, run_dir: Path, config) -> str:
    last = ckpt.LAST
    saved = run_dir / "checkpoints" / last
    where = (f"the last checkpoint ({saved}) and any saved adapters are kept"
             if saved.exists() else "nothing had been checkpointed yet")
    return (f"training diverged at step {step}: {what}; {where}. Lower the learning rate "
            f"(was {config.learning_rate:g}) or check the data.")
