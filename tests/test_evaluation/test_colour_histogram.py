# Copyright (c) pera-mm contributors. All rights reserved.
"""The colour-histogram floor: 8x8x8 RGB bins, square-rooted, L2-normalised."""

import math

import numpy as np
import pytest
import torch

from pera_mm.datasets.transforms.loading import decode_rgb
from pera_mm.evaluation import colour_histogram
from pera_mm.utils.errors import PeraDataError


def test_tiny_image_by_hand():
    # pixels: black, white, (31, 32, 0), black -> bins 0, 511, (0*8+1)*8+0 = 8, 0
    img = torch.tensor(
        [[[0, 255], [31, 0]], [[0, 255], [32, 0]], [[0, 255], [0, 0]]], dtype=torch.uint8
    )
    hist = colour_histogram(img)
    assert hist.shape == (512,)
    # counts 2, 1, 1 -> sqrt 1.414, 1, 1 -> norm sqrt(2 + 1 + 1) = 2
    expected = torch.zeros(512, dtype=torch.float64)
    expected[0], expected[511], expected[8] = math.sqrt(2) / 2, 0.5, 0.5
    torch.testing.assert_close(hist, expected)
    assert colour_histogram(img.float()).equal(hist)  # integral floats read the same


@pytest.mark.needs_shared
def test_deterministic_on_a_real_image(shared_path):
    path = shared_path('AID_150px/AID/Forest/forest_1.jpg')
    img = torch.from_numpy(decode_rgb(path.read_bytes(), str(path))).permute(2, 0, 1)
    batch = torch.stack([img, img.flip(-1)])
    first, second = colour_histogram(batch), colour_histogram(batch.clone())
    assert first.equal(second) and first[0].equal(first[1])  # a flip keeps the colours
    assert first.norm(dim=1).sub(1).abs().max() < 1e-12
    # the counts behind it are the pixels per bin
    q = img.long() // 32
    counts = np.bincount(((q[0] * 8 + q[1]) * 8 + q[2]).flatten().numpy(), minlength=512)
    assert counts.sum() == 150 * 150
    torch.testing.assert_close(
        first[0], torch.tensor(np.sqrt(counts) / np.linalg.norm(np.sqrt(counts)))
    )


def test_bad_input():
    with pytest.raises(PeraDataError, match=r'expected \(B, 3, H, W\) RGB images'):
        colour_histogram(torch.zeros(1, 4, 2, 2, dtype=torch.uint8))
    with pytest.raises(PeraDataError, match='0-255'):
        colour_histogram(torch.full((1, 3, 2, 2), -1.0))
