"""OpenAI-compatible HTTP serving of a run: FastAPI app, micro-batching worker, web page."""
from lora_whisper.serving.app import create_app
from lora_whisper.serving.batcher import MicroBatcher

__all__ = ["create_app", "MicroBatcher"]
