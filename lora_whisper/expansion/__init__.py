"""Language expansion: rank a new language's similarity to a run's languages (Whisper's
language ID on the bare backbone) and add it as a new expert (random, warm start, LoRA MoE),
or fully fine-tune on it as the forgetting baseline. Existing experts are never written."""
from lora_whisper.expansion.add_language import AddLanguageResult, add_language
from lora_whisper.expansion.config import INITS, AddLanguageConfig
from lora_whisper.expansion.similarity import (Similarity, average_similarity, format_table,
                                               language_similarity, lid_languages)

__all__ = ["INITS", "AddLanguageConfig", "AddLanguageResult", "add_language", "Similarity", "average_similarity",
           "format_table", "language_similarity", "lid_languages"]
