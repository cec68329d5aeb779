from lora_whisper.adapters import save_run
from lora_whisper.cli import main


def test_info_prints_experts_counts_backbone_and_provenance(tmp_path, tiny, tiny_dir, make_bank, capsys):
    bank = make_bank(["pl", "shared"])
    save_run(tmp_path / "run", bank, tiny, {"shared": {"recipe": "shared-lora"}})
    assert main(["info", str(tmp_path / "run"), "--backbone", str(tiny_dir)]) == 0
    out = capsys.readouterr().out
    assert "180,224 params" in out and "360,448 params" in out  # per expert, total
    assert "704.0 KiB fp32" in out
    assert tiny.fingerprint in out and "r=32 alpha=32" in out
    assert '"recipe": "shared-lora"' in out and "backbone check" in out and "matches" in out


def test_info_on_a_non_run_is_one_line_error(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "lora_whisper.json: missing" in err and err.count("\n") == 1
