"""Run directories: peft interop both ways, checksums, and every refusal."""
import json
import shutil

import pytest
import torch

from lora_whisper.adapters import AdapterError, LoraSpec, inject, load_peft_adapter, load_run, routed, save_run
from lora_whisper.adapters.run import read_run
from lora_whisper.backbone.load import load_backbone
from lora_whisper.backbone.tiny import save_tiny


def hf_logits(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(1, 80, 3000, generator=g)
    ids = torch.tensor([[50258, 50269, 50359, 50363, 440, 1080]])
    with torch.no_grad():
        return model(input_features=feats, decoder_input_ids=ids).logits


PROV = {"pl": {"recipe": "lora-whisper", "init": "random"},
        "pt": {"recipe": "add-language", "init": "copy:pl", "similarity": {"pl": 0.7}},
        "de": {"recipe": "add-language", "moe": {"experts": {"pl": 0.6, "pt": 0.4, "de": 1.0}}}}


@pytest.fixture()
def run(tmp_path, tiny, make_bank):
    bank = make_bank()
    save_run(tmp_path / "run", bank, tiny, PROV)
    return tmp_path / "run", bank


def test_round_trip_and_layout(run, tiny_dir):
    path, bank = run
    info = read_run(path)
    assert info.experts == ["pl", "pt", "de"]
    assert info.mixture("de") == {"pl": 0.6, "pt": 0.4, "de": 1.0} and info.mixture("pl") is None
    assert info.provenance("pt")["similarity"] == {"pl": 0.7} and "created" in info.provenance("pt")
    cfg = json.loads((path / "adapters/pl/adapter_config.json").read_text())
    assert (cfg["peft_type"], cfg["r"], cfg["lora_alpha"], cfg["bias"], cfg["task_type"]) == ("LORA", 32, 32, "none", None)
    fresh = load_backbone(str(tiny_dir))
    bank2, info2 = load_run(path, fresh)
    assert bank2.experts == ["pl", "pt", "de"] and info2.spec == bank.spec
    for n in bank.experts:
        a, b = bank.state_dict_of(n), bank2.state_dict_of(n)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_save_again_rewrites_nothing_and_appends(run, tiny):
    path, bank = run
    files = sorted(path.glob("adapters/*/*"))
    stat = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
    bank.add_language("cy", init="copy:pt")
    save_run(path, bank, tiny, {"cy": {"init": "copy:pt"}}, only=["cy"])
    save_run(path, bank, tiny)  # everything again: unchanged files stay as they are
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == stat
    info = read_run(path)
    assert info.experts == ["pl", "pt", "de", "cy"]
    assert info.provenance("de")["moe"]["experts"]["pt"] == 0.4  # kept
    assert not list(path.rglob(".*"))  # no temp files left


def test_peft_loads_our_adapter(run, tiny_dir):
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    path, bank = run
    base = WhisperForConditionalGeneration.from_pretrained(str(tiny_dir)).eval()
    pm = PeftModel.from_pretrained(base, str(path / "adapters/pt")).eval()
    wrapped = {n.removeprefix("base_model.model.") for n, m in pm.named_modules() if hasattr(m, "lora_A")
               and isinstance(m.lora_A, torch.nn.ModuleDict)}
    assert wrapped == set(bank.layers)
    bank.model.eval()
    with routed(bank.routing_for(["pt"])):
        ours = hf_logits(bank.model)
    assert (hf_logits(pm) - ours).abs().max() <= 1e-5


@pytest.mark.parametrize("targets", [["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"], ["q_proj", "v_proj"]])
def test_we_load_an_adapter_saved_by_peft(tmp_path, tiny, tiny_dir, targets):
    from peft import LoraConfig, get_peft_model

    ref = load_backbone(str(tiny_dir)).model
    pm = get_peft_model(ref, LoraConfig(r=32, lora_alpha=32, target_modules=targets)).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    pm.save_pretrained(str(tmp_path / "peft"))
    bank = inject(tiny.model, LoraSpec(), ["pl"])
    assert load_peft_adapter(bank, "it", tmp_path / "peft") == 1
    bank.model.eval()
    with routed(bank.routing_for(["it"])):
        ours = hf_logits(bank.model)
    assert (hf_logits(pm) - ours).abs().max() <= 1e-5


def test_peft_adapter_of_another_rank_is_refused(tmp_path, tiny, tiny_dir):
    from peft import LoraConfig, get_peft_model

    pm = get_peft_model(load_backbone(str(tiny_dir)).model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj"]))
    pm.save_pretrained(str(tmp_path / "peft"))
    bank = inject(tiny.model, LoraSpec(), [])
    with pytest.raises(AdapterError, match="rank 8 in adapter_config.json, bank has 32"):
        load_peft_adapter(bank, "it", tmp_path / "peft")


def edit_config(path, **changes):
    f = path / "adapters/pl/adapter_config.json"
    cfg = json.loads(f.read_text())
    cfg.update(changes)
    f.write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage,message", [
    (lambda p: edit_config(p, r=16), "adapter 'pl': rank 16 in adapter_config.json, run says 32"),
    (lambda p: edit_config(p, lora_alpha=64), "adapter 'pl': lora_alpha 64 in adapter_config.json, run says 32"),
    (lambda p: edit_config(p, target_modules=["q_proj", "v_proj"]),
     "adapter 'pl': targets differ: adapter_config.json targets 12 modules, run says 32"),
    (lambda p: (p / "adapters/pt/adapter_model.safetensors").write_bytes(
        (p / "adapters/pt/adapter_model.safetensors").read_bytes()[:-4] + b"\0\0\0\0"),
     "adapters/pt/adapter_model.safetensors: checksum mismatch (corrupted or modified)"),
    (lambda p: (p / "adapters/de/adapter_model.safetensors").unlink(), "adapters/de/adapter_model.safetensors: missing"),
    (lambda p: shutil.rmtree(p / "adapters/pl"), "adapter_config.json: missing"),
    (lambda p: (p / "lora_whisper.json").unlink(), "lora_whisper.json: missing"),
])
def test_refusals(run, tiny_dir, damage, message):
    path, _ = run
    damage(path)
    with pytest.raises(AdapterError) as err:
        load_run(path, load_backbone(str(tiny_dir)))
    assert message in str(err.value)


