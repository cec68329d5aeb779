"""lora-whisper: multilingual speech recognition with language-specific LoRA experts on a
frozen Whisper (LoRA-Whisper, Song et al., Interspeech 2024)."""
from __future__ import annotations

__version__ = "0.1.0"


def load(source=None, run=None, **kwargs):
    """Load a Transcriber: the embedded whisper-base by default, a local Whisper dir, or a run."""
    # Lazy: `import lora_whisper` (and so the CLI's --help) must not pay for torch.
    from lora_whisper.inference.transcriber import load as _load

    return _load(source, run=run, **kwargs)


__all__ = ["load", "__version__"]
