"""Build the synthetic corpus: plan every utterance, synthesise what is missing, write
manifests from what exists.

Planning is cheap and deterministic (text, voice, TTS and augmentation parameters all
come from the seed), so an interrupted build resumes by re-planning and skipping the
WAVs already on disk; each WAV is written to a temporary name and renamed, so a file
that exists is complete.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from filelock import FileLock, Timeout
from tqdm import tqdm

from lora_whisper.corpus import augment as aug
from lora_whisper.corpus.rng import rng_for
from lora_whisper.corpus.splits import assign_splits
from lora_whisper.corpus.text_sources import load_sentences
from lora_whisper.corpus.tts import SAMPLE_RATE, engines_for, get_engine, held_out_engine_for
from lora_whisper.corpus.voices import SPLITS, VOICE_SPLITS, Voice, voices_for
from lora_whisper.errors import UserError
from lora_whisper.languages import LANGUAGES, normalize_code

FORMAT_VERSION = 1
MIN_SECONDS = 0.3
# a build that changes any of these would give different audio under the same ids
_MUST_MATCH = ("format_version", "seed", "engines", "augment", "dev_per_language",
               "test_per_language", "held_out_engine")


def default_held_out(per_language: int) -> int:
    return max(10, per_language // 10)


# ------------------------------------------------------------------ planning
def _engine_voices(engine: str, lang: str) -> list[Voice]:
    """Every voice of an engine without a train/dev/test table (their voices are per language)."""
    return [Voice(engine, v) for v in get_engine(engine).voices(lang)]


def voice_pools(lang: str, split: str, usable: list[str], held: str | None) -> list[list[Voice]]:
    """The voices that may speak `split`, one pool per engine.

    Without a held-out engine: the voice table's split of every engine (engines without one,
    whose voices are per language, speak training clips only). With one: training and dev
    clips come from the other engines (dev from their held-out voices), test clips from every
    voice of the held-out engine, which no training or dev clip used."""
    pools = []
    for engine in usable:
        if held is not None and (engine == held) != (split == "test"):
            continue
        if held is not None and engine == held:
            table = VOICE_SPLITS.get(engine)
            voices = [v for sp in SPLITS for v in table[sp]] if table else _engine_voices(engine, lang)
        elif engine in VOICE_SPLITS:
            voices = list(VOICE_SPLITS[engine].get(split, ()))
        else:
            voices = _engine_voices(engine, lang) if split == "train" else []
        if voices:
            pools.append(voices)
    return pools


def plan_language(lang: str, by_split: dict[str, list[str]], seed: int,
                  engines: tuple[str, ...], augment: bool, held: str | None = None,
                  engine_first: bool = False) -> list[dict]:
    """`held`: the engine only the test split speaks with. `engine_first`: draw an engine,
    then one of its voices (so an engine with 2 voices is not drowned by espeak-ng's 8);
    off, every voice of the split is equally likely (how corpora were planned before)."""
    usable = engines_for(lang, engines)
    plan = []
    for split in SPLITS:
        pools = voice_pools(lang, split, usable, held)
        voices = [v for pool in pools for v in pool]
        if not voices and by_split.get(split):
            raise UserError(
                f"no {split} voice for {lang!r} with engines {', '.join(engines)}; "
                "held-out voices come from espeak, so include it"
            )
        for i, text in enumerate(by_split.get(split, [])):
            uid = f"{lang}-{split}-{i:05d}"
            rng = rng_for(seed, uid, "voice")
            if engine_first:
                pool = pools[int(rng.integers(len(pools)))]
                voice = pool[int(rng.integers(len(pool)))]
            else:
                voice = voices[int(rng.integers(len(voices)))]
            plan.append({
                "id": uid,
                "audio": f"audio/{lang}/{split}/{uid}.wav",
                "text": text,
                "language": lang,
                "split": split,
                "voice": voice.name,
                "engine": voice.engine,
                "variant": voice.variant,
                "tts": get_engine(voice.engine).draw_params(rng),
                "augment": aug.draw(rng_for(seed, uid, "augment")) if augment else None,
            })
    return plan


# ------------------------------------------------------------------ synthesis
def _ignore_sigint() -> None:
    # Ctrl-C is handled once, by the parent; workers finish their file and exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_wav_atomic(path: Path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    tmp = path.with_name(f".{path.stem}.wav.{os.getpid()}.tmp")
    try:
        sf.write(tmp, np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def synthesize_one(item: dict, out: str) -> tuple[str, int]:
    """Make one utterance's WAV; a pure function of `item`."""
    path = Path(out) / item["audio"]
    audio = get_engine(item["engine"]).synthesize(
        item["text"], item["language"], item["variant"], item["tts"]
    )
    audio = aug.trim_silence(audio)
    if len(audio) < MIN_SECONDS * SAMPLE_RATE or float(np.max(np.abs(audio))) < 1e-3:
        raise RuntimeError(f"{item['voice']} produced no speech for {item['text']!r}")
    audio = aug.apply(audio, item["augment"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav_atomic(path, audio)
    return item["id"], len(audio)


def _run(todo: list[dict], out: Path, jobs: int, progress: bool) -> None:
    if not todo:
        return
    jobs = min(jobs, len(todo))

    bar = tqdm(total=len(todo), unit="utt", desc="synthesising", disable=not progress)

    def failed(item: dict, exc: BaseException) -> UserError:
        return UserError(f"synthesis of {item['id']} ({item['voice']}) failed: {exc}")

    try:
        if jobs <= 1:
            for item in todo:
                try:
                    synthesize_one(item, str(out))
                except (RuntimeError, OSError) as exc:
                    raise failed(item, exc) from exc
                bar.update()
            return
        # fork, where there is one: spawn re-imports the caller's __main__, which breaks
        # (or re-runs) a script without a main guard; workers use no parent threads
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                      initializer=_ignore_sigint)
        try:
            futures = {pool.submit(synthesize_one, item, str(out)): item for item in todo}
            for fut in cf.as_completed(futures):
                try:
                    fut.result()
                except (RuntimeError, OSError) as exc:
                    raise failed(futures[fut], exc) from exc
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


# ------------------------------------------------------------------ outputs
def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _manifest_line(item: dict, frames: int) -> str:
    row = {
        "id": item["id"], "audio": item["audio"], "text": item["text"],
        "language": item["language"], "duration": round(frames / SAMPLE_RATE, 3),
        "voice": item["voice"], "split": item["split"],
    }
    return json.dumps(row, ensure_ascii=False) + "\n"


def _check_compatible(out: Path, params: dict) -> None:
    path = out / "corpus.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return
    diff = [k for k in _MUST_MATCH if old.get(k) != params.get(k)]
    for lang, info in params["text"].items():
        was = old.get("text", {}).get(lang)
        if was and was.get("sha256") != info["sha256"]:
            diff.append(f"text of {lang}")
    if diff:
        raise UserError(
            f"{out} holds a corpus built with different {', '.join(diff)}; its WAVs would "
            "not match the new plan. Use another --out or delete that directory."
        )


def _languages(languages) -> list[str]:
    if isinstance(languages, str):
        languages = languages.split(",")
    out = []
    for code in languages:
        code = normalize_code(code)
        if not code:
            continue
        if code not in LANGUAGES:
            raise UserError(f"unknown language {code!r}")
        if code not in out:
            out.append(code)
    if not out:
        raise UserError("no language given")
    return out


def build_corpus(
    out,
    languages,
    per_language: int,
    seed: int = 0,
    dev_per_language: int | None = None,
    test_per_language: int | None = None,
    engines=("espeak",),
    jobs: int = 2,
    progress: bool = True,
    texts: dict[str, list[str]] | None = None,
    augment: bool = True,
    held_out_engine: str | None = None,
) -> dict:
    """Build (or resume) the corpus in `out`; returns counts per language and split.

    `texts` maps a language to its sentence pool and bypasses the Debian text sources
    (tests, custom text); those sentences are de-duplicated but not filtered.
    `held_out_engine`: "auto" speaks each language's test split with an engine no training
    or dev clip used (tts.HELD_OUT_PREFERENCE; a language with one engine keeps held-out
    voices of it), or an engine name to hold out wherever it speaks the language; None: the
    voice-disjoint splits of before.
    """
    started = time.monotonic()
    out = Path(out)
    langs = _languages(languages)
    if isinstance(engines, str):
        engines = engines.split(",")
    engines = tuple(dict.fromkeys(e.strip() for e in engines if e.strip()))
    for e in engines:
        get_engine(e)
    n_dev = default_held_out(per_language) if dev_per_language is None else dev_per_language
    n_test = default_held_out(per_language) if test_per_language is None else test_per_language
    counts = {"train": per_language, "dev": n_dev, "test": n_test}
    if min(counts.values()) < 0:
        raise UserError(f"utterance counts must be >= 0, got {counts}")

    for lang in langs:
        usable = engines_for(lang, engines)
        if not usable:
            raise UserError(f"no requested engine ({', '.join(engines)}) speaks {lang!r}")
        for e in usable:
            get_engine(e).check(lang)

    held: dict[str, str | None] = {}
    for lang in langs:
        if held_out_engine is None:
            held[lang] = None
        elif held_out_engine == "auto":
            held[lang] = held_out_engine_for(lang, engines)
        else:
            get_engine(held_out_engine)
            usable = engines_for(lang, engines)
            held[lang] = held_out_engine if held_out_engine in usable and len(usable) > 1 else None
    plan: list[dict] = []
    text_info = {}
    for lang in langs:
        given = texts is not None and lang in texts
        pool = list(texts[lang]) if given else load_sentences(lang)
        by_split = assign_splits(pool, lang, seed, counts)
        digest = hashlib.sha256("\n".join(sorted(pool)).encode("utf-8")).hexdigest()
        text_info[lang] = {"source": "given" if given else "debian", "sentences": len(pool),
                           "sha256": digest}
        plan.extend(plan_language(lang, by_split, seed, engines, augment, held=held[lang],
                                  engine_first=held_out_engine is not None))

    params = {
        "format_version": FORMAT_VERSION, "seed": seed, "languages": langs,
        "per_language": per_language, "dev_per_language": n_dev, "test_per_language": n_test,
        "engines": list(engines), "augment": augment, "sample_rate": SAMPLE_RATE,
        "voices": {s: [v.name for v in voices_for(s, engines)] for s in SPLITS},
        "text": text_info,
        "held_out_engine": held_out_engine,
        "test_engine": {lang: held[lang] for lang in langs},
        "train_engines": {lang: [e for e in engines_for(lang, engines) if e != held[lang]] for lang in langs},
    }
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _build_locked(out, langs, plan, params, jobs, progress, started)


@contextlib.contextmanager
def _exclusive(out: Path):
    """One build per directory: a second one would delete the first one's temp files."""
    try:
        with FileLock(out / ".build.lock", blocking=False):
            yield
    except Timeout:
        raise UserError(f"another corpus build is writing {out}") from None


def _build_locked(out: Path, langs: list[str], plan: list[dict], params: dict, jobs: int,
                  progress: bool, started: float) -> dict:
    _check_compatible(out, params)
    _write_text_atomic(out / "corpus.json", json.dumps({**params, "complete": False},
                                                       indent=2, ensure_ascii=False) + "\n")
    for lang in langs:
        for split in SPLITS:
            d = out / "audio" / lang / split
            d.mkdir(parents=True, exist_ok=True)
            for stale in d.glob(".*.wav.*.tmp"):  # left by a killed worker
                stale.unlink(missing_ok=True)

    todo = [item for item in plan if not (out / item["audio"]).exists()]
    _run(todo, out, jobs, progress)

    lines: dict[str, list[str]] = {s: [] for s in SPLITS}
    summary_langs: dict[str, dict] = {}
    missing = 0
    for item in plan:
        path = out / item["audio"]
        if not path.exists():
            missing += 1
            continue
        frames = sf.info(str(path)).frames
        lines[item["split"]].append(_manifest_line(item, frames))
        per = summary_langs.setdefault(item["language"],
                                       {"train": 0, "dev": 0, "test": 0, "seconds": 0.0})
        per[item["split"]] += 1
        per["seconds"] = round(per["seconds"] + frames / SAMPLE_RATE, 3)
    for split in SPLITS:
        _write_text_atomic(out / f"{split}.jsonl", "".join(lines[split]))

    summary = {
        "out": str(out),
        "languages": summary_langs,
        "utterances": sum(len(v) for v in lines.values()),
        "synthesized": len(todo),
        "reused": len(plan) - len(todo),
        "missing": missing,
        "elapsed_s": round(time.monotonic() - started, 2),
    }
    final = {**params, "complete": missing == 0,
             "summary": {k: summary[k] for k in ("languages", "utterances", "missing")}}
    _write_text_atomic(out / "corpus.json",
                       json.dumps(final, indent=2, ensure_ascii=False) + "\n")
    return summary
