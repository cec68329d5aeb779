"""The run directory of every kind through adapters/run.py: kind, backbone, info, load."""
import pytest

from lora_whisper.adapters import save_run
from lora_whisper.adapters.run import backbone_source, open_run, read_meta, run_kind, save_full_model
from lora_whisper.cli import main
from lora_whisper.errors import UserError


def test_full_model_run_is_read_by_info_kind_and_open(tmp_path, tiny, capsys):
    run = save_full_model(tmp_path / "full", tiny, ["pl", "it"], {"recipe": "full-ft"})
    assert run_kind(run) == "full-model" and backbone_source(run) == tiny.source
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "full fine-tuning" in out and "pl, it" in out and tiny.fingerprint in out
    n = sum(p.numel() for p in tiny.model.parameters())
    # the tied output projection is stored once
    assert f"{n:,d} params" in out or f"{n - tiny.model.proj_out.weight.numel():,d} params" in out
    backbone, bank, info = open_run(run)
    assert bank is None and info is None
    assert backbone.fingerprint != tiny.fingerprint or backbone.source != tiny.source


def test_adapter_run_kind_and_source(tmp_path, tiny, make_bank):
    save_run(tmp_path / "run", make_bank(["pl"]), tiny)
    assert run_kind(tmp_path / "run") == "adapters"
    assert backbone_source(tmp_path / "run") == tiny.source
    assert read_meta(tmp_path / "run")["experts"][0]["name"] == "pl"


@pytest.mark.parametrize("make", [lambda p: p, lambda p: (p.write_text("x"), p)[1]])
def test_not_a_run_is_one_line(tmp_path, make):
    target = make(tmp_path / "nothing")
    with pytest.raises(UserError) as exc:
        run_kind(target)
    assert "\n" not in str(exc.value) and str(target) in str(exc.value)
