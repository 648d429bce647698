import numpy as np
import pytest
import torch
from mmpretrain.registry import TRANSFORMS

from pera_mm.datasets.transforms.disjoint_mask_generator import (
    DisjointMaskGenerator,
    disjoint_counts,
)
from pera_mm.structures import MASK_L, MASK_S, MASK_T, flag_indices


def views(global_size, local_size, n_g=2, n_l=3):
    """A results dict as PerAMultiCropViews produces it."""
    g = [np.zeros((global_size, global_size, 3), np.uint8)] * (2 * n_g)
    loc = [np.zeros((local_size, local_size, 3), np.uint8)] * (2 * n_l)
    return dict(img=g + loc, num_global_crops=n_g, num_local_crops=n_l)


def test_model_side_decodes_the_three_sets():
    # What the generator writes, the model reads back with flag_indices: each flag
    # selects its own patches, and s, l, t partition the grid (no patch in two sets,
    # which also needs the flags to be distinct bits).
    np.random.seed(5)
    out = DisjointMaskGenerator(patch_size=16, mask_ratios=(0.2, 0.2, 0.6))(views(128, 64))
    masks = torch.from_numpy(out['global_masks'])
    sets = [flag_indices(masks, flag) for flag in (MASK_S, MASK_L, MASK_T)]
    assert tuple(s.shape[1] for s in sets) == disjoint_counts(64, (0.2, 0.2, 0.6))
    for row, mask in enumerate(out['global_masks']):
        assert sorted(torch.cat([s[row] for s in sets]).tolist()) == list(range(64))
        for flag, s in zip((MASK_S, MASK_L, MASK_T), sets):
            assert (mask[s[row].numpy()] == flag).all()


@pytest.mark.parametrize(
    'num_patches, ratios, expected',
    [
        (64, (0.2, 0.2, 0.6), (13, 13, 38)),
        (16, (0.2, 0.2, 0.6), (3, 3, 10)),
        (784, (0.2, 0.2, 0.6), (157, 157, 470)),
        (784, (0.3, 0.2, 0.5), (235, 157, 392)),
        (36, (0.2, 0.2, 0.6), (7, 7, 22)),
        (196, (0.2, 0.3, 0.5), (39, 59, 98)),
        (64, (0.4, 0.0, 0.6), (26, 0, 38)),
    ],
)
def test_counts_formula(num_patches, ratios, expected):
    assert disjoint_counts(num_patches, ratios) == expected


