# Copyright (c) pera-mm contributors. All rights reserved.
"""Report, once per epoch, how many unreadable images training skipped."""

from typing import List

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def find_skip_counting_datasets(dataset) -> List:
    """Datasets exposing ``pop_epoch_skipped`` inside ``dataset``.

    Looks through dataset wrappers that keep their children in
    ``.datasets`` (ConcatDataset, torch ConcatDataset) or ``.dataset``
    (RepeatDataset, ClassBalancedDataset, torch Subset); each dataset is
    returned once.
    """
    found, seen, stack = [], set(), [dataset]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if callable(getattr(current, 'pop_epoch_skipped', None)):
            found.append(current)
            continue
        children = getattr(current, 'datasets', None)
        if isinstance(children, (list, tuple)):
            stack.extend(reversed(children))
        stack.append(getattr(current, 'dataset', None))
    return found


@HOOKS.register_module()
class SkippedImageReportHook(Hook):
    """Log "skipped N unreadable images this epoch (M in total)".

    Reads (and resets) the per-epoch skip counters of every
    :class:`UnlabeledImageDataset` inside ``runner.train_dataloader.dataset``
    after each training epoch; in distributed training the counts are summed
    over ranks. Nothing is logged when the training dataset does not count
    skips. The hook changes nothing else.
    """

    priority = 'LOW'

    def after_train_epoch(self, runner) -> None:
        """Log the epoch's and the run's skipped-image counts, summed over ranks."""
        datasets = find_skip_counting_datasets(runner.train_dataloader.dataset)
        if not datasets:
            return
        counts = torch.tensor(
            [sum(d.pop_epoch_skipped() for d in datasets), sum(d.num_skipped for d in datasets)],
            dtype=torch.int64,
        )
        # Each rank reads its own shard; report the sum over ranks.
        if dist.get_world_size() > 1:
            dist.all_reduce(counts, op='sum')
        this_epoch, total = (int(c) for c in counts)
        runner.logger.info(f'skipped {this_epoch} unreadable images this epoch ({total} in total)')
