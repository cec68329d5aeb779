"""What the API says about the model: the /v1/models card and verbose_json transcriptions."""
from __future__ import annotations

from lora_whisper.languages import language_name
from lora_whisper.serving.stream import segment_json, word_json


def model_card(transcriber, model_id: str, created: int) -> dict:
    """The /v1/models entry: OpenAI's fields plus the run's experts and their provenance."""
    info, bank = transcriber.run_info, transcriber.bank
    experts = []
    for name in (bank.experts if bank is not None else []):
        entry = info.entry(name) if info is not None else {}
        experts.append({
            "name": name,
            "parameters": entry.get("parameters"),
            "mixture": info.mixture(name) if info is not None else None,
            "provenance": entry.get("provenance") or {},
        })
    bb = transcriber.backbone
    return {
        "id": model_id, "object": "model", "created": created, "owned_by": "lora-whisper",
        "backbone": {"source": bb.source, "fingerprint": bb.fingerprint},
        "lora": info.data.get("lora") if info is not None else None,
        "languages": [e["name"] for e in experts],
        "experts": experts,
        "backbone_languages": list(transcriber.vocab.languages),
    }


def verbose_json(t, model_id: str, mixture: dict[str, float] | None = None, has_experts: bool = False) -> dict:
    """OpenAI's verbose_json plus what routed the clip: `expert` (a name, "a+b" for a MoE
    language, None for the bare backbone), `mixture` ({expert: weight}) and, when a run
    with experts has none for the clip's language, a `warning` saying so."""
    extra = {}
    if has_experts and t.expert is None and t.language:
        extra["warning"] = f"no expert for language {t.language!r} in this run: decoded by the bare backbone"
    return {**extra, 
        "task": "transcribe",
        "language": language_name(t.language) if t.language else None,  # OpenAI gives the name
        "language_code": t.language,
        "language_probability": t.language_probability,
        "language_probs": t.language_probs,   # over the candidates; None when the language was given
        "routing": t.routing,
        "expert": t.expert,
        "mixture": mixture,
        "model": model_id,
        "duration": round(t.duration, 3),
        "text": t.text,
        "segments": [segment_json(i, g, t.language) for i, g in enumerate(t.segments)],
        **({"words": [word_json(w) for g in t.segments for w in g.words or []]}
           if any(g.words is not None for g in t.segments) else {}),   # OpenAI's top-level words
    }
