# Copyright (c) pera-mm contributors. All rights reserved.
"""The mask flags and patch helpers shared by the data pipeline and the models."""

import pytest
import torch

from pera_mm.structures import (
    MASK_L,
    MASK_S,
    MASK_T,
    flag_indices,
    gather_tokens,
    patchify,
    unpatchify,
)
from pera_mm.utils import PeraDataError


def test_flag_indices_are_ascending_per_row():
    masks = torch.tensor(
        [[MASK_S, MASK_T, MASK_L, MASK_S | MASK_T], [MASK_T, MASK_S, MASK_S, MASK_L]]
    )
    assert flag_indices(masks, MASK_S).tolist() == [[0, 3], [1, 2]]
    assert flag_indices(masks, MASK_L).tolist() == [[2], [3]]


def test_unequal_counts_fail_with_the_field_name():
    masks = torch.tensor([[MASK_T, MASK_T], [MASK_T, MASK_S]])
    with pytest.raises(PeraDataError, match=r'global_masks: .* \(\[1, 2\]\)'):
        flag_indices(masks, MASK_T, 'global_masks')


def test_patchify_layout_and_round_trip():
    imgs = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    patches = patchify(imgs, 2)
    assert patches.shape == (2, 6, 12)
    # patch 1 of image 0 covers rows 0-1, columns 2-3; channel-last inside the patch
    expect = imgs[0, :, 0:2, 2:4].permute(1, 2, 0).reshape(-1)
    torch.testing.assert_close(patches[0, 1], expect)
    torch.testing.assert_close(unpatchify(patches, 2, (2, 3), 3), imgs)
    with pytest.raises(ValueError, match='not divisible by patch_size 4'):
        patchify(imgs, 4)


def test_gather_tokens_picks_per_row():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    idx = torch.tensor([[3, 0], [1, 2]])
    out = gather_tokens(x, idx)
    torch.testing.assert_close(out, torch.stack([x[0, [3, 0]], x[1, [1, 2]]]))
