"""How similar a new language is to each language a run has an expert for, by Whisper's ear.

The paper picks the base language whose LoRA warm-starts (or joins the mixture of) a new
language from "the language detection probabilities" of Whisper. We measure exactly that:

- Which probabilities: Whisper's language identification with the **bare backbone** (no
  adapter is applied, so the measure does not depend on how the run was trained): the
  softmax over *all* the backbone's language tokens of the decoder's first prediction after
  `<|startoftranscript|>`, from the first 30 s of each clip (`Transcriber.detect_language`;
  features at the clip's real length like all our decoding, `pad_30s` for Whisper's
  classic 30 s padding).
- Which average: the arithmetic mean over utterances of those full distributions, then
  restricted to the run's languages and renormalised to sum to 1:

      sim(l) = mean_u p_u(l) / sum_{l' in run} mean_u p_u(l')

  Why this order and not "restrict and renormalise each utterance, then average": the
  two differ in how much say an utterance gets. Averaging first weights each utterance by
  the mass Whisper put on the run's languages. An utterance Whisper hears confidently as
  the new language itself (p = 0.999 pt, 1e-4 left for es/it/de/pl) carries almost no
  information about which base language is closest, and renormalising it per utterance
  would blow its tail noise up to a full vote. Averaging first is also the plain reading
  of "average the probability over the languages that have adapters; renormalise".
  `base_mass` (the mean mass on the run's languages before renormalising) is reported,
  so a reader sees when the ranking rests on a sliver of probability.

Experts whose name is not a Whisper language (a shared expert, a language added under a
new code with `--prompt-language`) have no language token and are left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from lora_whisper.adapters.run import read_run
from lora_whisper.backbone.load import load_backbone
from lora_whisper.data.sampling import subsample
from lora_whisper.errors import UserError
from lora_whisper.expansion.sources import read_language
from lora_whisper.inference.transcriber import Transcriber
from lora_whisper.languages import normalize_code


@dataclass
class Similarity:
    scores: dict[str, float]            # run language -> similarity, best first, sums to 1
    n_utterances: int
    base_mass: float                    # mean LID probability on the run's languages
    detected: dict[str, float] = field(default_factory=dict)  # top mean LID probs, all languages

    def ranked(self) -> list[tuple[str, float]]:
        return list(self.scores.items())

    def top(self, k: int = 1) -> list[tuple[str, float]]:
        return self.ranked()[:k]

    @property
    def most_similar(self) -> str:
        return next(iter(self.scores))

    def to_dict(self) -> dict:
        return {"scores": {k: round(v, 6) for k, v in self.scores.items()},
                "n_utterances": self.n_utterances, "base_mass": round(self.base_mass, 6),
                "detected": {k: round(v, 6) for k, v in self.detected.items()},
                "method": "bare-backbone LID after <|startoftranscript|>, first 30 s; "
                          "mean over utterances, restricted to the run's languages, renormalised"}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Similarity":
        return cls(dict(d["scores"]), int(d["n_utterances"]), float(d["base_mass"]),
                   dict(d.get("detected", {})))


def _ranked(d: Mapping[str, float]) -> dict[str, float]:
    # Ties broken by code so the same probabilities always give the same order.
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


def average_similarity(distributions: Sequence[Mapping[str, float]], languages: Sequence[str],
                       top_detected: int = 5) -> Similarity:
    """Per-utterance LID distributions (code -> prob over all backbone languages) -> Similarity
    over `languages` (mean first, then restrict and renormalise; see the module doc)."""
    languages = list(dict.fromkeys(languages))
    if not languages:
        raise UserError("no language to compare with: the run has no expert named by a Whisper language")
    if not distributions:
        raise UserError("no utterance to measure the similarity on")
    n = len(distributions)
    mean: dict[str, float] = {}
    for dist in distributions:
        for code, p in dist.items():
            mean[code] = mean.get(code, 0.0) + float(p) / n
    restricted = {c: mean.get(c, 0.0) for c in languages}
    mass = sum(restricted.values())
    if not mass > 0:
        raise UserError(f"Whisper's language ID gives the run's languages ({', '.join(languages)}) "
                        f"no probability at all on this audio: no similarity to rank")
    scores = _ranked({c: p / mass for c, p in restricted.items()})
    detected = dict(list(_ranked(mean).items())[:top_detected])
    return Similarity(scores, n, mass, detected)


def lid_languages(run_experts: Sequence[str], vocab) -> list[str]:
    """The run's experts that Whisper's language ID can score (named by a language token)."""
    return [e for e in run_experts if e in vocab.language_ids]


def language_similarity(backbone, audio: Sequence, languages: Sequence[str], batch_size: int = 8,
                        pad_30s: bool = False) -> Similarity:
    """Similarity of the language spoken in `audio` (paths or 16 kHz arrays) to `languages`.

    Runs the bare backbone even when `backbone.model` carries a LoRA bank: the Transcriber
    is built without one, and `language_probs` runs its forward calls in a `routed(None)` block.
    """
    unknown = [c for c in languages if c not in backbone.vocab.language_ids]
    if unknown:
        raise UserError(f"{', '.join(unknown)}: no Whisper language token, cannot be scored by language ID")
    t = Transcriber(backbone, bank=None, run_info=None, pad_30s=pad_30s, batch_size=batch_size)
    dists = t.detect_language(list(audio))  # full distributions over every backbone language
    return average_similarity(dists, languages)


def format_table(sim: Similarity, language: str | None = None) -> str:
    head = f"similarity of {language!r} to the run's languages" if language else "similarity"
    lines = [f"{head} (Whisper LID, bare backbone, {sim.n_utterances} utterances; "
             f"mass on these languages before renormalising {sim.base_mass:.3f})",
             f"{'rank':>4}  {'language':<8}  {'similarity':>10}"]
    for i, (code, s) in enumerate(sim.ranked(), 1):
        lines.append(f"{i:>4}  {code:<8}  {s:>10.4f}")
    if sim.detected:
        lines.append("most probable languages overall: " +
                     ", ".join(f"{c} {p:.3f}" for c, p in sim.detected.items()))
    return "\n".join(lines)


def similarity_for_run(run, data: str, language: str | None = None, max_utterances: int | None = 50,
                       seed: int = 0, batch_size: int = 8, pad_30s: bool = False,
                       backbone=None) -> tuple[Similarity, str | None]:
    """Similarity of the language in `data` to `run`'s languages -> (Similarity, its code).

    `language`: the new language's code (a new code Whisper has no token for is fine);
    None when `data` holds one language. Up to `max_utterances`, a seeded random choice.
    """
    info = read_run(run)
    if backbone is None:
        backbone = load_backbone(info.backbone_source)
    vocab = backbone.vocab
    code = normalize_code(language) if language else None
    langs = lid_languages(info.experts, vocab)
    if not langs:
        raise UserError(f"{run}: no expert is named by a Whisper language ({', '.join(info.experts)}): "
                        f"nothing to rank")
    utts = read_language(data, code, known=code is None or code in vocab.language_ids)
    code = code or utts[0].language
    utts = subsample(utts, max_utterances, seed)
    return language_similarity(backbone, [u.audio for u in utts], langs, batch_size, pad_30s), code
