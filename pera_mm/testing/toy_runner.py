# Copyright (c) pera-mm contributors. All rights reserved.
"""A tiny MMEngine-native model, dataset and metric for runner-level tests.

They are registered in MMEngine's root registries, so they resolve from any
default scope (``mmengine``, ``mmpretrain`` ...). A config pulls them in with
``custom_imports=dict(imports=['pera_mm.testing.toy_runner'])`` (see
``tests/data/toy_runner_config.py``).
"""

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch import nn


@MODELS.register_module(force=True)
class ToyRunnerModel(BaseModel):
    """Linear regression ``y = w.x + b`` with an MSE loss.

    Args:
        data_preprocessor (dict, optional): MMEngine data preprocessor config.
        init_cfg (dict, optional): MMEngine initialisation config.
    """

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        out = self.linear(x).squeeze(-1)
        if mode == 'loss':
            y = torch.as_tensor(data_samples, dtype=out.dtype)
            return dict(loss=((out - y) ** 2).mean())
        if mode == 'predict':
            return [dict(pred=float(o), target=float(t)) for o, t in zip(out, data_samples)]
        return out


@DATASETS.register_module(force=True)
class ToyRunnerDataset(BaseDataset):
    """``size`` samples ``x = (i / size, 1)`` with the target ``2 * x0 - 1``.

    Args:
        size (int): number of samples. Defaults to 8.
        **kwargs: further ``BaseDataset`` arguments.
    """

    METAINFO = dict(classes=('toy',))

    def __init__(self, size=8, **kwargs):
        self.size = size
        super().__init__(**kwargs)

    def load_data_list(self):
        return [
            dict(inputs=torch.tensor([i / self.size, 1.0]), data_samples=2.0 * i / self.size - 1.0)
            for i in range(self.size)
        ]

    def __getitem__(self, idx):
        info = self.get_data_info(idx)
        return dict(inputs=info['inputs'], data_samples=info['data_samples'])


@METRICS.register_module(force=True)
class ToyRunnerMetric(BaseMetric):
    """Negative MSE as ``acc`` (a numpy float32, like many real metrics) and a numpy
    float64 ``mse``, so that checkpoints hold numpy scalars.

    Args:
        **kwargs: ``BaseMetric`` arguments.
    """

    def process(self, data_batch, data_samples):
        self.results.extend((d['pred'] - d['target']) ** 2 for d in data_samples)

    def compute_metrics(self, results):
        mse = np.float64(np.mean(results))
        return dict(acc=np.float32(-mse), mse=mse)
