"""Language expansion: rank a new language's similarity to a run's languages (Whisper's
language ID on the bare backbone) and add it as a new expert (random, warm start, LoRA MoE),
or fully fine-tune on it as the forgetting baseline. Existing experts are never written.
Exports load on first use (lora_whisper/lazy.py): the CLI's parser imports `expansion.config`
alone."""
from lora_whisper.lazy import lazy_exports

_EXPORTS = {
    "INITS": "config", "AddLanguageConfig": "config", "AddLanguageResult": "add",
    "add_language": "add", "Similarity": "similarity", "average_similarity": "similarity",
    "format_table": "similarity", "language_similarity": "similarity", "lid_languages": "similarity",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
