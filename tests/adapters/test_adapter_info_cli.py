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


def test_info_verifies_every_checksum_and_names_the_file(tmp_path, tiny, make_bank, capsys):
    bank = make_bank(["pl", "pt", "en"])
    run = tmp_path / "run"
    save_run(run, bank, tiny)
    flipped = run / "adapters" / "pl" / "adapter_model.safetensors"
    data = bytearray(flipped.read_bytes())
    data[-1] ^= 0xFF
    flipped.write_bytes(bytes(data))
    cut = run / "adapters" / "pt" / "adapter_model.safetensors"
    cut.write_bytes(cut.read_bytes()[:100])
    bad_header = run / "adapters" / "en" / "adapter_model.safetensors"
    bad_header.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    assert main(["info", str(run)]) == 1
    out, err = capsys.readouterr()
    assert "pl" in out and "FAILS: adapters/pl/adapter_model.safetensors: checksum mismatch" in out
    assert f"error: {run}: adapters/pt/adapter_model.safetensors: checksum mismatch" in err
    assert f"error: {run}: adapters/en/adapter_model.safetensors: checksum mismatch" in err
    assert "Traceback" not in err and err.count("\n") == 3


def test_corrupt_safetensors_header_is_one_line(tmp_path):
    import pytest

    from lora_whisper.adapters.files import safetensors_shapes
    from lora_whisper.adapters.model import AdapterError

    f = tmp_path / "x.safetensors"
    f.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(AdapterError, match="corrupt safetensors header"):
        safetensors_shapes(f)
    f.write_bytes((5).to_bytes(8, "little") + b"{not")
    with pytest.raises(AdapterError, match="corrupt safetensors header"):
        safetensors_shapes(f)


def test_renamed_expert_is_said_out_loud(tmp_path, tiny, make_bank, capsys):
    bank = make_bank(["pl", "notalanguage"])
    save_run(tmp_path / "run", bank, tiny)
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "warning: expert 'notalanguage' is not a language code" in capsys.readouterr().out
