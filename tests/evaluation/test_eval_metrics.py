"""Normaliser, WER/CER, per-utterance clipping, macro average, relative gain."""
from __future__ import annotations

import math

import pytest

from lora_whisper.evaluation.metrics import (gains, macro_average, relative_gain, score_corpus,
                                             score_utterance)
from lora_whisper.evaluation.normalize import normalize


def test_normalizer_is_whispers_basic_one():
    assert normalize("Zażółć, GĘŚLĄ jaźń! [noise] (cough)", "pl") == "zażółć gęślą jaźń"
    assert normalize("你好，世界。", "zh") == "你好世界"  # CER languages lose their spaces
    assert normalize("  Olá —   mundo ", "pt") == "olá mundo"


def test_chinese_is_scored_in_one_script():
    # Whisper often writes Mandarin in traditional characters; references are simplified.
    assert normalize("開放中文轉換，語言。", "zh") == "开放中文转换语言"
    s = score_utterance("开放中文转换", "開放中文轉換", "zh")
    assert (s.errors, s.length) == (0, 6)
    assert score_utterance("开放中文转换", "開放中文轉", "zh").errors == 1   # a real miss still counts
    assert normalize("開放", "ja") == "開放"    # Japanese kanji are not Chinese script variants
    assert normalize("開放", "yue") == "開放"


def test_wer_and_cer_per_utterance():
    s = score_utterance("Hello, world!", "hello word", "en")
    assert (s.errors, s.length, s.rate) == (1, 2, 0.5)
    s = score_utterance("今日は良い天気", "今日は良天気です", "ja")
    assert (s.errors, s.length) == (3, 7)  # one deletion, two insertions, by character
    assert score_utterance("", "", "en").rate == 0.0
    assert score_utterance("", "extra words", "en").errors == 2


def test_clipping_caps_each_utterance_at_its_length():
    scores = score_corpus(["a b", "c d e f"], ["a b a b a b a b", "c d e f"], ["en", "en"])["en"]
    assert scores.errors == 6 and scores.length == 6
    assert scores.error == pytest.approx(100.0)
    assert scores.clipped == pytest.approx(100.0 * 2 / 6)
    assert score_utterance("", "x y", "en").clipped_errors == 1


def test_macro_average_weights_languages_equally_and_gain():
    scores = score_corpus(["a b c d", "x"], ["a b c d", "y"], ["pl", "pt"])
    assert scores["pl"].error == 0 and scores["pt"].error == 100
    assert macro_average(scores) == 50.0
    assert relative_gain(20.0, 15.0) == pytest.approx(25.0)
    assert relative_gain(20.0, 30.0) == pytest.approx(-50.0)
    assert math.isinf(relative_gain(0.0, 1.0)) and relative_gain(0.0, 0.0) == 0.0
    base = score_corpus(["a b", "x y"], ["a c", "z w"], ["pl", "pt"])
    g = gains(base, scores)
    assert g["pl"] == pytest.approx(100.0) and g["pt"] == pytest.approx(0.0)
    assert g["macro"] == pytest.approx(100 * (75 - 50) / 75)
