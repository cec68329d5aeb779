import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from lora_whisper.adapters import LoraSpec, inject
from lora_whisper.adapters.files import peft_hits


def whisper_base_on_meta():
    cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=512, encoder_layers=6, decoder_layers=6,
                        encoder_attention_heads=8, decoder_attention_heads=8,
                        encoder_ffn_dim=2048, decoder_ffn_dim=2048)
    with torch.device("meta"):
        return WhisperForConditionalGeneration(cfg)


def test_whisper_base_r32_all_targets_is_4_325_376_per_language():
    model = whisper_base_on_meta()
    with torch.device("meta"):
        bank = inject(model, LoraSpec(r=32), ["pl", "pt"])
    counts = bank.count_parameters()
    assert counts.per_expert == {"pl": 4_325_376, "pt": 4_325_376}
    assert counts.total == 2 * 4_325_376
    assert len(bank.layers) == 6 * 6 + 6 * 10


def test_peft_agrees_on_the_count_and_modules():
    from peft import LoraConfig, get_peft_model

    spec = LoraSpec(r=32)
    pm = get_peft_model(whisper_base_on_meta(), LoraConfig(r=32, lora_alpha=32, target_modules=spec.peft_target_regex()))
    trainable = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    assert trainable == 4_325_376


@pytest.mark.parametrize("side,targets,n", [
    ("both", ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), 32),
    ("encoder", ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"), 12),
    ("decoder", ("q_proj", "v_proj"), 8),
    ("both", ("encoder_attn.q_proj", "fc1"), 6),
    ("decoder", ("self_attn.out_proj",), 2),
])
def test_targets_and_peft_regex_hit_the_same_modules(tiny, side, targets, n):
    spec = LoraSpec(side=side, targets=targets)
    names = [k for k, m in tiny.model.named_modules() if isinstance(m, torch.nn.Linear)]
    ours = [k for k in names if spec.matches(k)]
    assert len(ours) == n
    assert peft_hits(spec.peft_target_regex(), names) == ours
    assert "proj_out" not in ours


def test_module_name_resolution():
    spec = LoraSpec()
    assert spec.matches("model.encoder.layers.0.self_attn.q_proj")
    assert spec.matches("model.decoder.layers.5.encoder_attn.out_proj")
    assert spec.matches("model.decoder.layers.11.fc2")
    assert not spec.matches("model.encoder.layers.0.self_attn_layer_norm")
    assert not spec.matches("proj_out")
    assert not spec.matches("model.encoder.layers.0.encoder_attn.q_proj")  # encoders have no cross-attn
    assert not LoraSpec(side="decoder").matches("model.encoder.layers.0.fc1")


def test_spec_round_trip_and_validation():
    spec = LoraSpec(r=8, alpha=16, dropout=0.1, targets=("q_proj",), side="decoder")
    assert LoraSpec.from_dict(spec.to_dict()) == spec
    assert spec.scale == 2.0
    with pytest.raises(ValueError, match="unknown LoRA target"):
        LoraSpec(targets=("gate_proj",))
    with pytest.raises(ValueError, match="side"):
        LoraSpec(side="middle")
    with pytest.raises(ValueError, match="rank"):
        LoraSpec(r=0)
