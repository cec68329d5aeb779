"""Language similarity: the averaging rule on fabricated LID distributions, and the command
end to end on a tiny run."""
from __future__ import annotations

import json

import pytest

from lora_whisper.errors import UserError
from lora_whisper.expansion.similarity import Similarity, average_similarity


def test_fabricated_distributions_rank_by_mean_probability():
    dists = [
        {"pt": 0.70, "es": 0.20, "it": 0.05, "pl": 0.01, "en": 0.04},
        {"pt": 0.50, "es": 0.30, "it": 0.15, "pl": 0.01, "en": 0.04},
        {"pt": 0.80, "es": 0.05, "it": 0.10, "pl": 0.01, "en": 0.04},
    ]
    sim = average_similarity(dists, ["pl", "it", "es"])
    assert list(sim.scores) == ["es", "it", "pl"]
    mean = {"es": 0.55 / 3, "it": 0.30 / 3, "pl": 0.03 / 3}
    mass = sum(mean.values())
    assert sim.base_mass == pytest.approx(mass)
    for c, m in mean.items():
        assert sim.scores[c] == pytest.approx(m / mass)
    assert sum(sim.scores.values()) == pytest.approx(1.0)
    assert sim.most_similar == "es" and sim.top(2) == list(sim.scores.items())[:2]
    assert list(sim.detected)[0] == "pt"  # the new language itself, not among the run's


def test_mean_first_weights_utterances_by_their_mass_on_the_run_languages():
    # Utterance 1 is confidently the new language: its 1e-4 tail (all on pl) must not outvote
    # utterance 2, which puts real mass on es. Renormalising per utterance first would tie them.
    dists = [{"pt": 0.9999, "pl": 1e-4, "es": 0.0},
             {"pt": 0.6, "es": 0.4, "pl": 0.0}]
    sim = average_similarity(dists, ["pl", "es"])
    assert sim.most_similar == "es" and sim.scores["es"] > 0.99
    per_utt = [{c: d[c] / (d["pl"] + d["es"]) for c in ("pl", "es")} for d in dists]
    assert sum(p["pl"] for p in per_utt) == pytest.approx(sum(p["es"] for p in per_utt))


def test_ties_are_broken_by_code_and_round_trip_through_json():
    sim = average_similarity([{"it": 0.25, "es": 0.25, "pt": 0.5}], ["it", "es"])
    assert list(sim.scores) == ["es", "it"]
    again = Similarity.from_dict(json.loads(json.dumps(sim.to_dict())))
    assert list(again.scores) == ["es", "it"] and again.n_utterances == 1


def test_refuses_nothing_to_rank():
    with pytest.raises(UserError, match="no language"):
        average_similarity([{"pt": 1.0}], [])
    with pytest.raises(UserError, match="no probability"):
        average_similarity([{"pt": 1.0, "es": 0.0}], ["es"])
    with pytest.raises(UserError, match="no utterance"):
        average_similarity([], ["es"])


def test_uses_the_bare_backbone_even_with_adapters_injected(base_run, corpus):
    """The probabilities are those of Whisper alone: the same with the run's (nonzero)
    experts loaded into the model as without them."""
    from lora_whisper.adapters.routing import routed
    from lora_whisper.adapters.run import load_run, read_run
    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.expansion.similarity import similarity_for_run

    info = read_run(base_run)
    bare = load_backbone(info.backbone_source)
    sim_bare, code = similarity_for_run(base_run, str(corpus["train-pt"]), backbone=bare)
    loaded = load_backbone(info.backbone_source)
    bank, _ = load_run(base_run, loaded)
    with routed(bank.routing_for(["es"] * 1)):  # a caller's routing must not leak in
        sim_loaded, _ = similarity_for_run(base_run, str(corpus["train-pt"]), backbone=loaded)
    assert code == "pt"
    assert sim_bare.scores == pytest.approx(sim_loaded.scores, abs=1e-6)
    assert set(sim_bare.scores) == {"pl", "es", "it"}


def test_cli_table_and_json(base_run, corpus, capsys):
    from lora_whisper.cli import main

    assert main(["similarity", "--run", str(base_run), "--data", str(corpus["train-pt"]),
                 "--max-utterances", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["language"] == "pt" and out["n_utterances"] == 3
    assert sorted(out["scores"]) == ["es", "it", "pl"]
    assert sum(out["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert out["ranking"] == sorted(out["scores"], key=lambda c: (-out["scores"][c], c))

    assert main(["similarity", "--run", str(base_run), "--data", str(corpus["train"]),
                 "--language", "pt", "--max-utterances", "2"]) == 0
    table = capsys.readouterr().out
    assert "similarity of 'pt'" in table and all(c in table for c in ("pl", "es", "it"))
    # a code Whisper lacks is read too (its rows would be refused by the plain readers)
    assert main(["similarity", "--run", str(base_run), "--data", str(corpus["train-xx"]),
                 "--language", "xx", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["language"] == "xx"


def test_cli_refusals(base_run, corpus, tmp_path, capsys):
    from lora_whisper.cli import main

    assert main(["similarity", "--run", str(tmp_path / "nope"), "--data", str(corpus["train-pt"])]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["similarity", "--run", str(base_run), "--data", str(corpus["train"])]) == 2
    assert "several languages" in capsys.readouterr().err
