"""Settings: defaults < TOML < flags; saved runs read back exactly; bad keys named."""
from __future__ import annotations

import pytest

from lora_whisper.training.config import ConfigError, TrainConfig, load_train_config


def test_toml_then_overrides(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text('recipe = "shared-lora"\nlanguages = ["pl", "pt"]\nlr = 3e-4\nepochs = 2\n'
                 '[lora]\nr = 8\nalpha = 16\n')
    c = load_train_config(f, lr=1e-3, batch_size=None, rank=None)
    assert (c.recipe, c.languages, c.lr, c.epochs, c.batch_size) == ("shared-lora", ("pl", "pt"), 1e-3, 2, 8)
    assert (c.lora.r, c.lora.alpha) == (8, 16)
    assert load_train_config(f, rank=4).lora.alpha == 16  # an alpha that was chosen stays


def test_defaults_follow_the_paper_and_rank_keeps_scale_one():
    c = TrainConfig()
    assert (c.learning_rate, c.epochs, c.lora.r, c.lora.scale) == (1e-4, 10, 32, 1.0)
    assert TrainConfig(recipe="full-ft").learning_rate == 1e-5
    c = c.with_overrides(rank=8, languages="pl, pt")
    assert (c.lora.r, c.lora.alpha, c.languages) == (8, 8, ("pl", "pt"))


def test_save_reads_back_exactly_including_unset_values(tmp_path):
    c = TrainConfig(data="d", out="o", max_dev_per_language=None, max_grad_norm=None, bf16=True,
                    max_steps=7).with_overrides(rank=4, lora_dropout=0.0)
    assert TrainConfig.from_toml(c.save(tmp_path / "c.toml")) == c


@pytest.mark.parametrize("text, message", [
    ("bogus = 1\n", "unknown setting"),
    ('recipe = "magic"\n', "unknown recipe"),
    ("batch_size = 0\n", "batch_size must be at least 1"),
    ("[lora]\nr = 0\n", "rank"),
    ("lr = \n", "not valid TOML"),
])
def test_bad_settings_are_named(tmp_path, text, message):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_toml(f)
