"""train's and add-language's flags are generated from the config dataclasses' fields: the
same setting has the same flag in both, former names still work (with a note)."""
from __future__ import annotations

from lora_whisper.adapters.config import LoraSpec
from lora_whisper.cli import build_parser
from lora_whisper.cli._options import config_flags, config_overrides
from lora_whisper.expansion.config import PLANNED, AddLanguageConfig
from lora_whisper.training.config import TrainConfig


def _options(parser, command):
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s for a in sub._actions for s in a.option_strings}


def test_every_setting_has_its_flag_in_every_command_that_trains():
    parser = build_parser()
    train, add = _options(parser, "train"), _options(parser, "add-language")
    for _, flag, _, _ in config_flags(TrainConfig) + config_flags(LoraSpec):
        assert flag in train, flag
    for f, flag, _, _ in config_flags(TrainConfig, exclude=PLANNED):
        assert flag in add, flag
    for _, flag, _, _ in config_flags(AddLanguageConfig):
        assert flag in add, flag
    # one name for one setting across commands
    assert {"--max-steps", "--max-train-per-language", "--max-dev-per-language"} <= train & add


def test_former_names_are_aliases_with_a_note(capsys):
    parser = build_parser()
    args = parser.parse_args(["add-language", "--run", "r", "--language", "pt", "--data", "d", "--init", "warm",
                              "--steps", "7", "--max-train", "5", "--max-dev", "3"])
    assert (args.max_steps, args.max_train_per_language, args.max_dev_per_language) == (7, 5, 3)
    err = capsys.readouterr().err
    assert "--steps is the former name of --max-steps" in err and "--max-train is the former name" in err
    args = parser.parse_args(["train", "--max-steps", "4", "--rank", "8", "--languages", "pl,it", "--no-progress"])
    assert "former name" not in capsys.readouterr().err
    config = TrainConfig().with_overrides(**config_overrides(args, TrainConfig, LoraSpec))
    assert (config.max_steps, config.lora.r, config.lora.alpha, config.languages, config.progress) == \
        (4, 8, 8, ("pl", "it"), False)


def test_checks_come_from_the_field_metadata(capsys):
    parser = build_parser()
    for bad in (["train", "--batch-size", "0"], ["train", "--rank", "-1"], ["train", "--lr", "nan"],
                ["add-language", "--run", "r", "--language", "pt", "--data", "d", "--init", "tepid"]):
        try:
            parser.parse_args(bad)
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"accepted {bad}")
    assert "must be at least 1" in capsys.readouterr().err


def test_transcribe_decoding_flags_come_from_decode_options():
    from types import SimpleNamespace

    from lora_whisper.cli.transcribe import _decode_options
    from lora_whisper.inference.options import DecodeOptions

    args = build_parser().parse_args(["transcribe", "a.wav", "--beam-size", "3", "--temperatures", "0,0.5",
                                      "--logprob-threshold", "-1.5", "--no-loop-guard"])
    held = SimpleNamespace(options=DecodeOptions(max_new_tokens=64))   # the Transcriber's own options
    options = _decode_options(args, held)
    assert options == DecodeOptions(beam_size=3, temperatures=(0.0, 0.5), logprob_threshold=-1.5,
                                    loop_guard=False, max_new_tokens=64)
    # routing flags are RoutingPolicy's, the same in every command that decodes
    args = build_parser().parse_args(["transcribe", "a.wav", "--routing", "soft", "--no-per-window"])
    from lora_whisper.cli._options import routing_from_args

    _, policy = routing_from_args(args)
    assert (policy.mode, policy.per_window, policy.threshold) == ("soft", False, 0.9)
