# Copyright (c) pera-mm contributors. All rights reserved.
"""The fixed protocol's bank/query split and weighted kNN top-1."""

import math
from pathlib import Path

import pytest
import torch

from pera_mm.evaluation import split_bank_query, weighted_knn_top1
from pera_mm.utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

# ---------------------------------------------------------------- weighted kNN
BANK = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
BANK_Y = torch.tensor([0, 1, 1, 2])


def hand_vote(query, k, T):
    """The vote written out: sims, the k largest, exp(sim / T) summed per class."""
    q = query / query.norm()
    sims = [float(q @ (b / b.norm())) for b in BANK]
    top = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
    votes = {}
    for i in top:
        votes[int(BANK_Y[i])] = votes.get(int(BANK_Y[i]), 0.0) + math.exp(sims[i] / T)
    return max(sorted(votes), key=lambda c: votes[c]), votes


def test_weights_decide_the_vote_as_computed_by_hand():
    query = torch.tensor([[2.0, 0.0]])  # cosine 1, 0.8, 0, -1 to the bank
    # T = 0.07: class 0 gets e^(1/0.07) = 1.6e6, class 1 e^(0.8/0.07) + e^0 = 9.2e4 + 1
    pred, votes = hand_vote(query[0], 3, 0.07)
    assert pred == 0 and votes[0] == pytest.approx(math.exp(1 / 0.07))
    assert votes[1] == pytest.approx(math.exp(0.8 / 0.07) + 1.0)
    assert weighted_knn_top1(BANK, BANK_Y, query, torch.tensor([0]), k=3) == 100.0
    assert weighted_knn_top1(BANK, BANK_Y, query, torch.tensor([1]), k=3) == 0.0
    # T = 100: weights ~1.010, 1.008, 1.000, so the two class-1 neighbours outvote class 0
    pred, votes = hand_vote(query[0], 3, 100.0)
    assert pred == 1 and votes[1] == pytest.approx(math.exp(0.008) + 1.0)
    assert (
        weighted_knn_top1(BANK, BANK_Y, query, torch.tensor([1]), k=3, temperature=100.0) == 100.0
    )
    # k = 1: only the nearest neighbour votes
    assert weighted_knn_top1(BANK, BANK_Y, query, torch.tensor([0]), k=1) == 100.0


def test_accuracy_is_a_percentage_over_queries_and_cosine_ignores_scale():
    queries = torch.tensor([[1.0, 0.1], [0.1, 1.0], [-1.0, 0.2], [0.9, 0.7]])
    labels = torch.tensor([0, 1, 2, 0])  # the last query is nearest to bank 1 (class 1)
    expected = [hand_vote(q, 1, 0.07)[0] for q in queries]
    assert expected == [0, 1, 2, 1]
    assert weighted_knn_top1(BANK, BANK_Y, queries, labels, k=1) == 75.0
    assert weighted_knn_top1(BANK * 7.0, BANK_Y, queries * 0.1, labels, k=1) == 75.0


def test_tie_rules():
    # equal class sums: the lower label wins
    bank = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert weighted_knn_top1(bank, torch.tensor([1, 0]), bank[:1], torch.tensor([0]), k=2) == 100.0
    assert weighted_knn_top1(bank, torch.tensor([1, 0]), bank[:1], torch.tensor([1]), k=2) == 0.0
    # equal similarity at the k-th place: the earlier bank entry is taken
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    query = torch.tensor([[0.0, 1.0]])
    assert weighted_knn_top1(bank, torch.tensor([0, 2, 1]), query, torch.tensor([2]), k=1) == 100.0
    assert weighted_knn_top1(bank, torch.tensor([0, 1, 2]), query, torch.tensor([1]), k=1) == 100.0