@pytest.mark.parametrize(
    'size, counts', [(128, (13, 13, 38)), (64, (3, 3, 10)), (448, (157, 157, 470))]
)
def test_global_masks_disjoint_covering_exact_counts(size, counts):
    np.random.seed(0)
    gen = DisjointMaskGenerator(patch_size=16, mask_ratios=(0.2, 0.2, 0.6))
    out = gen(views(size, 32, n_g=2, n_l=3))
    masks = out['global_masks']
    num_patches = (size // 16) ** 2
    assert masks.dtype == np.uint8 and masks.shape == (2, num_patches)
    # Every patch is in exactly one set.
    assert set(np.unique(masks)) <= {MASK_S, MASK_L, MASK_T}
    for row in masks:
        got = ((row == MASK_S).sum(), (row == MASK_L).sum(), (row == MASK_T).sum())
        assert got == counts


def test_local_masks_have_no_l_set():
    np.random.seed(1)
    gen = DisjointMaskGenerator(patch_size=16)
    out = gen(views(64, 96, n_g=2, n_l=8))
    local = out['local_masks']
    assert local.shape == (8, 36) and local.dtype == np.uint8
    assert not (local & MASK_L).any()
    for row in local:
        # 7 student patches, 7 dropped (flag 0), 22 teacher patches.
        assert (row == MASK_S).sum() == 7
        assert (row == 0).sum() == 7
        assert (row == MASK_T).sum() == 22


def test_masks_differ_per_crop_and_per_image():
    np.random.seed(2)
    gen = DisjointMaskGenerator(patch_size=16)
    first = gen(views(128, 64, n_g=2, n_l=4))
    second = gen(views(128, 64, n_g=2, n_l=4))
    g1, g2 = first['global_masks'], second['global_masks']
    assert not np.array_equal(g1[0], g1[1])  # per crop
    assert not np.array_equal(g1, g2)  # per image
    l1 = first['local_masks']
    assert len({row.tobytes() for row in l1}) == 4
    # Over many draws every patch position lands in every set.
    masks = np.concatenate([gen(views(128, 64))['global_masks'] for _ in range(50)])
    for flag in (MASK_S, MASK_L, MASK_T):
        assert ((masks == flag).sum(0) > 0).all()


def test_mask_rng_follows_numpy_seed():
    gen = DisjointMaskGenerator()
    np.random.seed(7)
    a = gen(views(64, 32))
    np.random.seed(7)
    b = gen(views(64, 32))
    assert np.array_equal(a['global_masks'], b['global_masks'])
    assert np.array_equal(a['local_masks'], b['local_masks'])


def test_no_pixel_prediction_ratios():
    gen = DisjointMaskGenerator(mask_ratios=(0.4, 0.0, 0.6))
    out = gen(views(128, 64))
    g = out['global_masks']
    assert not (g & MASK_L).any()
    assert ((g == MASK_S).sum(1) == 26).all()
    assert ((g == MASK_T).sum(1) == 38).all()


def test_full_mode():
    out = DisjointMaskGenerator(mode='full')(views(64, 32, n_g=2, n_l=2))
    assert (out['global_masks'] == MASK_S | MASK_T).all()
    assert (out['local_masks'] == MASK_S | MASK_T).all()
    assert out['global_masks'].shape == (2, 16)
    assert out['local_masks'].shape == (2, 4)


def test_block_mode():
    np.random.seed(3)
    gen = DisjointMaskGenerator(
        patch_size=16, mode='block', block_mask_prob=1.0, block_mask_ratio=(0.3, 0.3)
    )
    target = round(0.3 * 196)
    for _ in range(20):
        out = gen(views(224, 32, n_g=2, n_l=2))
        g = out['global_masks']
        assert set(np.unique(g)) <= {MASK_S | MASK_T, MASK_L | MASK_T}
        masked = (g & MASK_L).astype(bool).sum(1)
        assert (masked <= target).all() and (masked >= target // 2).all()
        # The teacher always sees the full view.
        assert (g & MASK_T).all()
        assert (out['local_masks'] == MASK_S | MASK_T).all()
    # The masked patches form blocks: a masked patch has a masked neighbour.
    grid = (g[0] & MASK_L).astype(bool).reshape(14, 14)
    padded = np.pad(grid, 1)
    neighbours = padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    assert (neighbours[grid]).mean() > 0.9

    never = DisjointMaskGenerator(mode='block', block_mask_prob=0.0)
    assert (never(views(64, 32))['global_masks'] == MASK_S | MASK_T).all()


def test_block_mode_probability():
    np.random.seed(4)
    gen = DisjointMaskGenerator(mode='block', block_mask_prob=0.5)
    masked = [
        (gen(views(128, 32, n_g=1, n_l=0))['global_masks'] & MASK_L).any() for _ in range(400)
    ]
    assert 0.4 < np.mean(masked) < 0.6


def test_no_local_crops():
    out = DisjointMaskGenerator()(views(64, 32, n_g=2, n_l=0))
    assert out['local_masks'].shape == (0, 0)
    assert out['global_masks'].shape == (2, 16)


def test_registry_build():
    gen = TRANSFORMS.build(dict(type='DisjointMaskGenerator', mask_ratios=(0.3, 0.2, 0.5)))
    assert isinstance(gen, DisjointMaskGenerator)
    # the configured ratios, not the defaults, set the counts
    g = gen(views(128, 64))['global_masks']
    counts = tuple(int(n) for n in ((g == f).sum(1).max() for f in (MASK_S, MASK_L, MASK_T)))
    assert counts == disjoint_counts(64, (0.3, 0.2, 0.5)) == (19, 13, 32)


@pytest.mark.parametrize(
    'kwargs, words',
    [
        (dict(mask_ratios=(0.5, 0.5, 0.5)), ['mask_ratios', 'sum']),
        (dict(mask_ratios=(0.6, -0.2, 0.6)), ['mask_ratios']),
        (dict(mask_ratios=(0.5, 0.5)), ['mask_ratios']),
        (dict(mask_ratios=(0.0, 0.4, 0.6)), ['mask_ratios']),
        (dict(mask_ratios=(0.4, 0.6, 0.0)), ['mask_ratios']),
        (dict(patch_size=0), ['patch_size']),
        (dict(mode='random'), ['mode']),
        (dict(block_mask_ratio=(0.6, 0.2)), ['block_mask_ratio']),
        (dict(block_mask_prob=1.5), ['block_mask_prob']),
    ],
)
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        DisjointMaskGenerator(**kwargs)
    message = str(info.value)
    assert '\n' not in message
    for word in words:
        assert word in message


def test_crop_not_divisible_by_patch_size():
    with pytest.raises(
        ValueError,
        match=r'global crop size 72x72 .*'
        r'patch_size 16',
    ):
        DisjointMaskGenerator(patch_size=16)(views(72, 32))
    with pytest.raises(ValueError, match=r'local crop size 40x40'):
        DisjointMaskGenerator(patch_size=16)(views(64, 40))


def test_grid_too_small_for_ratios():
    # 16x16 global crop = 1 patch: the s and l sets are empty.
    with pytest.raises(ValueError) as info:
        DisjointMaskGenerator(patch_size=16)(views(16, 16))
    message = str(info.value)
    assert 'mask_ratios' in message and '16x16' in message
    assert 'n_s=0' in message and 'n_t=1' in message
    # A 2x2 local grid: n_s = round(0.8) = 1, n_t = 2 -> fine; a 1x1 local
    # grid has no student patch.
    with pytest.raises(ValueError, match=r'mask_ratios.*local crop 16x16'):
        DisjointMaskGenerator(patch_size=16)(views(64, 16))


def test_wrong_number_of_views():
    res = views(64, 32, n_g=2, n_l=2)
    res['num_local_crops'] = 3
    with pytest.raises(ValueError, match=r"results\['img'\]"):
        DisjointMaskGenerator()(res)