def test_other_backbone_is_refused(run, tmp_path):
    path, bank = run
    other = load_backbone(str(save_tiny(tmp_path / "other", seed=1)))
    with pytest.raises(AdapterError, match="backbone fingerprint differs: run made with"):
        load_run(path, other)
    with pytest.raises(AdapterError, match="backbone fingerprint differs"):
        save_run(path, bank, other)


def test_other_spec_is_refused_when_saving_into_a_run(run, tiny_dir):
    path, _ = run
    other = inject(load_backbone(str(tiny_dir)).model, LoraSpec(r=8), ["pl"])
    with pytest.raises(AdapterError, match="LoRA spec differs"):
        save_run(path, other, load_backbone(str(tiny_dir)))


@pytest.mark.parametrize("side", ["encoder", "decoder"])
def test_one_sided_adapters_load_in_peft(tmp_path, tiny, tiny_dir, side, randomize_bank):
    from peft import PeftModel
    from transformers import WhisperForConditionalGeneration

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, side=side), ["pl"])
    randomize_bank(bank)
    save_run(tmp_path / "run", bank, tiny)
    pm = PeftModel.from_pretrained(WhisperForConditionalGeneration.from_pretrained(str(tiny_dir)),
                                   str(tmp_path / "run/adapters/pl")).eval()
    bank.model.eval()
    with routed(bank.routing_for(["pl"])):
        ours = hf_logits(bank.model)
    assert (hf_logits(pm) - ours).abs().max() <= 1e-5
    bank2, _ = load_run(tmp_path / "run", load_backbone(str(tiny_dir)))
    assert list(bank2.layers) == list(bank.layers) and all(p.startswith(f"model.{side}.") for p in bank2.layers)
