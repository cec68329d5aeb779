"""Dev error during training: greedy decoding of the dev set with the weights as they are,
scored per language (WER, CER for zh/ja)."""
from __future__ import annotations

from lora_whisper.evaluation.decode import decode_utterances, greedy_options
from lora_whisper.evaluation.metrics import LanguageScore, score_language
from lora_whisper.inference.transcriber import Transcriber


class DevScorer:
    def __init__(self, plan, utterances, batch_size: int = 8, max_new_tokens: int = 128):
        self.plan = plan
        self.utterances = list(utterances)
        self.batch_size = batch_size
        self.options = greedy_options(max_new_tokens)
        # Decoded once: the same clips are scored at every evaluation.
        self.audio = {u.id: u.load() for u in self.utterances}

    def __call__(self) -> dict[str, LanguageScore]:
        plan = self.plan
        transcriber = Transcriber(plan.backbone, bank=plan.bank, run_info=plan.run_info,
                                  batch_size=self.batch_size, options=self.options,
                                  route_all=plan.route_all_to)
        was_training = plan.model.training
        plan.model.eval()
        try:
            hyps = decode_utterances(transcriber, self.utterances, "given", audio=self.audio)
        finally:
            plan.model.train(was_training)
        by_lang: dict[str, list] = {}
        for h in hyps:
            by_lang.setdefault(h.language, []).append(h.score)
        return {lang: score_language(lang, s) for lang, s in by_lang.items()}
