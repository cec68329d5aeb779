"""The repetition-loop rule (texts as whisper-base wrote them on real clips) and the guard."""
from __future__ import annotations

from dataclasses import dataclass

from lora_whisper.inference.loops import compression_ratio, guard, is_loop, max_repeats, tandem_repeat, units


def test_loops_seen_on_real_speech_are_caught():
    # a doubled sentence stays under Whisper's compression-ratio rule (1.36): the tandem rule sees it
    doubled = "Turn out basement light. Turn out basement light."
    assert compression_ratio(doubled) < 2.4 and is_loop(doubled, "en")
    assert is_loop("What's the weather? What's the weather? What's the weather?", "en")
    assert is_loop("horse time " * 30, "en")                        # and the compression rule
    assert is_loop("para a pola-meia, não consegue. para a pola-meia, não consegue.", "pt")
    assert is_loop("我们今天去学校我们今天去学校", "zh")              # characters for CER languages
    assert is_loop("ありがとうございますありがとうございます", "ja")


def test_ordinary_speech_is_not_a_loop():
    for text, lang in [("Turn off all lights in the office.", "en"), ("no no no", "en"),
                       ("Set a timer for five minutes and thirty seconds.", "en"),
                       ("Uma raposa velha não consegue aprender nenhum ofício.", "pt"),
                       ("谢谢你们，一个一个来。", "zh"), ("", "en"), ("New York, New York", "en")]:
        assert not is_loop(text, lang), text


def test_tandem_repeat_counts():
    assert units("Hello, World!  hello", "en") == ["hello", "world", "hello"]
    assert max_repeats(list("abcabcabx"), 3) == 2
    assert max_repeats(list("aaaa"), 1) == 4
    assert tandem_repeat(list("xyabab"), ((2, 2),)) == (2, 2)
    assert tandem_repeat(list("abcd"), ((1, 2),)) is None


@dataclass
class R:
    text: str


def test_guard_redecodes_only_looping_rows_and_keeps_the_better_one():
    results = [R("fine"), R("red alert red alert red alert"), R("a b c a b c")]
    calls = []

    def stage1(rows):
        calls.append(("pad", rows))
        return [R("red alert"), R("a b c a b c a b c")]   # row 2 still loops, and longer

    def stage2(rows):
        calls.append(("ts", rows))
        return [R("a b c")]

    assert guard(results, ["en"] * 3, [stage1, stage2]) == 2
    assert [r.text for r in results] == ["fine", "red alert", "a b c"]
    assert calls == [("pad", [1, 2]), ("ts", [2])]
    assert guard([R("fine")], ["en"], [stage1]) == 0 and len(calls) == 2   # loop-free rows pay nothing


def test_a_row_that_loops_after_every_stage_says_its_repeats_once():
    results = [R("fine"), R("Turn off the light. Turn off the light. Turn off the light.")]
    still = lambda rows: [R("turn off the light turn off the light turn off the light turn off")]  # noqa: E731
    assert guard(results, ["en", "en"], [still]) == 1
    assert results[0].text == "fine"
    assert results[1].text == "Turn off the light." and not is_loop(results[1].text, "en")


def test_collapse_keeps_what_surrounds_the_loop():
    from lora_whisper.inference.loops import collapse

    assert collapse("so I said hello there hello there hello there and left", "en") == "so I said hello there and left"
    assert collapse("きそうとそうししょひきひ" + "ぃ" * 40, "ja") == "きそうとそうししょひきひぃ"
    assert collapse("我以为是一个傻瓜" * 4, "zh") == "我以为是一个傻瓜"
    for ordinary in ("a b c d e", "谢谢你谢谢", "we will, we will rock you"):
        assert collapse(ordinary, "zh" if "谢" in ordinary else "en") == ordinary
