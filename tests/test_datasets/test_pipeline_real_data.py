"""Real remote-sensing tiles through the whole PerA data path."""

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmpretrain.models.utils import SelfSupDataPreprocessor
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

from pera_mm.datasets.unlabeled_image_dataset import UnlabeledImageDataset
from pera_mm.structures import MASK_L, MASK_S, MASK_T

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
N_G, N_L = 2, 4

PIPELINE = [
    dict(type='LoadRGBImageFromFile'),
    dict(
        type='PerAMultiCropViews',
        global_crop_size=64,
        local_crop_size=32,
        num_global_crops=N_G,
        num_local_crops=N_L,
    ),
    dict(type='DisjointMaskGenerator', patch_size=16, mask_ratios=(0.2, 0.2, 0.6)),
    dict(type='PackInputs', algorithm_keys=['global_masks', 'local_masks']),
]


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'subdir, num_images, shape',
    [
        ('AID_150px', 300, (150, 150)),
        ('RSSCN7', 70, (400, 400)),
    ],
)
def test_real_tiles_full_pipeline(shared_path, subdir, num_images, shape):
    root = shared_path(subdir)
    full = UnlabeledImageDataset(data_root=str(root))
    assert len(full) == num_images
    # A spread of classes, kept small for CPU.
    step = num_images // 6
    ds = UnlabeledImageDataset(
        data_root=str(root), pipeline=PIPELINE, indices=list(range(0, num_images, step))[:6]
    )
    np.random.seed(0)
    loader = DataLoader(ds, batch_size=3, collate_fn=default_collate, num_workers=0)
    preprocessor = SelfSupDataPreprocessor(mean=MEAN, std=STD, to_rgb=False)
    seen = 0
    for batch in loader:
        views = batch['inputs']
        assert isinstance(views, list) and len(views) == 2 * (N_G + N_L)
        for i, v in enumerate(views):
            size = 64 if i < 2 * N_G else 32
            assert v.shape == (3, 3, size, size) and v.dtype == torch.uint8
        samples = batch['data_samples']
        assert len(samples) == 3
        for sample in samples:
            assert isinstance(sample, DataSample)
            assert sample.ori_shape == shape
            g, loc = sample.global_masks, sample.local_masks
            assert isinstance(g, np.ndarray) and g.dtype == np.uint8
            assert g.shape == (N_G, 16) and loc.shape == (N_L, 4)
            assert ((g == MASK_S).sum(1) == 3).all()
            assert ((g == MASK_L).sum(1) == 3).all()
            assert ((g == MASK_T).sum(1) == 10).all()
            # 2x2 local grid: n_s = 1, dropped 1, n_t = 2.
            assert ((loc == MASK_S).sum(1) == 1).all()
            assert ((loc == MASK_T).sum(1) == 2).all()

        out = preprocessor(batch)
        inputs = out['inputs']
        assert len(inputs) == len(views)
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        for raw, norm in zip(views, inputs):
            assert norm.dtype == torch.float32
            torch.testing.assert_close(norm, (raw.float() - mean) / std)
            assert norm.min() >= -123.675 / 58.395 - 1e-5
            assert norm.max() <= (255 - 103.53) / 57.375 + 1e-5
            assert norm.std() > 0.1  # real texture, not a constant
        # The masks survive the preprocessor as per-sample fields.
        assert len(out['data_samples']) == len(samples)
        for after, before in zip(out['data_samples'], samples):
            assert np.array_equal(after.global_masks, before.global_masks)
            assert np.array_equal(after.local_masks, before.local_masks)
        seen += len(samples)
    assert seen == 6
