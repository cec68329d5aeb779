"""Language-routed LoRA bank on a frozen Whisper: spec, routing, layer, bank, run files.

Laid out as peft's `tuners/lora` (config / layer / model apart); see layer.py for why the
layer is ours. Exports load on first use (lora_whisper/lazy.py): the CLI's parser imports
the torch-free `adapters.config` alone.
"""
from lora_whisper.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_TARGETS": "config", "LoraSpec": "config", "load_peft_adapter": "files",
    "LanguageLoRALinear": "layer", "AdapterError": "model", "LoRABank": "model", "ParamCount": "model",
    "has_lora": "model", "inject": "model", "Routing": "routing", "current_routing": "routing",
    "routed": "routing", "RunInfo": "run", "load_run": "run", "read_run": "run", "save_run": "run",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
