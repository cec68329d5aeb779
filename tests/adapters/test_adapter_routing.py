import pytest
import torch

import threading

from lora_whisper.adapters import AdapterError, Routing, current_routing, routed


def test_kinds():
    assert Routing.none(3).kind == "bare"
    r = Routing.from_indices(torch.tensor([1, 1, 1]), 3)
    assert (r.kind, r.expert) == ("single", 1)
    assert Routing.from_indices([0, -1, 0], 3).kind == "rows"
    assert Routing.from_indices([0, 2, 1], 3).kind == "rows"
    assert Routing.from_weights(torch.tensor([[0.0, 1.0], [0.0, 1.0]])).kind == "single"
    assert Routing.from_weights(torch.tensor([[0.5, 0.5], [0.0, 1.0]])).kind == "mixture"
    assert Routing.from_weights(torch.zeros(2, 4)).kind == "bare"
    with pytest.raises(ValueError):
        Routing.from_indices([3], 3)


def test_slots_list_each_rows_experts():
    r = Routing.from_weights(torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    s0, s1 = r.slots()
    assert s0.rows.tolist() == [0, 2] and s0.experts == [0, 2] and s0.weights.tolist() == [0.5, 1.0]
    assert s1.rows.tolist() == [0] and s1.experts == [1]
    (only,) = Routing.from_indices([2, 0, 1], 3).slots()
    assert only.rows is None and only.weights is None and only.experts == [2, 0, 1]


def test_repeat_and_select_follow_the_rows():
    r = Routing.from_indices([0, -1, 2], 3).repeat_interleave(2)
    assert r.index.tolist() == [0, 0, -1, -1, 2, 2]
    assert r.index_select(torch.tensor([4, 0])).index.tolist() == [2, 0]
    w = Routing.from_weights(torch.tensor([[0.3, 0.7], [1.0, 0.0]])).repeat_interleave(2).index_select([1, 2])
    assert torch.allclose(w.dense(), torch.tensor([[0.3, 0.7], [1.0, 0.0]]))
    assert Routing.from_indices([1, -1], 2).dense().tolist() == [[0.0, 1.0], [0.0, 0.0]]


def test_state_set_get_and_context(make_bank):
    bank = make_bank()
    assert current_routing() is None
    r = bank.routing_for(["pl", None, "de"])
    assert r.index.tolist() == [0, -1, 2]
    with routed(r):
        assert current_routing() is r
        with routed(None):   # an inner call on the bare backbone
            assert current_routing() is None
        assert current_routing() is r
    assert current_routing() is None
    assert not hasattr(bank.model, "lora_routing")   # routing is per call, not on the model


def test_routing_is_per_thread(make_bank):
    bank = make_bank()
    r = bank.routing_for(["pl"])
    seen = []
    with routed(r):
        t = threading.Thread(target=lambda: seen.append(current_routing()))
        t.start()
        t.join()
        assert current_routing() is r
    assert seen == [None]


def test_learned_weights_keep_their_graph():
    g = torch.tensor([0.25, 0.5], requires_grad=True)
    W = torch.stack([torch.ones(()), g[0], g[1]]).expand(2, -1)
    r = Routing.from_weights(W)
    assert r.kind == "mixture" and not r.weights.requires_grad
    total = sum(s.weights.sum() for s in r.slots())
    total.backward()
    assert g.grad.tolist() == [2.0, 2.0]
    beams = r.repeat_interleave(2).index_select([0, 3])
    assert beams.live is not None and torch.allclose(beams.dense(), W.detach())


def test_routing_for_names_mixtures_and_unknown(make_bank):
    bank = make_bank(["pl", "shared"])  # names are free-form
    assert bank.routing_for(["shared", "shared"]).kind == "single"
    m = bank.routing_for([{"pl": 0.25, "shared": 0.75}, "pl", None])
    assert m.kind == "mixture"
    assert m.dense().tolist() == [[0.25, 0.75], [1.0, 0.0], [0.0, 0.0]]
    with pytest.raises(AdapterError, match="no adapter for 'cy'"):
        bank.routing_for(["pl", "cy"])
    assert bank.routing_for(["cy", "pl"], allow_unknown=True).index.tolist() == [-1, 0]
