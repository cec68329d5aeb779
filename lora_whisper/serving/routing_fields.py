"""The routing a request asks for: `model=` naming one expert, `languages`, `routing`.

As vLLM names LoRA modules, each expert of the run is a model of its own, `<model>-<lang>`
(`base-pl`): it decodes with that language given, i.e. routed to its expert. `languages` (a
form field, comma-separated) restricts detection to those candidates; without it the server's
default applies (`serve --languages`, by default the run's experts' languages). `routing`
(hard | soft | nbest) overrides the server's policy for the request.
"""
from __future__ import annotations

from lora_whisper.inference.routing_policy import ROUTING_MODES
from lora_whisper.serving.errors import APIError, shown


def expert_models(transcriber, model_id: str, created: int) -> dict[str, dict]:
    """{"<model>-<lang>": its /v1/models card} for every expert of the run."""
    bank = transcriber.bank
    if bank is None or transcriber.route_all:
        return {}
    return {f"{model_id}-{lang}": {"id": f"{model_id}-{lang}", "object": "model", "created": created,
                                   "owned_by": "lora-whisper", "parent": model_id, "root": model_id,
                                   "language": lang, "mixture": transcriber.mixture_for(lang)}
            for lang in bank.experts}


def request_routing(transcriber, model: str, experts: dict, language: str | None, languages: str | None,
                    routing: str | None) -> tuple[str | None, list[str] | None]:
    """(the language to force or None, the candidates or None for the server's default);
    APIError 400 on a contradiction or a bad value."""
    if routing is not None and routing not in ROUTING_MODES:
        raise APIError(400, f"routing {shown(routing)} is not one of: {', '.join(ROUTING_MODES)}", "routing")
    if model in experts:
        lang = experts[model]["language"]
        if language is not None and language != lang:
            raise APIError(400, f"model {shown(model)} is the '{lang}' expert but language is {shown(language)}",
                           "language")
        language = lang
    candidates = None
    if languages is not None and languages.strip():
        try:
            candidates = transcriber.resolve_candidates(languages)
        except ValueError as exc:
            raise APIError(400, str(exc), "languages", "unsupported_language") from None
        if candidates is None:
            candidates = list(transcriber.vocab.languages)   # 'all'
    return language, candidates
