"""What the API says about the model: the /v1/models card and verbose_json transcriptions."""
from __future__ import annotations


def model_card(transcriber, model_id: str, created: int) -> dict:
    """The /v1/models entry: OpenAI's fields plus the run's experts and their provenance."""
    info, bank = transcriber.run_info, transcriber.bank
    experts = []
    for name in (bank.languages if bank is not None else []):
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


def verbose_json(t, model_id: str, mixture: dict[str, float] | None = None) -> dict:
    """OpenAI's verbose_json plus what routed the clip: `expert` (a name, "a+b" for a MoE
    language, None for the bare backbone) and `mixture` ({expert: weight})."""
    from lora_whisper.languages import language_name

    return {
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
        "segments": [{"id": i, "seek": int(round(g.start * 100)), "start": g.start, "end": g.end,
                      "text": g.text, "language": g.language or t.language} for i, g in enumerate(t.segments)],
    }
