"""Language-routed LoRA bank on a frozen Whisper: spec, routing, layer, bank, run files.

Laid out as peft's `tuners/lora` (config / layer / model apart); see layer.py for why the
layer is ours.
"""
from lora_whisper.adapters.config import DEFAULT_TARGETS, LoraSpec
from lora_whisper.adapters.files import load_peft_adapter
from lora_whisper.adapters.layer import LanguageLoRALinear
from lora_whisper.adapters.model import AdapterError, LoRABank, ParamCount, has_lora, inject
from lora_whisper.adapters.routing import Routing, current_routing, routed
from lora_whisper.adapters.run import RunInfo, load_run, read_run, save_run

__all__ = [
    "DEFAULT_TARGETS", "LoraSpec", "RunInfo", "load_peft_adapter", "load_run", "read_run", "save_run",
    "LanguageLoRALinear", "AdapterError", "LoRABank", "ParamCount", "has_lora", "inject", "Routing",
    "current_routing", "routed",
]
