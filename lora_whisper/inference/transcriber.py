"""The Python API: load a backbone (and optionally a run of adapters), detect, transcribe.

Clips are sorted by length and decoded in batches at the longest clip's real length, so a batch
of short clips never pays for 30 s of padding, and are loaded a batch at a time. Audio longer
than 29 s is transcribed by timestamp-based seeking over 30 s windows (`longform.py`), many
files side by side, each read from disk a window at a time. Every row of a batch is routed to
its own language's expert.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from lora_whisper.adapters.routing import routed
from lora_whisper.adapters.run import RUN_FILE, RouteTable, is_run, open_run, unrouted_experts
from lora_whisper.audio import AudioStream, check_finite, load_audio, probe_duration
from lora_whisper.backbone.forward import encode
from lora_whisper.backbone.load import Backbone, load_backbone
from lora_whisper.data.features import (BACKBONE_TAIL_SECONDS, CHUNK_SECONDS, N_SAMPLES_30S, SAMPLE_RATE,
                                         TAIL_SECONDS, log_mel, loudness)
from lora_whisper.errors import UserError
from lora_whisper.inference.chunked import transcribe_chunked
from lora_whisper.inference.decoding import DecodeOptions, better_result, decode_batch, is_silence, preemptible
from lora_whisper.inference.language_id import detect, detect_features, lid_token
from lora_whisper.inference.longform import Cursor, Piece, split_segments
from lora_whisper.inference.loops import guard
from lora_whisper.inference.routing_policy import Route, RoutingPolicy, routes_for, sticky
from lora_whisper.inference.vad import VadOptions
from lora_whisper.inference.window_language import cut_at_language_changes
from lora_whisper.inference.words import align_rows


@dataclass
class Segment:
    start: float
    end: float
    text: str
    language: str | None = None    # the language its window was prompted with and routed to
    words: list | None = None      # inference/words.Word per word, with --word-timestamps


@dataclass
class Transcription:
    source: str
    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    expert: str | None = None          # adapter used; None = bare backbone
    # Language ID over the candidates ({code: p}, most likely first; None when given), how the
    # row was routed (hard | soft | nbest) and, for a soft row, its experts' weights.
    language_probs: dict[str, float] | None = None
    routing: str | None = None
    mixture: dict[str, float] | None = None
    # Long audio with --language auto: each window's start, language and its probability.
    windows: list[dict] = field(default_factory=list)
    duration: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for g in d["segments"]:
            if g.get("words") is None:
                g.pop("words", None)   # no word timestamps asked for: the usual shape
        return d


# Clips up to this long are decoded whole without timestamps (the way adapters are trained);
# + the 1 s silence tail that log_mel adds = Whisper's 30 s window. Longer audio goes through
# timestamp-based seeking (longform.py).
SHORT_SECONDS = 29.0


class Transcriber:
    def __init__(self, backbone: Backbone, bank=None, run_info=None, pad_30s: bool = False,
                 batch_size: int = 8, options: DecodeOptions = DecodeOptions(), route_all: str | None = None,
                 backbone_tail_seconds: float | None = None,
                 candidates: "Sequence[str] | str | None" = None, policy: RoutingPolicy | None = None):
        self.backbone = backbone
        self.route_all = route_all if route_all is not None else (run_info.shared_expert if run_info is not None else None)
        self.bank = bank
        self.run_info = run_info
        self.pad_30s = pad_30s
        # Silence after a short clip: rows with an expert get what it was trained with, rows on
        # the bare backbone what Whisper needs to end (data/features.py); an exported expert
        # (merged into the weights) is decoded as the routed run decodes it.
        if backbone_tail_seconds is None:
            backbone_tail_seconds = TAIL_SECONDS if backbone.exported else BACKBONE_TAIL_SECONDS
        self.backbone_tail_seconds = backbone_tail_seconds
        self.batch_size = batch_size
        self.options = options
        self.policy = policy or RoutingPolicy()
        if self.policy.mode is None:   # the benchmarked default: nbest over experts (routing_policy.py)
            self.policy = replace(self.policy, mode="nbest" if bank is not None else "hard")
        # None: the run's experts' languages (all languages without a run); "all": all of them.
        self.candidates = self.resolve_candidates(candidates)
        self.loops_redecoded = 0   # short-clip rows re-decoded by the loop guard (all calls)

    @property
    def model(self):
        return self.backbone.model

    @property
    def compute_type(self) -> str:
        """Chosen when the backbone was loaded (`load(compute_type=...)`)."""
        return self.backbone.compute_type

    @property
    def vocab(self):
        return self.backbone.vocab

    # -- routing ---------------------------------------------------------------------------------
    def mixture_for(self, language: str | None) -> dict[str, float] | None:
        """{expert: weight} a row of this language is routed with; None = bare backbone.
        The run decides (RouteTable.route); a bank built in memory, without a run, routes each
        language to its own expert."""
        if self.bank is None or language is None:
            return None
        return (self.run_info or RouteTable()).route(language, self.bank.experts, shared=self.route_all)

    def expert_for(self, language: str | None) -> str | None:
        mix = self.mixture_for(language)
        return None if mix is None else "+".join(mix)

    def default_candidates(self) -> list[str] | None:
        """The languages detection chooses from with a run: its experts' (those Whisper's
        language ID can score); None (every backbone language) without a run or for a
        shared expert."""
        if self.bank is None or self.route_all:
            return None
        codes = [e for e in self.bank.experts if lid_token(self, e) in self.vocab.language_ids]
        return codes or None

    def resolve_candidates(self, candidates: "Sequence[str] | str | None") -> list[str] | None:
        """A candidate set from the user: None -> the default, 'all' -> every backbone
        language, 'pl,en' or ['pl', 'en'] -> those (checked; a run-only code is allowed)."""
        if candidates is None:
            return self.default_candidates()
        if isinstance(candidates, str):
            candidates = [c.strip() for c in candidates.split(",") if c.strip()]
        if list(candidates) in ([], ["all"]):
            return None
        out: list[str] = []
        for c in candidates:
            code = self.check_language(c)
            if code and code not in out:
                out.append(code)
        return out

    def routing_for(self, languages: Sequence[str | None]):
        if self.bank is None:
            return None
        specs: list = []
        for lang in languages:
            mix = self.mixture_for(lang)
            single = mix is not None and len(mix) == 1 and next(iter(mix.values())) == 1.0
            # A plain name keeps the bank on its no-gather single-expert path.
            specs.append(next(iter(mix)) if single else mix)
        return self.bank.routing_for(specs)

    # -- features ----------------------------------------------------------------------------------
    def features_of(self, clips: list[np.ndarray], context: list[np.ndarray] | None = None,
                  level: list[float | None] | None = None, silence_to_30s: bool = False,
                  languages: Sequence[str | None] | None = None):
        """Real-length features with a silence tail: 1 s (TAIL_SECONDS), or for the rows of
        `languages` that go to the bare backbone `backbone_tail_seconds`; `silence_to_30s`:
        silence up to 30 s after each clip, as Whisper pads a long file's last window."""
        if self.pad_30s:
            context = None  # classic 30 s padding: Whisper's own per-window features
        if silence_to_30s:
            tail = CHUNK_SECONDS
        elif languages is not None:
            tail = [TAIL_SECONDS if self.mixture_for(lang) is not None else self.backbone_tail_seconds
                    for lang in languages]
        else:
            tail = TAIL_SECONDS
        feats, lens = log_mel(clips, self.backbone.n_mels, pad_30s=self.pad_30s, context=context, level=level,
                              tail_seconds=tail)
        device = next(self.model.parameters()).device   # dtype: encode() casts to the encoder's
        return feats.to(device), lens.to(device)

    def prompt_language(self, language: str | None) -> str | None:
        """The Whisper language token a language's prompts use: itself, or for a language
        Whisper has no token for, the one recorded when it was added (`--prompt-language`)."""
        return self.run_info.prompt_language(language) if self.run_info is not None else language

    def check_language(self, language: str | None) -> str | None:
        if language in (None, "", "auto"):
            return None
        if self.bank is not None and language in self.bank.experts and self.prompt_language(language) != language:
            return language  # a run-only code: prompted with its recorded Whisper token
        return self.vocab.check_language(language)

    @staticmethod
    def load_input(x) -> np.ndarray:
        if isinstance(x, (np.ndarray, torch.Tensor)):
            a = x.float().cpu().numpy() if isinstance(x, torch.Tensor) else x.astype(np.float32, copy=False)
            check_finite(a, "<array>")   # files are checked as they are decoded
            return a
        return load_audio(x)

    def _head(self, x) -> np.ndarray:
        """The first 30 s (a file is read no further)."""
        if isinstance(x, (np.ndarray, torch.Tensor)):
            return self.load_input(x)[:N_SAMPLES_30S]
        with AudioStream(x) as stream:
            return stream.read(N_SAMPLES_30S)

    # -- language ID -------------------------------------------------------------------------------
    def detect_language(self, inputs, candidates: "Sequence[str] | str | None" = None,
                        method: str | None = None) -> list[dict[str, float]]:
        """Probability distribution over the candidate languages per input (first 30 s),
        renormalised over them: `candidates` None -> this Transcriber's (a run's experts by
        default), 'all' -> every backbone language. `method`: backbone | experts
        (language_id.py; default the routing policy's)."""
        single = not isinstance(inputs, (list, tuple))
        clips = [self._head(x) for x in ([inputs] if single else inputs)]
        codes = self.candidates if candidates is None else self.resolve_candidates(candidates)
        out = self.detect_clips(clips, codes, method)
        return out[0] if single else out

    def detect_clips(self, clips: list[np.ndarray], candidates=None, method: str | None = None) -> list[dict[str, float]]:
        return detect(self, clips, candidates, method or self.policy.lid)

    # -- transcription -----------------------------------------------------------------------------
    def transcribe(self, inputs, language: "str | None | Sequence[str | None]" = None, beam_size: int | None = None,
                   max_new_tokens: int | None = None, progress: bool = False,
                   names: Sequence[str] | None = None, timestamps: bool = False, vad=False,
                   word_timestamps: bool = False, on_result=None, on_segment=None, between_windows=None,
                   preempt=None, options: DecodeOptions | None = None, candidates=None,
                   routing: "str | RoutingPolicy | None" = None) -> "Transcription | list[Transcription]":
        """Transcribe one input (path or 16 kHz array) or a list of them.

        `language`: a code, None/'auto' to detect per input, or a list with one of those per
        input. For a list of inputs, files that cannot be decoded come back with `.error` set
        and the rest are still transcribed. Audio over 29 s is always decoded with Whisper's
        timestamps (segments carry times); `timestamps=True` does so for short clips too.
        `progress`: a progress bar (seconds of audio) for more than 3 inputs or 2 minutes.
        `options`: this call's decoding options (default: the Transcriber's), as faster-whisper
        takes them per call; `beam_size`/`max_new_tokens` override theirs.
        `vad`: True (or a `vad.VadOptions`) cuts every input at speech pauses and decodes the
        chunks of one file, and of several, as batches (chunked.py). `word_timestamps`: each
        segment gets `words` (words.py).
        `on_result(index, transcription)`: called as each input is finished (or has failed), so
        a caller can write results as they come and keep them if the rest is interrupted.
        `on_segment(index, segment)`: called as each segment is decoded, in order within an
        input (streaming).
        `between_windows(join)`: called after each 30 s window step of long audio; it may do
        other work (a server decodes short requests there, so they are not stuck behind an hour
        of audio), may add long inputs to this call with `join(audio, language) -> index` (they
        start at the next step, beside the others; their results come through `on_result`),
        and returns the indices of inputs to stop (their clients went away): those end with
        `.error` "cancelled". `preempt()`: called between the encoder layers and token steps of long
        audio's windows; it may decode other (short) inputs on this Transcriber.
        `candidates`: the languages detection may choose ('pl,en', a list, 'all', or one of
        those per input; default this Transcriber's). `routing`: hard | soft | nbest or a
        RoutingPolicy (default this Transcriber's; routing_policy.py).
        """
        single = not isinstance(inputs, (list, tuple))
        items = [inputs] if single else list(inputs)
        # One language for all inputs, or one per input (a mixed-language batch: each row is
        # prompted with, and routed to, its own language).
        per_input = list(language) if isinstance(language, (list, tuple)) else [language] * len(items)
        if len(per_input) != len(items):
            raise ValueError(f"{len(per_input)} languages for {len(items)} inputs")
        forced = [self.check_language(x) for x in per_input]
        if isinstance(candidates, (list, tuple)) and candidates and all(
                c is None or isinstance(c, (list, tuple)) for c in candidates):
            if len(candidates) != len(items):
                raise ValueError(f"{len(candidates)} candidate sets for {len(items)} inputs")
            cands = [self.candidates if c is None else self.resolve_candidates(c) for c in candidates]
        else:
            cands = [self.candidates if candidates is None else self.resolve_candidates(candidates)] * len(items)
        policy = self.policy if routing is None else (
            routing if isinstance(routing, RoutingPolicy) else replace(self.policy, mode=routing))
        if policy.mode is None:
            policy = replace(policy, mode=self.policy.mode)
        opts = options or self.options
        if beam_size is not None or max_new_tokens is not None:
            opts = replace(opts, beam_size=beam_size or opts.beam_size,
                           max_new_tokens=max_new_tokens or opts.max_new_tokens)
        outs = [Transcription(source=str(names[i]) if names else
                              (str(x) if not isinstance(x, (np.ndarray, torch.Tensor)) else f"<array {i}>"))
                for i, x in enumerate(items)]
        short, long, total = [], [], 0.0
        for i, x in enumerate(items):
            seconds = self._duration(x)
            total += seconds or 0.0
            if timestamps or seconds is None or seconds > SHORT_SECONDS:
                long.append(i)
            else:
                short.append((seconds, i))
        short.sort()
        bar = None
        if progress and (len(items) > 3 or total > 120):  # in seconds of audio, for long files too
            bar = tqdm(total=round(total), unit="s", unit_scale=True, desc="transcribing", delay=1.0)
        job = TranscribeJob(items, forced, outs, opts, single, bar, on_result, between_windows, preempt,
                   on_segment=on_segment, words=word_timestamps, candidates=cands, policy=policy)
        if vad:
            transcribe_chunked(self, job, list(range(len(items))), vad if isinstance(vad, VadOptions) else VadOptions(),
                               words=word_timestamps)
        else:
            self._transcribe_short(job, [i for _, i in short])
            self._transcribe_long(job, long)
        if bar:
            bar.close()
        return outs[0] if single else outs

    @staticmethod
    def _duration(x) -> float | None:
        if isinstance(x, (np.ndarray, torch.Tensor)):
            return x.shape[-1] / SAMPLE_RATE
        return probe_duration(x)

    def fail_input(self, job: "TranscribeJob", i: int, exc: Exception) -> None:
        if job.single:
            raise exc
        job.outs[i].error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        job.done(i)

    def assign_languages(self, job: "TranscribeJob", indices: list[int], clips: list[np.ndarray]) -> None:
        """Fill in each input's language: given, or detected on its first 30 s (in one batch)."""
        todo = [(i, c) for i, c in zip(indices, clips) if not job.forced[i]]
        groups: dict[tuple | None, list] = {}   # one detection batch per candidate set
        for i, c in todo:
            key = None if job.candidates[i] is None else tuple(job.candidates[i])
            groups.setdefault(key, []).append((i, c))
        for key, group in groups.items():
            for (i, _), p in zip(group, self.detect_clips([c[:N_SAMPLES_30S] for _, c in group], key and list(key),
                                                     job.policy.lid)):
                code, prob = next(iter(p.items()))
                out = job.outs[i]
                out.language, out.language_probability, out.language_probs = code, prob, p
        for i in indices:
            job.outs[i].language = job.forced[i] or job.outs[i].language
            job.outs[i].expert = self.expert_for(job.outs[i].language)
            job.outs[i].routing = "hard" if self.bank is not None else None

    def _routes(self, job: "TranscribeJob", i: int, language: str | None, probs: dict | None) -> list[Route]:
        if job.forced[i]:
            probs = None   # a given language is never second-guessed
        return routes_for(language, probs, job.policy, self.mixture_for)

    def _decode_routes(self, features, routes: list[list[Route]], options: DecodeOptions,
                       choose: DecodeOptions, keep_encoded: bool = False) -> tuple[list[tuple], tuple | None]:
        """Every route of every input is one row of a single batch (an N-best input's copies
        ride with the others); per input, the chosen (result, route): the copy without a
        repetition loop, then the best length-normalised log-probability.

        `keep_encoded` (word timestamps align on the encoder output again): also return each
        input's encoder output under its chosen route (the encoder has experts too)."""
        feats, lens = features
        flat = [(k, r) for k, rs in enumerate(routes) for r in rs]
        if len(flat) != len(routes):
            rows = torch.tensor([k for k, _ in flat], device=feats.device)
            feats, lens = feats[rows], None if lens is None else lens[rows]
        languages, specs = [r.language for _, r in flat], [r.spec for _, r in flat]
        encoded = None
        if keep_encoded:
            with torch.no_grad(), routed(self._route_rows(languages, specs)):
                encoded = encode(self.model, feats, lens)
        results = self._decode((feats, lens), languages, options, encoded, specs=specs)
        best: list = [None] * len(routes)
        chosen = [0] * len(routes)
        for j, ((k, r), res) in enumerate(zip(flat, results)):
            if best[k] is None or better_result(res, best[k][0], choose):
                best[k], chosen[k] = (res, r), j
        if encoded is not None and len(flat) != len(routes):
            enc, keep = encoded
            pick = torch.tensor(chosen, device=enc.device)
            encoded = (enc[pick], None if keep is None else keep[pick])
        return best, encoded

    def _apply_route(self, out: Transcription, route: Route) -> None:
        """Record what a row was decoded with (an N-best input may change language)."""
        if route.kind == "hard" and out.routing is None:
            return
        out.routing = route.kind
        if route.kind == "nbest" and route.language != out.language:
            out.language = route.language
            out.language_probability = (out.language_probs or {}).get(route.language)
        if route.kind == "soft":
            out.mixture = dict(route.spec) if isinstance(route.spec, dict) else None
            out.expert = "+".join(route.spec) if isinstance(route.spec, dict) else route.spec
        else:
            out.expert = self.expert_for(out.language)

    def _route_rows(self, languages: list[str], specs: list | None = None):
        return self.bank.routing_for(specs) if specs is not None and self.bank is not None \
            else self.routing_for(languages)

    def _decode(self, features, languages: list[str], options: DecodeOptions, encoded=None,
                specs: list | None = None):
        feats, lens = features
        prompts = [self.vocab.sot_sequence(self.prompt_language(lang), timestamps=options.timestamps)
                   for lang in languages]
        return decode_batch(self.model, self.vocab, feats, lens, prompts, routing=self._route_rows(languages, specs),
                            options=options, encoded=encoded)

    def _words(self, encoded, languages: list[str], pieces_per_row: list[list], samples: list[int],
               offsets: list[float] | None = None, results: list | None = None, specs: list | None = None):
        """Words per row per piece (words.py), routed as the rows were decoded."""
        enc, keep = encoded
        prompts = [self.vocab.sot_sequence(self.prompt_language(lang), timestamps=True) for lang in languages]
        return align_rows(self, enc, prompts, self._route_rows(languages, specs), pieces_per_row, samples, offsets,
                          keep, results)

    def _transcribe_short(self, job: "TranscribeJob", order: list[int]) -> None:
        """Clips up to 29 s, shortest first, loaded one batch at a time: one window each."""
        for s in range(0, len(order), self.batch_size):
            idx, clips = [], []
            for i in order[s:s + self.batch_size]:
                try:
                    clips.append(self.load_input(job.items[i]))
                    idx.append(i)
                    job.outs[i].duration = len(clips[-1]) / SAMPLE_RATE
                except Exception as exc:  # noqa: BLE001  (reported per file; others continue)
                    self.fail_input(job, i, exc)
            if not idx:
                continue
            try:
                self._decode_short(job, idx, clips)
                finished = idx
            except Exception:  # noqa: BLE001  (one bad row must not fail the others: one by one)
                if job.single:
                    raise
                finished = []
                for i, clip in zip(idx, clips):
                    try:
                        self._decode_short(job, [i], [clip])
                        finished.append(i)
                    except Exception as exc:  # noqa: BLE001
                        self.fail_input(job, i, exc)
            for i in finished:
                for g in job.outs[i].segments:
                    job.segment(i, g)
                job.done(i)
            if job.bar:
                job.bar.update(sum(len(c) for c in clips) / SAMPLE_RATE)

    def _decode_short(self, job: "TranscribeJob", idx: list[int], clips: list[np.ndarray]) -> None:
        self.assign_languages(job, idx, clips)
        # With the guard on, a loop at real length is cured by 30 s padding, not by sampling:
        # the compression-ratio fallback then runs on the padded re-decode only.
        first = replace(job.options, compression_ratio_threshold=None) if job.options.loop_guard else job.options
        features = self.features_of(clips, languages=[job.outs[i].language for i in idx])
        picked, encoded = self._decode_routes(
            features, [self._routes(job, i, job.outs[i].language, job.outs[i].language_probs) for i in idx],
            first, job.options, keep_encoded=job.words)
        for i, (_, route) in zip(idx, picked):
            self._apply_route(job.outs[i], route)
        results = [res for res, _ in picked]
        langs = [job.outs[i].language for i in idx]   # an N-best row may have changed language
        self._unloop(clips, langs, results, job.options)
        words = None
        if encoded is not None:
            words = self._words(encoded, langs, [[Piece(0.0, round(len(c) / SAMPLE_RATE, 3), r.tokens)]
                                                 for c, r in zip(clips, results)], [len(c) for c in clips],
                                results=results, specs=[r.spec for _, r in picked])
        for k, (i, clip, res) in enumerate(zip(idx, clips, results)):
            out = job.outs[i]
            # Whisper's no-speech rule, as long-form applies it per window: 5 s of silence is
            # no text, not a confident-looking sentence in the language ID's guess.
            out.text = "" if is_silence(res, job.options) else res.text
            out.segments = ([Segment(0.0, round(len(clip) / SAMPLE_RATE, 3), out.text, language=out.language)]
                            if out.text else [])
            if words is not None and out.segments:
                out.segments[0].words = words[k][0]

    def _unloop(self, clips: list[np.ndarray], languages: list[str | None], results: list, options: DecodeOptions) -> None:
        """Rows that came back in a repetition loop are decoded again, together, the way
        Whisper does not loop on them: padded to 30 s, then also with timestamps (loops.py)."""
        if not options.loop_guard:
            return

        def padded(timestamps: bool):
            def stage(rows: list[int]):
                feats, lens = log_mel([clips[k] for k in rows], self.backbone.n_mels, pad_30s=True)
                device = next(self.model.parameters()).device
                return self._decode((feats.to(device), lens.to(device)), [languages[k] for k in rows],
                                    replace(options, timestamps=timestamps))
            return stage

        stages = ([] if self.pad_30s else [padded(False)]) + [padded(True)]
        self.loops_redecoded += guard(results, languages, stages)

    def _open(self, job: "TranscribeJob", i: int) -> Cursor:
        x = job.items[i]
        if isinstance(x, (np.ndarray, torch.Tensor)):
            return Cursor(i, self.load_input(x))
        return Cursor(i, AudioStream(x))

    def _transcribe_long(self, job: "TranscribeJob", order: list[int]) -> None:
        """Timestamp-based seeking, up to `batch_size` inputs side by side: each step decodes the
        next 30 s window of every active input; a finished input makes room for the next."""
        options = replace(job.options, timestamps=True)
        pending = list(reversed(order))
        active: list[Cursor] = []
        # Per input: the language and distribution its current window is routed by.
        lang: dict[int, tuple[str | None, dict | None]] = {}
        redo: dict[int, int] = {}   # input -> seek point decoded again in another language
        try:
            while active or pending:
                fresh = []
                while len(active) + len(fresh) < self.batch_size and pending:
                    i = pending.pop()
                    try:
                        cur = self._open(job, i)
                        cur.window()  # reads the first window: an unreadable file fails here
                    except Exception as exc:  # noqa: BLE001
                        self.fail_input(job, i, exc)
                        continue
                    fresh.append(cur)
                if fresh and not self._per_window(job):
                    self.assign_languages(job, [c.index for c in fresh], [c.window() for c in fresh])
                    for c in fresh:
                        lang[c.index] = (job.outs[c.index].language, job.outs[c.index].language_probs)
                elif fresh:
                    for c in fresh:   # given languages; the others are detected per window below
                        out = job.outs[c.index]
                        out.language = job.forced[c.index]
                        out.expert = self.expert_for(out.language)
                        lang[c.index] = (out.language, None)
                active += fresh
                if not active:
                    continue
                windows = [c.window() for c in active]
                # A last window shorter than 30 s gets Whisper's padding, not our 1 s tail: after a
                # fraction of a second of speech (a word cut at the file's end) 1 s of silence
                # sends whisper-base into a loop ("with the power of the power ..."), 30 s does
                # not; batched with full windows it costs nothing.
                feats, lens = self.features_of(windows, [c.context() for c in active], [c.level for c in active],
                                             silence_to_30s=True)
                for cur, loud in zip(active, loudness(feats, lens)):
                    cur.level = loud if cur.level is None else max(cur.level, loud)
                if self._per_window(job):   # a window decoded again keeps the language it was given
                    keep = [k for k, c in enumerate(active) if redo.get(c.index) != c.seek]
                    self._window_languages(job, [active[k] for k in keep],
                                           (feats[keep], None if lens is None else lens[keep]), lang)
                try:
                    with preemptible(job.preempt):
                        picked, encoded = self._decode_routes(
                            (feats, lens), [self._routes(job, c.index, *lang[c.index]) for c in active],
                            options, options, keep_encoded=job.words)
                except Exception as exc:  # noqa: BLE001  (the window batch failed: fail its inputs, go on)
                    if job.single:
                        raise
                    for cur in active:
                        cur.close()
                        self.fail_input(job, cur.index, exc)
                    active = []
                    continue
                decoded = []
                for cur, win, (res, route) in zip(active, windows, picked):
                    if is_silence(res, options):
                        pieces, step = [], len(win)   # Whisper skips the window
                    else:
                        pieces, step = split_segments(res.tokens, self.vocab.timestamp_begin, cur.offset, len(win))
                    for p in pieces:
                        p.language = route.language
                    decoded.append([pieces, step])
                window_probs = [lang[c.index][1] or {} for c in active]   # before a cut moves them on
                if self._per_window(job) and job.policy.cut_on_switch:
                    cut_at_language_changes(self, job, active, windows, decoded, lang, redo)
                words = None
                if encoded is not None:
                    words = self._words(encoded, [r.language for _, r in picked], [d[0] for d in decoded],
                                        [len(w) for w in windows], [c.offset for c in active],
                                        [res for res, _ in picked], specs=[r.spec for _, r in picked])
                still = []
                for k, (cur, (res, route), (pieces, step), probs) in enumerate(zip(active, picked, decoded,
                                                                                   window_probs)):
                    if self._per_window(job) and not job.forced[cur.index] and step:
                        job.outs[cur.index].windows.append({
                            "start": round(cur.offset, 3), "language": route.language, "routing": route.kind,
                            "probability": None if route.language not in probs else round(probs[route.language], 4)})
                    for n, p in enumerate(pieces):
                        text = self.vocab.decode(p.tokens)
                        if text:   # what _finish keeps, as it comes (streaming)
                            seg = Segment(p.start, p.end, text, p.language, None if words is None else words[k][n])
                            cur.segments.append(seg)
                            job.segment(cur.index, seg)
                    if job.bar:
                        job.bar.update(step / SAMPLE_RATE)
                    try:
                        going = cur.advance(step)
                    except Exception as exc:  # noqa: BLE001  (corrupt part-way: keep what was done)
                        going = False
                        self.fail_input(job, cur.index, exc)
                    if going:
                        still.append(cur)
                    else:
                        self._finish(job, cur)
                active = still
                if job.between_windows is not None:
                    stop = set(job.between_windows(lambda x, lang: self._join(job, pending, x, lang)) or ())
                    for cur in [c for c in active if c.index in stop]:
                        cur.close()
                        self.fail_input(job, cur.index, UserError("cancelled"))
                    for i in [i for i in pending if i in stop]:
                        self.fail_input(job, i, UserError("cancelled"))
                    active = [c for c in active if c.index not in stop]
                    pending = [i for i in pending if i not in stop]
        finally:
            for cur in active:
                cur.close()

    def _join(self, job: "TranscribeJob", pending: list[int], x, language: str | None) -> int:
        """A long input added to a running call: queued behind the inputs already waiting."""
        i = len(job.items)
        job.items.append(x)
        job.forced.append(self.check_language(language))
        job.candidates.append(self.candidates)
        job.outs.append(Transcription(source=str(x) if not isinstance(x, (np.ndarray, torch.Tensor)) else f"<array {i}>"))
        pending.insert(0, i)   # popped from the end: first come, first opened
        return i

    def _finish(self, job: "TranscribeJob", cur: Cursor) -> None:
        cur.close()
        out = job.outs[cur.index]
        out.duration = cur.duration
        out.segments = cur.segments
        out.text = " ".join(g.text for g in out.segments).strip()
        if out.windows:
            self._file_language(out)
        job.done(cur.index)

    def _per_window(self, job: "TranscribeJob") -> bool:
        return job.policy.per_window

    def _window_languages(self, job: "TranscribeJob", active: list[Cursor], features, lang: dict) -> None:
        """A language per window of the inputs left to detection, on the decoder's own
        features, one batch per candidate set; sticky across windows (routing_policy.sticky)."""
        groups: dict[tuple | None, list[int]] = {}
        for row, cur in enumerate(active):
            if not job.forced[cur.index]:
                key = None if job.candidates[cur.index] is None else tuple(job.candidates[cur.index])
                groups.setdefault(key, []).append(row)
        feats, lens = features
        for key, rows in groups.items():
            sel = torch.tensor(rows, device=feats.device)
            dists = detect_features(self, (feats[sel], None if lens is None else lens[sel]),
                                    list(key) if key else self.vocab.languages, job.policy.lid)
            for row, probs in zip(rows, dists):
                cur = active[row]
                out = job.outs[cur.index]
                code = sticky(lang.get(cur.index, (None, None))[0], probs, job.policy.switch_probability)
                lang[cur.index] = (code, probs)
                if out.language is None:   # the file's language: its first window's (see _file_language)
                    out.language, out.language_probability, out.language_probs = code, probs[code], probs
                    out.expert = self.expert_for(code)
                    out.routing = "hard" if self.bank is not None else None

    def _file_language(self, out: Transcription) -> None:
        """A file of several languages is labelled with the one spoken longest."""
        spans: dict[str, float] = {}
        for g in out.segments:
            if g.language:
                spans[g.language] = spans.get(g.language, 0.0) + (g.end - g.start)
        if spans:
            top = max(spans, key=spans.get)
            if top != out.language:
                out.language = top
                out.language_probability = (out.language_probs or {}).get(top)
                out.expert = self.expert_for(top)


