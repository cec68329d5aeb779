"""add-language: each init starts where it should, the mixture survives a reload, existing
experts never change, new codes prompt with the named token, full-ft goes elsewhere, and
every refusal says why."""
from __future__ import annotations

import json
import tomllib

import pytest
import torch
from safetensors.torch import load_file

from lora_whisper.errors import UserError
from lora_whisper.expansion import AddLanguageConfig, add_language
from lora_whisper.expansion.similarity import Similarity

# pl first on purpose: the tiny model's own LID would not pick it, so a warm start from pl
# proves the similarity given decides.
FAKE = Similarity({"pl": 0.5, "it": 0.3, "es": 0.2}, n_utterances=4, base_mass=0.1)


@pytest.fixture()
def spy_fit(monkeypatch):
    """Record what the loop is handed (the new expert's start, the routing, the data)."""
    import lora_whisper.training.loop as loop

    real = loop.fit
    seen = {}

    def fit(plan, data, config, run_dir, world, dev_scorer=None):
        new = plan.trained[0]
        seen["start"] = plan.bank.state_dict_of(new) if plan.bank is not None else None
        seen["routing"] = plan.routing_fn({"language_index": torch.tensor([0, 0])})
        seen["data"] = data
        seen["params"] = dict(plan.params)
        return real(plan, data, config, run_dir, world, dev_scorer)

    monkeypatch.setattr(loop, "fit", fit)
    return seen


def add(run, language, data, similarity=None, log=None, **settings):
    """add-language as the API takes it: one AddLanguageConfig (training settings in `train`)."""
    return add_language(AddLanguageConfig(run=run, language=language, data=data, **settings),
                        similarity=similarity, log=log)


def _weights(run, name):
    return load_file(str(run / "adapters" / name / "adapter_model.safetensors"))


def _entries(run):
    return {e["name"]: e for e in json.loads((run / "lora_whisper.json").read_text())["experts"]}


def test_warm_start_copies_exactly_the_most_similar_expert(base_run, corpus, fast, spy_fit):
    res = add(base_run, "pt", str(corpus["train-pt"]), init="warm", similarity=FAKE,
                       train=fast, log=None)
    assert res.warm_from == "pl"
    pl = _weights(base_run, "pl")
    start = spy_fit["start"]
    assert set(start) == set(pl) and all(torch.equal(start[k], pl[k]) for k in pl)
    prov = _entries(base_run)["pt"]["provenance"]
    assert prov["init"] == "warm" and prov["warm_from"] == "pl" and prov["similarity"]["scores"]["pl"] == 0.5
    # trained away from the copy, as its own expert
    after = _weights(base_run, "pt")
    assert any(not torch.equal(after[k], pl[k]) for k in pl)
    # the training record stays; staging copies of weights and optimizer state do not
    work = base_run / "expansion" / "pt"
    assert sorted(p.name for p in work.iterdir()) == ["fit.json", "metrics.jsonl", "train_config.toml"]


def test_warm_start_follows_the_measured_similarity(base_run, corpus, fast):
    res = add(base_run, "pt", str(corpus["train-pt"]), init="warm", train=fast, log=None)
    assert res.warm_from == res.similarity.most_similar
    assert _entries(base_run)["pt"]["provenance"]["similarity"]["n_utterances"] == 4


def test_random_init_starts_as_the_bare_backbone(base_run, corpus, fast, spy_fit):
    add(base_run, "pt", str(corpus["train-pt"]), init="random", similarity=FAKE, train=fast, log=None)
    assert all(float(t.abs().sum()) == 0 for k, t in spy_fit["start"].items() if "lora_B" in k)
    assert spy_fit["routing"].kind == "single"


