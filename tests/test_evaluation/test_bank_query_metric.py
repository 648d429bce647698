# Copyright (c) pera-mm contributors. All rights reserved.
"""The protocol's dataset, metric and loop configuration, without a training run."""

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS, METRICS
from PIL import Image

from pera_mm.engine import FeatureKNNValLoop
from pera_mm.evaluation import weighted_knn_top1
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError, PeraDataError

SNIPPET = REPO_ROOT / 'configs/_base_/evaluation/knn_aid_rsscn7.py'


def make_set(root, classes=('b_class', 'a_class'), n=10):
    rng = np.random.RandomState(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(1, n + 1):
            pixels = rng.randint(0, 256, (40, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f'{c}_{i}.png')
    return root


def test_dataset_gives_rgb_evaluation_images_with_label_and_split(tmp_path):
    root = make_set(tmp_path / 'set')
    cfg = Config.fromfile(SNIPPET)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=str(root)))
    assert dataset.metainfo['classes'] == ('a_class', 'b_class') and len(dataset) == 20
    splits = [dataset[i]['data_samples'].split for i in range(len(dataset))]
    assert splits == ['bank'] * 10 + ['query'] * 10
    sample = dataset[12]  # query 3 of class 0 = a_class_8
    assert sample['inputs'].shape == (3, 112, 112) and sample['inputs'].dtype == torch.uint8
    assert sample['data_samples'].img_path.endswith('a_class/a_class_8.png')
    assert int(sample['data_samples'].gt_label) == 0


def test_metric_keys_carry_the_set_prefix_and_match_the_protocol():
    metric = METRICS.build(dict(type='BankQueryKNNMetric', ks=(2, 1), prefix='aid'))
    torch.manual_seed(0)
    feats, labels = torch.randn(8, 4), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    splits = ['bank'] * 4 + ['query'] * 4
    metric.process(
        None, [dict(feat=f, gt_label=y, split=s) for f, y, s in zip(feats, labels, splits)]
    )
    out = metric.evaluate(8)
    assert set(out) == {'aid/knn_top1_k2', 'aid/knn_top1_k1', 'aid/linear_top1'}
    expected = weighted_knn_top1(feats[:4], labels[:4], feats[4:], labels[4:], k=2)
    assert out['aid/knn_top1_k2'] == expected
    metric.process(None, [dict(feat=feats[0], gt_label=0, split='bank')])
    with pytest.raises(PeraDataError, match=r'BankQueryKNNMetric \(aid\): no query samples'):
        metric.evaluate(1)


@pytest.mark.parametrize(
    'sets, match',
    [
        ({}, 'sets must be a non-empty dict'),
        ({'a/b': {}}, 'set names must be non-empty without "/"'),
        ({'aid': '../AID'}, 'sets.aid must be a dict of dataset overrides'),
    ],
)
def test_loop_configuration_errors_are_one_line(sets, match):
    with pytest.raises(PeraConfigError, match=match):
        FeatureKNNValLoop(
            runner=None,
            dataloader=dict(dataset=dict(type='BankQueryFolderDataset')),
            evaluator=dict(type='BankQueryKNNMetric'),
            sets=sets,
        )
