"""Same numbers whichever path: peft, our forward, mixed batch vs row alone, cached decoding,
MoE formula, merged weights."""
import pytest
import torch

from lora_whisper.adapters import LoraSpec, Routing, routed
from lora_whisper.backbone.forward import decoder_logits, decoder_step, encode, init_cache
from lora_whisper.backbone.load import load_backbone

TOL = 1e-5


def logits(model, feats, lengths, tokens):
    enc, keep = encode(model, feats, lengths)
    return decoder_logits(model, tokens, enc, keep)


def close(a, b, tol=TOL):
    return (a - b).abs().max().item() <= tol


@pytest.mark.parametrize("spec", [LoraSpec(), LoraSpec(r=4, alpha=8, side="decoder", targets=("q_proj", "fc2"))])
def test_single_language_equals_peft(make_bank, tiny_dir, spec):
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    bank = make_bank(spec=spec)
    model = bank.model.eval()
    ref = load_backbone(str(tiny_dir)).model
    pm = get_peft_model(ref, LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                                        target_modules=spec.peft_target_regex())).eval()
    assert set_peft_model_state_dict(pm, bank.state_dict_of("pt")).unexpected_keys == []
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 80, 3000, generator=g)  # transformers' forward insists on 30 s
    ids = torch.tensor([[50258, 50267, 50359, 50363, 440, 1080]] * 2)
    with torch.no_grad(), routed(bank.routing_for(["pt", "pt"])):
        ours_hf = model(input_features=feats, decoder_input_ids=ids).logits
        ours = logits(model, feats, None, ids)
    with torch.no_grad():
        theirs = pm(input_features=feats, decoder_input_ids=ids).logits
        with pm.disable_adapter():
            plain = pm(input_features=feats, decoder_input_ids=ids).logits
    assert close(ours_hf, theirs)
    assert close(ours, theirs)  # our forward walk vs transformers' (same Linear modules)
    assert not close(theirs, plain, 1e-3)  # the adapter does something


def test_mixed_batch_equals_each_row_alone(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model.eval()
    rows = ["pl", None, "de"]
    with torch.no_grad():
        with routed(bank.routing_for(rows)):
            mixed = logits(model, feats, lengths, tokens)
        for i, lang in enumerate(rows):
            with routed(bank.routing_for([lang])):
                alone = logits(model, feats[i:i + 1, :, :lengths[i]], lengths[i:i + 1], tokens[i:i + 1])
            assert close(mixed[i], alone[0]), lang
        with routed(Routing.none(3)):
            bare = logits(model, feats, lengths, tokens)
        assert torch.equal(logits(model, feats, lengths, tokens), bare)
    # A row with no adapter gets the backbone's own numbers, bit for bit.
    assert torch.equal(mixed[1], bare[1])
    assert not close(mixed[0], bare[0], 1e-3)


def test_cached_decoding_with_beams_matches_rows_alone(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model.eval()
    rows = ["de", "pl", None]
    beam = 2

    def run(route_rows, f, n, toks):
        routing = bank.routing_for(route_rows)
        out = []
        with torch.no_grad():
            with routed(routing):
                enc, keep = encode(model, f, n)
                cache = init_cache(model, enc, keep)
            beams = routing.repeat_interleave(beam)
            cache = cache.select(torch.arange(len(route_rows)).repeat_interleave(beam))
            toks = toks.repeat_interleave(beam, 0)
            with routed(beams):
                out.append(decoder_step(model, toks[:, :4], cache))
                for t in range(4, toks.shape[1]):
                    out.append(decoder_step(model, toks[:, t:t + 1], cache))
            # Drop every second beam, as a decoder drops finished rows.
            keep_rows = torch.arange(0, toks.shape[0], 2)
            cache = cache.select(keep_rows)
            with routed(beams.index_select(keep_rows)):
                out.append(decoder_step(model, toks[keep_rows, -1:], cache).repeat_interleave(beam, 0))
        return torch.cat(out, dim=1)

    mixed = run(rows, feats, lengths, tokens)
    with torch.no_grad(), routed(bank.routing_for(rows)):
        full = logits(model, feats, lengths, tokens)
    assert close(mixed[::beam, : tokens.shape[1]], full)
    for i, lang in enumerate(rows):
        alone = run([lang], feats[i:i + 1, :, :lengths[i]], lengths[i:i + 1], tokens[i:i + 1])
        assert close(mixed[i * beam:(i + 1) * beam], alone), lang


def test_moe_row_is_the_formula(make_bank):
    bank = make_bank()
    layer = bank.layers["model.decoder.layers.1.encoder_attn.v_proj"]
    x = torch.randn(3, 5, layer.in_features)
    mix = {"pl": 0.6, "de": 0.25}
    with torch.no_grad(), routed(bank.routing_for([mix, "pt", None])):
        y = layer(x)
    base = layer.base_layer(x)
    s = bank.spec.scale
    manual = base[0] + sum(w * s * (x[0] @ layer.lora_A[bank.index(n)].T @ layer.lora_B[bank.index(n)].T)
                           for n, w in mix.items())
    pt = bank.index("pt")
    assert close(y[0], manual)
    assert close(y[1], base[1] + s * (x[1] @ layer.lora_A[pt].T @ layer.lora_B[pt].T))
    assert torch.equal(y[2], base[2])


def test_moe_row_in_a_batch_equals_it_alone(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model.eval()
    rows = [{"pl": 0.5, "pt": 0.3, "de": 1.0}, "pt", None]
    with torch.no_grad():
        with routed(bank.routing_for(rows)):
            mixed = logits(model, feats, lengths, tokens)
        with routed(bank.routing_for(rows[:1])):
            alone = logits(model, feats[:1], lengths[:1], tokens[:1])
    assert close(mixed[0], alone[0])


def test_merge_equals_routed_and_unmerge_is_bit_exact(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        with routed(bank.routing_for(["pt"] * 3)):
            routed_out = logits(model, feats, lengths, tokens)
        bank.merge("pt")
        merged = logits(model, feats, lengths, tokens)  # no routing: plain Whisper, expert baked in
        with routed(bank.routing_for(["pt"] * 3)):
            assert torch.equal(logits(model, feats, lengths, tokens), merged)
        with routed(bank.routing_for(["pl"] * 3)), pytest.raises(RuntimeError, match="merged"):
            logits(model, feats, lengths, tokens)
        bank.unmerge()
    assert close(merged, routed_out)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bf16_autocast_runs_mixed_moe_and_trains(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model
    params = bank.set_trainable(["pl"])
    model.train()
    with routed(bank.routing_for(["pl", {"pl": 0.5, "pt": 0.5}, None])):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = logits(model, feats, lengths, tokens)
        out.float().logsumexp(-1).mean().backward()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in params)
    model.eval()
    with torch.no_grad(), routed(bank.routing_for(["pl", "pt", "de"])):
        ref = logits(model, feats, lengths, tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = logits(model, feats, lengths, tokens)
    assert (low.float() - ref).abs().max() < 0.5