def test_moe_mixture_is_stored_and_reproduced_at_load(base_run, corpus, fast, spy_fit):
    from lora_whisper.inference.transcriber import load

    res = add(base_run, "pt", str(corpus["train-pt"]), init="moe", similarity=FAKE, top_k=2,
                       train=fast, log=None)
    want = {"pt": 1.0, "pl": 0.5 / 0.8, "it": 0.3 / 0.8}
    assert res.mixture == pytest.approx(want)
    prov = _entries(base_run)["pt"]["provenance"]
    assert prov["moe"]["experts"] == pytest.approx(want) and prov["moe"]["top_k"] == 2
    assert prov["moe"]["learned_gates"] is False
    # only the new expert trains
    names = {n for n in spy_fit["params"]}
    assert names and all(".lora_A.3" in n or ".lora_B.3" in n for n in names)

    t = load(run=base_run)
    assert t.run_info.mixture("pt") == pytest.approx(want)
    order = t.bank.experts
    assert order == ["pl", "es", "it", "pt"]
    vec = torch.tensor([want.get(n, 0.0) for n in order])
    assert torch.allclose(t.routing_for(["pt"]).dense()[0], vec)
    assert torch.allclose(spy_fit["routing"].dense()[0], vec)  # training routed the same mixture
    # decoding through the Transcriber == decoding with that mixture set by hand
    from lora_whisper.inference.decoding import decode_batch

    audio = t.load_input(str(corpus["dev-pt"].parent / "pt-4.wav"))
    out = t.transcribe(audio, language="pt", max_new_tokens=4)
    feats, lens = t.features_of([audio])
    manual = decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence("pt")],
                          routing=t.bank.routing_for([want]), options=t.options.__class__(max_new_tokens=4))
    assert out.text == manual[0].text


def test_moe_top_k_one_and_more_than_the_run_has(base_run, corpus, fast):
    res = add(base_run, "pt", str(corpus["train-pt"]), init="moe", similarity=FAKE, top_k=5,
                       train=fast, log=None)
    assert res.mixture == pytest.approx({"pt": 1.0, "pl": 0.5, "it": 0.3, "es": 0.2})


def test_learned_gates_equal_the_stored_mixture_and_move(base_run, corpus, fast):
    from lora_whisper.adapters.routing import routed as routed_scope
    from lora_whisper.adapters.run import load_run
    from lora_whisper.backbone.forward import decoder_logits, encode
    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.expansion.gates import LearnedGates

    # the hook computes what the layer computes for the same mixture
    bb = load_backbone(json.loads((base_run / "lora_whisper.json").read_text())["backbone"]["source"])
    bank, _ = load_run(base_run, bb)
    bank.add_language("pt", init="copy:es")
    gates = LearnedGates(bank, {"pl": 0.7, "it": 0.2})
    with torch.no_grad():
        gates.theta.add_(torch.tensor([0.001, -0.002]))
    feats = torch.randn(2, 80, 40, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[50258, 50267, 50359, 50363, 440]] * 2)

    def logits(routing):
        with routed_scope(routing):
            enc, keep = encode(bb.model, feats, None)
            return decoder_logits(bb.model, ids, enc, keep)

    with torch.no_grad():
        hooked = logits(gates.routing("pt", 2))
        mix = {"pt": 1.0, **gates.mixture()}
        routed = logits(bank.routing_for([mix, mix]))
    assert torch.allclose(hooked, routed, atol=1e-5)

    res = add(base_run, "pt", str(corpus["train-pt"]), init="moe", learned_gates=True,
                       similarity=FAKE, dev=str(corpus["dev-pt"]), train=fast, log=None)
    prov = _entries(base_run)["pt"]["provenance"]["moe"]
    assert prov["learned_gates"] is True and prov["experts"] == pytest.approx(res.mixture)
    assert res.mixture["pt"] == 1.0
    assert res.mixture["pl"] != pytest.approx(0.625, abs=1e-4)  # lr 1e-2 x GATE_SCALE moves it


def test_existing_experts_bitwise_unchanged(base_run, corpus, fast, digest):
    before_files = {k: v for k, v in digest(base_run).items() if k.startswith("adapters/")}
    before_entries = _entries(base_run)
    before_tensors = {n: _weights(base_run, n) for n in before_entries}
    add(base_run, "pt", str(corpus["train-pt"]), init="moe", similarity=FAKE, train=fast, log=None)
    add(base_run, "xx", str(corpus["train-xx"]), init="warm", prompt_language="de",
                 similarity=FAKE, train=fast, log=None)
    after = digest(base_run)
    assert {k: after[k] for k in before_files} == before_files
    entries = _entries(base_run)
    assert list(entries)[:3] == list(before_entries)
    for n, e in before_entries.items():
        assert entries[n]["sha256"] == e["sha256"] and entries[n]["provenance"] == e["provenance"]
        now = _weights(base_run, n)
        assert all(torch.equal(now[k], before_tensors[n][k]) for k in now)
    # and the loader still verifies every checksum
    from lora_whisper.adapters.run import load_run
    from lora_whisper.backbone.load import load_backbone

    bank, info = load_run(base_run, load_backbone(info_source(base_run)))
    assert info.experts == ["pl", "es", "it", "pt", "xx"]


