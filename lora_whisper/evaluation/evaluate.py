"""Score a system (a run, or a bare backbone) on a test source, optionally against another
(a run, the zero-shot backbone, or an earlier report on the same utterances)."""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from lora_whisper.adapters.run import is_run
from lora_whisper.data.readers import open_source
from lora_whisper.data.sampling import subsample
from lora_whisper.errors import UserError
from lora_whisper.evaluation.decode import LANGUAGE_MODES, decode_utterances, greedy_options
from lora_whisper.evaluation.metrics import score_language
from lora_whisper.evaluation.report import SystemResult, build_report, ids_digest, write_report
from lora_whisper.evaluation.systems import load_system, zero_shot_of
from lora_whisper.inference import sharding
from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.languages import normalize_code

ZERO_SHOT = "zero-shot"


def select_utterances(data: str, languages=None, max_per_language: int | None = None, seed: int = 0):
    utts = open_source(data)
    if languages:
        wanted = [normalize_code(c) for c in languages]
        present = {u.language for u in utts}
        missing = [c for c in wanted if c not in present]
        if missing:
            raise UserError(f"{data}: no utterances for {', '.join(missing)} "
                            f"(it has {', '.join(sorted(present))})")
        utts = [u for u in utts if u.language in wanted]
    if max_per_language:
        utts = subsample(utts, max_per_language, seed)
    return utts


def score_system(system, utterances, language: str, progress: bool = False,
                 skipped: list | None = None) -> SystemResult:
    rank = sharding.current()   # under torchrun: this rank's share, then everyone's, in order
    mine = sharding.shard([u.duration for u in utterances], rank)
    hyps = decode_utterances(system.transcriber, [utterances[i] for i in mine], language,
                             progress=progress and rank.is_main, skipped=skipped)
    if rank.distributed:
        order = {utterances[i].id: i for i in mine}   # skipped rows have no hypothesis
        pairs = sorted(sharding.gather([(order[h.id], h) for h in hyps], rank), key=lambda p: p[0])
        hyps = [h for _, h in pairs]
        skipped_all = sharding.gather(list(skipped or []), rank)
        if skipped is not None:
            skipped[:] = skipped_all
    if skipped:
        bad = {u.id for u, _ in skipped}
        utterances = [u for u in utterances if u.id not in bad]
    by_lang: dict[str, list] = {}
    for h in hyps:
        by_lang.setdefault(h.language, []).append(h.score)
    scores = {lang: score_language(lang, s) for lang, s in by_lang.items()}
    return SystemResult(system.name, system.kind, system.path, scores, hyps,
                        ids_digest(u.id for u in utterances))


def _comparison(compare: str, system, utterances, language, progress, transcriber_kw) -> SystemResult:
    if compare == ZERO_SHOT:
        if system.kind == "backbone":
            raise UserError("--compare zero-shot: the system evaluated is already the bare backbone")
        other = zero_shot_of(system, **transcriber_kw)
        other.name = "zero-shot"
        return score_system(other, utterances, language, progress)
    path = Path(compare)
    if (path / "report.json").exists() and not is_run(path):
        # An earlier evaluation's output: reuse its scores if it scored the same utterances.
        old = json.loads((path / "report.json").read_text())
        result = SystemResult.from_summary(old["system"])
        want = ids_digest(u.id for u in utterances)
        if result.ids_sha256 != want:
            raise UserError(f"--compare {compare}: that report scored other utterances than these; "
                            f"pass the run directory instead to decode these")
        return result
    if not path.is_dir():
        raise UserError(f"--compare {compare}: not a run, a report directory or 'zero-shot'")
    return score_system(load_system(path, **transcriber_kw), utterances, language, progress)


def _differs_from_transcribe(options) -> str:
    """What `lora-whisper transcribe` (same flags otherwise) does differently from this decoding."""
    user = DecodeOptions()
    diff = []
    if options.temperatures != user.temperatures:
        diff.append("transcribe falls back to sampling at higher temperatures when a row's log-prob is "
                    "< -1 or its compression ratio > 2.4 (evaluate --fallback does too)")
    if options.max_new_tokens != user.max_new_tokens:
        diff.append(f"transcribe has no {options.max_new_tokens}-token cap (only 8 + 20 tokens per second of audio)")
    return "; ".join(diff) or "none"


def evaluate(data: str, run: str | Path | None = None, backbone: str | None = None, out: str | Path | None = None,
             language: str = "given", compare: str | None = None, batch_size: int = 8,
             max_new_tokens: int = 128, beam_size: int = 1, fallback: bool = False,
             languages=None, max_per_language: int | None = None, pad_30s: bool = False,
             progress: bool = False, compute_type: str = "float32", candidates=None,
             policy=None) -> tuple[dict, dict[str, Path]]:
    """Decode, score, write report files into `out`; returns (report, paths)."""
    if language not in LANGUAGE_MODES:
        raise UserError(f"--language must be one of {', '.join(LANGUAGE_MODES)}, got {language!r}")
    utterances = select_utterances(data, languages, max_per_language)
    options = greedy_options(max_new_tokens, beam_size, fallback)
    kw = dict(batch_size=batch_size, options=options, pad_30s=pad_30s, compute_type=compute_type)
    if candidates is not None:   # detection's candidates and routing policy (--language detect)
        kw["candidates"] = candidates
    if policy is not None:
        kw["policy"] = policy
    t0 = time.perf_counter()
    system = load_system(run, backbone, **kw)
    skipped: list = []   # rows that cannot be decoded are reported and left out, not fatal
    result = score_system(system, utterances, language, progress, skipped)
    if skipped:
        for u, problem in skipped:
            print(f"warning: skipped {u.origin or u.id}: {problem}", file=sys.stderr)
        bad = {u.id for u, _ in skipped}
        utterances = [u for u in utterances if u.id not in bad]
        if not utterances:
            raise UserError(f"{data}: none of the {len(skipped)} utterances could be decoded "
                            f"(first: {skipped[0][1]})")
    other = _comparison(compare, system, utterances, language, progress, kw) if compare else None
    settings = {
        "language": language, "beam_size": beam_size, "max_new_tokens": max_new_tokens,
        "temperature_fallback": fallback, "batch_size": batch_size,
        "input": "padded to 30 s" if pad_30s else "real length", "compute_type": compute_type,
        "loop_guard": options.loop_guard,
        "candidates": candidates, "routing": None if policy is None else policy.mode,
        "differs_from_transcribe": _differs_from_transcribe(options),
        "max_per_language": max_per_language, "torch_threads": torch.get_num_threads(),
        "skipped_undecodable": [{"id": u.id, "where": u.origin, "problem": p} for u, p in skipped],
        "seconds": round(time.perf_counter() - t0, 1),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rank = sharding.current()
    if rank.distributed:
        settings["ranks"] = rank.size
        sharding.leave(rank)   # the hypotheses are gathered: no more exchanges
    report = build_report(result, str(data), settings, other)
    if out is None:
        stem = Path(str(data).split(":", 1)[-1]).stem or "data"
        out = (Path(run) / "eval" / stem) if run else Path("eval") / stem
    if not rank.is_main:   # rank 0 writes the one report
        return report, {}
    return report, write_report(out, report, result, other)
