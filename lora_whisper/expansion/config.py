"""What `add-language` is asked to do, as one frozen dataclass (its flags are generated from
these fields, as `train`'s are from TrainConfig's).

The training settings are a TrainConfig (`train`); the fields that name the run, its data and
its languages there are filled by the expansion plan, not by the user.
"""
from __future__ import annotations

from dataclasses import dataclass

from lora_whisper.fields import setting
from lora_whisper.training.config import ConfigError, TrainConfig

# Where an added language trains (RUN/expansion/<code>/): its config, metrics and checkpoints.
WORK_DIR = "expansion"

INITS = ("random", "warm", "moe", "full-ft")

# TrainConfig fields the expansion fills itself: the work directory, the new language, the
# run's backbone and LoRA spec, the recipe its init implies.
PLANNED = frozenset({"data", "dev", "languages", "out", "backbone", "recipe", "lora"})


@dataclass(frozen=True)
class AddLanguageConfig:
    run: str = setting("", "trained run directory", required=True)
    language: str = setting("", "the new language's code (a code Whisper lacks needs --prompt-language)",
                            required=True)
    data: str = setting("", "training source holding the new language", required=True)
    init: str = setting("random", "random: a fresh expert; warm: a copy of the most similar language's "
                        "expert; moe: own expert + the frozen experts of the top-k similar languages, "
                        "weighted by similarity; full-ft: every weight fine-tuned into --out (the "
                        "baseline that forgets)", choices=INITS, required=True)
    dev: str | None = setting(None, "dev source: the best dev adapters are kept (default: the final ones)")
    out: str | None = setting(None, "write a new run here (a copy of --run plus the language); full-ft "
                              "requires it (default: add to --run in place)")
    top_k: int = setting(2, "moe: how many similar languages join", minimum=1)
    learned_gates: bool = setting(False, "moe: train the mixture weights too")
    prompt_language: str | None = setting(None, "the Whisper language token the new language's prompts "
                                          "use (required for a code Whisper does not know)")
    similarity_utterances: int = setting(50, "utterances the similarity is measured on", minimum=1)
    train: TrainConfig = setting(help="training settings", factory=TrainConfig, cli=False)

    def __post_init__(self):
        object.__setattr__(self, "run", str(self.run))
        object.__setattr__(self, "data", str(self.data))
        if self.out is not None:
            object.__setattr__(self, "out", str(self.out))
        if isinstance(self.train, dict):
            object.__setattr__(self, "train", TrainConfig().with_overrides(**self.train))
        if not self.run:
            raise ConfigError("no run: give --run")
        if not self.language:
            raise ConfigError("no language: give --language")
        if self.init not in INITS:
            raise ConfigError(f"unknown --init {self.init!r}; valid: {', '.join(INITS)}")
        if self.learned_gates and self.init != "moe":
            raise ConfigError("--learned-gates trains the weights of a LoRA MoE mixture: use it with --init moe")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}")
        if self.similarity_utterances < 1:
            raise ConfigError(f"--similarity-utterances must be at least 1, got {self.similarity_utterances}")
        if self.init == "full-ft" and self.out is None:
            raise ConfigError("--init full-ft fine-tunes the whole model, which changes every old language: "
                              "give --out NEW_RUN (the original run is left as it is)")