def info_source(run):
    return json.loads((run / "lora_whisper.json").read_text())["backbone"]["source"]


def test_out_copies_the_run_and_leaves_the_original_alone(base_run, corpus, fast, digest, tmp_path):
    before = digest(base_run)
    out = tmp_path / "run2"
    add(base_run, "pt", str(corpus["train-pt"]), init="random", out=out, similarity=FAKE,
                 train=fast, log=None)
    assert digest(base_run) == before
    assert list(_entries(out)) == ["pl", "es", "it", "pt"]
    copied = digest(out)
    assert all(copied[k] == v for k, v in before.items() if k.startswith("adapters/"))


def test_new_code_prompts_with_the_named_token(base_run, corpus, fast, spy_fit):
    res = add(base_run, "xx", str(corpus["train-xx"]), init="warm", prompt_language="Spanish",
                       similarity=FAKE, dev=str(corpus["dev-xx"]), train=fast, log=None)
    assert res.prompt_language == "es"
    prov = _entries(base_run)["xx"]["provenance"]
    assert prov["prompt_language"] == "es"
    data = spy_fit["data"]
    assert data.languages == ["es"] and {u.language for u in data.train} == {"es"}
    assert {u.id for u in data.train} == {f"xx-{i}" for i in range(4)}
    cfg = tomllib.loads((base_run / "expansion" / "xx" / "train_config.toml").read_text())
    assert cfg["languages"] == ["es"]
    # a Whisper language records its own token
    add(base_run, "pt", str(corpus["train-pt"]), init="random", similarity=FAKE, train=fast, log=None)
    assert _entries(base_run)["pt"]["provenance"]["prompt_language"] == "pt"


def test_full_ft_writes_a_separate_run_and_leaves_the_original(base_run, corpus, fast, digest, tmp_path):
    from lora_whisper.evaluation.systems import load_system

    before = digest(base_run)
    out = tmp_path / "ft"
    res = add(base_run, "pt", str(corpus["train-pt"]), init="full-ft", out=out,
                       dev=str(corpus["dev-pt"]), similarity=FAKE, train=dict(fast, lr=1e-3), log=None)
    assert digest(base_run) == before
    assert (out / "model" / "model.safetensors").exists() and res.run == out
    meta = json.loads((out / "lora_whisper.json").read_text())
    assert meta["full_ft"]["language"] == "pt" and meta["full_ft"]["init"] == "full-ft"
    assert meta["backbone"]["fingerprint"] != json.loads((base_run / "lora_whisper.json").read_text())["backbone"]["fingerprint"]
    assert [e["name"] for e in meta["experts"]] == ["pl", "es", "it"]
    after = digest(out)
    assert all(after[k] == v for k, v in before.items() if k.startswith("adapters/"))
    assert not (out / "expansion" / "pt" / "checkpoints").exists()
    system = load_system(out, batch_size=2)  # old experts on the fine-tuned backbone
    assert system.kind == "adapters" and system.transcriber.bank.experts == ["pl", "es", "it"]
    r = system.transcriber.transcribe(str(corpus["dev-pt"].parent / "pt-4.wav"), language="pt", max_new_tokens=2)
    assert r.expert is None  # the new language decodes with the tuned backbone alone