@dataclass
class TranscribeJob:
    """One transcribe() call's inputs and results, shared by its short and long paths."""
    items: list
    forced: list[str | None]
    outs: list[Transcription]
    options: DecodeOptions
    single: bool
    bar: object = None
    on_result: object = None      # callable(index, Transcription) as an input is finished or failed
    between_windows: object = None
    preempt: object = None
    on_segment: object = None     # callable(index, Segment) as segments are decoded
    words: bool = False           # word timestamps

    def done(self, i: int) -> None:
        if self.on_result is not None:
            self.on_result(i, self.outs[i])

    def segment(self, i: int, seg) -> None:
        if self.on_segment is not None:
            self.on_segment(i, seg)
    candidates: list = field(default_factory=list)   # per input: codes, or None for all
    policy: RoutingPolicy = RoutingPolicy()


def load(source: str | None = None, run: str | Path | None = None, compute_type: str = "float32",
         **kwargs) -> Transcriber:
    """`lora_whisper.load()` -> the embedded whisper-base; `load(run="RUN")` -> a trained run
    (adapters, or a fully fine-tuned model); `load("path/to/hf-whisper")` -> any local Whisper.
    With a run, `source` overrides where its backbone is found. `compute_type` "int8": the
    backbone quantised for CPU inference (backbone/quantize.py; experts stay float32)."""
    if run is None and source is not None and is_run(str(source)):
        run, source = source, None
    if run is None:
        return Transcriber(load_backbone(source, compute_type=compute_type), **kwargs)
    run = Path(run)
    if run.exists() and not run.is_dir():
        raise UserError(f"{run}: is a file; --run takes a run directory (it holds {RUN_FILE})")
    backbone, bank, info = open_run(run, source, compute_type=compute_type)
    if bank is None:   # a full fine-tune: every weight was trained with TAIL_SECONDS
        kwargs.setdefault("backbone_tail_seconds", TAIL_SECONDS)
    lost = unrouted_experts(info, backbone.vocab.languages) if info is not None else []
    if lost:
        warnings.warn(f"{run}: expert(s) {', '.join(lost)} match no language code of the backbone and "
                      f"declare no prompt_language: nothing is routed to them", stacklevel=2)
    return Transcriber(backbone, bank=bank, run_info=info, **kwargs)