def test_bad_arguments_are_one_line_errors():
    y = torch.tensor([0])
    with pytest.raises(PeraConfigError, match=r'k=5 but the bank holds 4 features'):
        weighted_knn_top1(BANK, BANK_Y, BANK[:1], y, k=5)
    with pytest.raises(PeraConfigError, match='k=0'):
        weighted_knn_top1(BANK, BANK_Y, BANK[:1], y, k=0)
    with pytest.raises(PeraConfigError, match='temperature must be > 0'):
        weighted_knn_top1(BANK, BANK_Y, BANK[:1], y, k=1, temperature=0)
    with pytest.raises(PeraDataError, match='query_feats is empty'):
        weighted_knn_top1(BANK, BANK_Y, torch.zeros(0, 2), torch.zeros(0), k=1)
    with pytest.raises(PeraDataError, match='4 bank features / 3 labels'):
        weighted_knn_top1(BANK, BANK_Y[:3], BANK[:1], y, k=1)


# ---------------------------------------------------------------- split
def make_tree(root: Path, counts: dict, pattern='{c}_{i}.jpg'):
    for c, n in counts.items():
        (root / c).mkdir(parents=True)
        for i in range(1, n + 1):
            (root / c / pattern.format(c=c.lower(), i=i)).write_bytes(b'')
    return root


def test_split_by_trailing_image_number(tmp_path):
    root = make_tree(tmp_path / 'set', {'Beta': 12, 'Alpha': 10})
    (root / 'Alpha' / 'notes.txt').write_text('not an image')
    bank, query = split_bank_query(root)
    assert len(bank) == len(query) == 10
    # classes by sorted name; numbers 1-5 bank, 6-10 query (10 is not read as 1); 11, 12 unused
    assert [Path(p).name for p, _ in bank[:5]] == [f'alpha_{i}.jpg' for i in range(1, 6)]
    assert [Path(p).name for p, _ in query[5:]] == [f'beta_{i}.jpg' for i in range(6, 11)]
    assert [y for _, y in bank] == [0] * 5 + [1] * 5
    bank, _ = split_bank_query(root, bank=(1, 2), query=(3, 4))
    assert [Path(p).name for p, _ in bank] == [
        'alpha_1.jpg',
        'alpha_2.jpg',
        'beta_1.jpg',
        'beta_2.jpg',
    ]
    # Alpha has no images 11 and 12
    with pytest.raises(PeraDataError, match=r'Alpha: has 2 of the 4 images .* \[11, 12\]'):
        split_bank_query(root, bank=(1, 2), query=(11, 12))


def test_split_errors_name_the_folder(tmp_path):
    root = make_tree(tmp_path / 'set', {'Full': 10, 'Small': 7})
    with pytest.raises(PeraDataError) as err:
        split_bank_query(root)
    msg = str(err.value)
    assert '\n' not in msg and str(root / 'Small') in msg
    assert 'has 7 of the 10 images' in msg and 'missing image numbers [8, 9, 10]' in msg
    (tmp_path / 'empty').mkdir()
    with pytest.raises(PeraDataError, match=r'empty, expected one sub-folder per class'):
        split_bank_query(tmp_path / 'empty')
    with pytest.raises(PeraFileNotFoundError, match='folder does not exist'):
        split_bank_query(tmp_path / 'nowhere')
    with pytest.raises(PeraConfigError, match='overlap'):
        split_bank_query(root, bank=(1, 6), query=(6, 10))


@pytest.mark.needs_shared
def test_split_of_the_real_sets(shared_path):
    bank, query = split_bank_query(shared_path('AID_150px/AID'))
    assert len(bank) == len(query) == 150
    assert [Path(p).name for p, _ in bank[:5]] == [f'airport_{i}.jpg' for i in range(1, 6)]
    assert Path(query[-1][0]).name == 'viaduct_10.jpg' and query[-1][1] == 29
    bank, query = split_bank_query(shared_path('RSSCN7'))
    assert len(bank) == len(query) == 35
    assert [Path(p).name for p, _ in query[:5]] == [f'a{i:03d}.jpg' for i in range(6, 11)]
    assert sorted({y for _, y in query}) == list(range(7))
