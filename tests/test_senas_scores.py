"""SE-NAS operator scores (Eq. 5-7), the drop rules of a shrinking stage, and the expanded supernet."""

import itertools

import numpy as np
import pytest
import torch

from hwnas.errors import HwnasError
from hwnas.nn import SuperNet
from hwnas.nn.expanded import ExpandedSuperNet, inherit_weights
from hwnas.space import create_space
from hwnas.search.senas.scores import infeasible_ops, operator_scores, ops_to_drop, selection_importance


def test_score_formula_on_a_hand_built_table():
    si = [np.array([90.0, 70.0]), np.array([80.0, 79.0]), np.array([85.0])]
    sc, s = operator_scores(si)
    assert sc[0] == pytest.approx(100.0) and sc[1] == pytest.approx(0.25) and np.isnan(sc[2])  # Eq. 6: variance in the layer
    mean_si = (90 + 70 + 80 + 79) / 4  # the one-op layer is not scored
    mean_sc = (100 + 100 + 0.25 + 0.25) / 4
    assert s[0] == pytest.approx([(90 / mean_si) / (100 / mean_sc), (70 / mean_si) / (100 / mean_sc)])  # Eq. 7
    assert s[1] == pytest.approx([(80 / mean_si) / (0.25 / mean_sc), (79 / mean_si) / (0.25 / mean_sc)])
    assert np.isnan(s[2][0])
    # SI-only ranks by accuracy: 70 < 79 < 80 < 90; SE-NAS puts the confident layer's weak op first
    _, s_si = operator_scores(si, metric="si")
    assert s_si[0][1] < s_si[1][1] < s_si[1][0] < s_si[0][0]
    # a layer whose ops are tied gives no confident decision
    _, s_tie = operator_scores([np.array([80.0, 80.0]), np.array([90.0, 70.0])])
    assert np.all(np.isinf(s_tie[0])) and np.all(np.isfinite(s_tie[1]))
    with pytest.raises(HwnasError, match="unknown operator score"):
        operator_scores(si, metric="magic")


def test_selection_importance_is_the_mean_accuracy_of_archs_with_the_op():
    space = create_space("nas-bench-macro")
    contrib = np.random.default_rng(1).normal(0, 1, size=(space.num_layers, 3))  # an additive hand-built table

    def accuracy(rows):
        return contrib[np.arange(space.num_layers), rows].sum(axis=1)

    si, n = selection_importance(space, accuracy, 4000, np.random.default_rng(0))
    expected = contrib + (contrib.mean(axis=1).sum() - contrib.mean(axis=1))[:, None]
    assert np.all(np.concatenate(n) == 4000)
    sd = np.sqrt(sum(contrib[j].var() for j in range(space.num_layers)) / 4000)
    assert np.abs(np.array(si) - expected).max() < 5 * sd


def test_a_stage_keeps_at_least_one_op_per_layer():
    space = create_space("nas-bench-macro")
    scores = [np.array([1.0, 2.0, 3.0]) + j for j in range(space.num_layers)]
    drops = ops_to_drop(space, scores, k=100)
    assert len(drops) == 2 * space.num_layers  # all but one op of every layer
    kept = {j: set(space.layers[j].choice_ids) - {o for jj, o in drops if jj == j} for j in range(space.num_layers)}
    assert all(kept[j] == {space.layers[j].choice_ids[2]} for j in kept)  # the best-scored op survives
    # the K lowest overall, not per layer
    assert ops_to_drop(space, scores, k=3) == [(0, space.layers[0].choice_ids[0]), (0, space.layers[0].choice_ids[1]),
                                                (1, space.layers[1].choice_ids[0])]


def test_budget_infeasible_ops_go_first_and_match_enumeration():
    space = create_space("nas-bench-macro")
    X = np.array(list(itertools.product(*(range(len(layer.choices)) for layer in space.layers))))
    flops = space.flops_of_indices(X)
    budget = int(np.sort(flops)[20])  # a tight budget: only a few archs fit
    bad = infeasible_ops(space, [(space.flops_of_indices, budget)])
    for j, layer in enumerate(space.layers):
        for i in range(len(layer.choices)):
            assert bad[j][i] == (flops[X[:, j] == i].min() > budget)
    assert any(b.any() for b in bad)
    # an infeasible op goes before every scored op, even with the highest score
    scores = [np.where(b, 100.0, np.arange(len(b), dtype=float)) for b in bad]
    n_bad = sum(int(b.sum()) for b in bad)
    drops = ops_to_drop(space, scores, k=n_bad, infeasible=bad)
    assert {(j, space.layers[j].choice_ids[i]) for j, b in enumerate(bad) for i in np.flatnonzero(b)} == set(drops)


def test_expanded_unit_has_a_weight_copy_per_combination():
    base = create_space("tiny")
    space = create_space("tiny", choices=[base.layers[0].choice_ids[:2], base.layers[1].choice_ids[:3],
                                          *[layer.choice_ids for layer in base.layers[2:]]])
    net = ExpandedSuperNet(space, threshold=6, max_archs=50)
    assert net.groups == [(0, 2)]
    shared = SuperNet(space)

    def params(m):
        return sum(p.numel() for p in m.parameters())

    per_block = [[params(shared.layers[j].choices[i]) for i in range(len(space.layers[j].choices))] for j in (0, 1)]
    # layer 0's blocks each appear once per choice of layer 1, and vice versa
    assert params(net.units[0]) == 3 * sum(per_block[0]) + 2 * sum(per_block[1])
    assert params(net) == params(shared) - sum(per_block[0]) - sum(per_block[1]) + params(net.units[0])
    # paths through different combinations share no unit weights; the extracted network runs like the path
    torch.manual_seed(0)
    a, b = space.from_indices([0, 1, 0, 0, 0, 0]), space.from_indices([1, 1, 0, 0, 0, 0])
    pa = {id(p) for p in net.path_parameters(a)}
    assert not pa & {id(p) for p in net.units[0].combos[net.units[0].combo_index([1, 1])].parameters()}
    net.eval()
    x = torch.randn(2, 3, space.resolution, space.resolution)
    assert torch.allclose(net.extract(a).eval()(x), net(x, a), atol=1e-5)
    # a shrunk stage's expanded net starts from the shared weights it expands
    shared.eval()
    assert inherit_weights(net, shared) == len(net.state_dict())
    assert torch.allclose(net(x, b), shared(x, b), atol=1e-5)