def test_refusals(base_run, corpus, fast, tmp_path, digest):
    before = digest(base_run)
    data = str(corpus["train-pt"])
    with pytest.raises(UserError, match="already has an expert for 'es'"):
        add(base_run, "es", data, init="random", train=fast, log=None)
    with pytest.raises(UserError, match="unknown language 'qq'"):
        add(base_run, "xx", str(corpus["train-xx"]), init="random", prompt_language="qq",
                     train=fast, log=None)
    with pytest.raises(UserError, match="--prompt-language"):
        add(base_run, "xx", str(corpus["train-xx"]), init="random", train=fast, log=None)
    with pytest.raises(UserError, match="no such run directory"):
        add(tmp_path / "missing", "pt", data, init="random", train=fast, log=None)
    with pytest.raises(UserError, match="give --out"):
        add(base_run, "pt", data, init="full-ft", train=fast, log=None)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        add(base_run, "pt", data, init="random", out=tmp_path / "busy", train=fast, log=None)
    with pytest.raises(UserError, match="--init moe"):
        add(base_run, "pt", data, init="warm", learned_gates=True, train=fast, log=None)
    with pytest.raises(UserError, match="unknown --init"):
        add(base_run, "pt", data, init="lukewarm", train=fast, log=None)
    with pytest.raises(UserError, match="no utterances"):
        add(base_run, "de", str(corpus["train"]), init="random", similarity=FAKE, train=fast, log=None)
    assert digest(base_run) == before


def test_refuses_a_run_whose_expert_was_modified(base_run, corpus, fast):
    w = base_run / "adapters" / "it" / "adapter_model.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-1] ^= 1
    w.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="do not match the checksum"):
        add(base_run, "pt", str(corpus["train-pt"]), init="random", similarity=FAKE, train=fast, log=None)


def test_guard_restores_the_run_file_when_an_old_expert_is_written(base_run, corpus, fast, monkeypatch):
    """If saving ever rewrote an old expert, the command fails and the run file is put back."""
    import lora_whisper.adapters.run as files

    real = files.save_run

    def evil_save_run(run_dir, bank, backbone, provenance=None, only=None):
        with torch.no_grad():
            bank.layers[next(iter(bank.layers))].lora_B[0].add_(1.0)
        return real(run_dir, bank, backbone, provenance, only=list(only) + ["pl"])

    run_file = (base_run / "lora_whisper.json").read_bytes()
    monkeypatch.setattr(files, "save_run", evil_save_run)
    with pytest.raises(UserError, match="changed"):
        add(base_run, "pt", str(corpus["train-pt"]), init="random", similarity=FAKE, train=fast, log=None)
    assert (base_run / "lora_whisper.json").read_bytes() == run_file


def test_cli_end_to_end(base_run, corpus, capsys, tmp_path):
    from lora_whisper.cli import main

    common = ["--steps", "1", "--batch-size", "2", "--num-workers", "0", "--no-bf16", "--no-progress"]
    assert main(["add-language", "--run", str(base_run), "--language", "pt", "--data", str(corpus["train-pt"]),
                 "--dev", str(corpus["dev-pt"]), "--init", "moe", "--top-k", "1", "--json", *common]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["language"] == "pt" and out["init"] == "moe" and len(out["mixture"]) == 2
    assert out["mixture"][out["language"]] == 1.0
    top = next(iter(out["similarity"]))
    assert out["mixture"][top] == pytest.approx(1.0)
    assert main(["add-language", "--run", str(base_run), "--language", "pt", "--data", str(corpus["train-pt"]),
                 "--init", "random", *common]) == 2
    assert "already has an expert for 'pt'" in capsys.readouterr().err
    assert main(["add-language", "--run", str(base_run), "--language", "xx", "--data", str(corpus["train-xx"]),
                 "--init", "random", "--prompt-language", "zz", *common]) == 2
    assert "unknown language 'zz'" in capsys.readouterr().err
    assert main(["add-language", "--run", str(tmp_path / "none"), "--language", "pt", "--data",
                 str(corpus["train-pt"]), "--init", "warm", *common]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_transcriber_prompts_a_new_code_with_its_recorded_token(base_run, corpus, fast):
    from lora_whisper.inference.decoding import decode_batch
    from lora_whisper.inference.transcriber import load

    add(base_run, "xx", str(corpus["train-xx"]), init="random", prompt_language="es",
                 similarity=FAKE, train=fast, log=None)
    t = load(run=base_run)
    audio = t.load_input(str(corpus["dev-xx"].parent / "xx-4.wav"))
    out = t.transcribe(audio, language="xx", max_new_tokens=4)
    assert out.expert == "xx"
    feats, lens = t.features_of([audio])
    manual = decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence("es")],
                          routing=t.bank.routing_for(["xx"]), options=t.options.__class__(max_new_tokens=4))
    assert out.text == manual[0].text
