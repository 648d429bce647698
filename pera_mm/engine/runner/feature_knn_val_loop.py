# Copyright (c) pera-mm contributors. All rights reserved.
"""Evaluate a pretraining run on the fixed kNN protocol while it trains."""

import copy
from typing import Dict, Optional

import torch
from mmengine.evaluator import Evaluator
from mmengine.runner import BaseLoop
from mmpretrain.registry import LOOPS

from ...evaluation.feature_adaptors import batch_features, build_feature_adaptor
from ...utils.errors import PeraConfigError


@LOOPS.register_module()
class FeatureKNNValLoop(BaseLoop):
    """A validation loop over several evaluation sets, scoring frozen features.

    MMEngine's ``ValLoop`` runs one dataloader through ``model.val_step``, which
    self-supervised algorithms do not have. This loop builds one dataloader per
    entry of ``sets`` from the ``val_dataloader`` template (the entry's keys
    override the template's ``dataset`` keys), extracts features with the
    algorithm's feature adaptor and evaluates each set with its own copy of
    ``val_evaluator`` whose metric keys are prefixed with the set's name
    (``aid/knn_top1_k20``, ``rsscn7/linear_top1``, ...). It fires the usual
    val hooks (``before_val``, ``*_val_iter``, ``after_val_epoch`` with every
    set's metrics), so ``CheckpointHook(save_best='aid/knn_top1_k20')`` works
    and the curves reach the log, ``scalars.json`` and any visualizer backend.
    The model is put back into its previous train/eval mode afterwards.

    Args:
        runner (Runner): the runner.
        dataloader (dict): the ``val_dataloader`` template.
        evaluator (dict | list): the ``val_evaluator`` config (copied per set).
        sets (dict): ``{name: dataset overrides}``, e.g. ``dict(aid=dict(
            data_root='../shared/data/AID_150px/AID'))``; evaluated in this order.
        feature_adaptor (dict, optional): see
            :func:`pera_mm.evaluation.build_feature_adaptor` (default: chosen
            by the algorithm's class).
    """

    def __init__(
        self,
        runner,
        dataloader: dict,
        evaluator,
        sets: Dict[str, dict],
        feature_adaptor: Optional[dict] = None,
    ):
        if not isinstance(dataloader, dict):
            raise PeraConfigError(
                'FeatureKNNValLoop: val_dataloader must be a dataloader config dict (the '
                f'template of every set), got {type(dataloader).__name__}'
            )
        if not isinstance(sets, dict) or not sets:
            raise PeraConfigError(
                'FeatureKNNValLoop: sets must be a non-empty dict {name: dataset overrides}, '
                f'got {sets!r}'
            )
        bad = [n for n in sets if not n or '/' in n]
        if bad:
            raise PeraConfigError(
                f'FeatureKNNValLoop: set names must be non-empty without "/": {bad}'
            )
        if not isinstance(evaluator, (dict, list)):
            raise PeraConfigError(
                'FeatureKNNValLoop: val_evaluator must be a metric config (dict or list), '
                f'got {type(evaluator).__name__}'
            )
        self.set_names = list(sets)
        loaders = {name: self._set_loader(dataloader, name, sets[name]) for name in sets}
        super().__init__(runner, loaders[self.set_names[0]])
        self.dataloaders = {self.set_names[0]: self.dataloader}
        for name in self.set_names[1:]:
            self.dataloaders[name] = runner.build_dataloader(
                loaders[name],
                seed=runner.seed,
                diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False),
            )
        self.evaluators = {}
        for name, loader in self.dataloaders.items():
            ev = runner.build_evaluator(self._prefixed(evaluator, name))
            ev.dataset_meta = loader.dataset.metainfo
            self.evaluators[name] = ev
        self.evaluator: Evaluator = self.evaluators[self.set_names[0]]
        self.feature_adaptor_cfg = feature_adaptor
        self._adaptor = None

    @staticmethod
    def _set_loader(template: dict, name: str, overrides) -> dict:
        if not isinstance(overrides, dict):
            raise PeraConfigError(
                f'FeatureKNNValLoop: sets.{name} must be a dict of dataset overrides '
                f'(e.g. data_root=...), got {overrides!r}'
            )
        loader = copy.deepcopy(template)
        if not isinstance(loader.get('dataset'), dict):
            raise PeraConfigError('FeatureKNNValLoop: val_dataloader.dataset must be a dict')
        loader['dataset'].update(copy.deepcopy(overrides))
        return loader

    @staticmethod
    def _prefixed(evaluator, name: str):
        """A copy of ``evaluator`` whose every metric reports under ``name/``.

        Accepts the three forms ``Runner.build_evaluator`` does: one metric dict, a
        list of them, and an evaluator dict holding them under ``metrics``.
        """
        evaluator = copy.deepcopy(evaluator)
        holder = evaluator if isinstance(evaluator, dict) and 'metrics' in evaluator else None
        metrics = holder['metrics'] if holder is not None else evaluator
        metrics = metrics if isinstance(metrics, list) else [metrics]
        for metric in metrics:
            if not isinstance(metric, dict):
                raise PeraConfigError(
                    f'FeatureKNNValLoop: each val_evaluator metric must be a dict, got {metric!r}'
                )
            metric['prefix'] = name
        if holder is None:
            return metrics
        holder['metrics'] = metrics
        return holder

    @property
    def adaptor(self):
        """The feature adaptor, built on first use (the model is final by then)."""
        if self._adaptor is None:
            self._adaptor = build_feature_adaptor(self.feature_adaptor_cfg, self.runner.model)
        return self._adaptor

    def run(self) -> dict:
        """Evaluate every set; returns (and hands ``after_val_epoch``) all sets' metrics."""
        model = self.runner.model
        was_training = model.training
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        model.eval()
        metrics = {}
        try:
            for name in self.set_names:
                # hooks read len(runner.val_dataloader): point it at the current set
                self.dataloader, self.evaluator = self.dataloaders[name], self.evaluators[name]
                for idx, data_batch in enumerate(self.dataloader):
                    self.run_iter(idx, data_batch)
                metrics.update(self.evaluator.evaluate(len(self.dataloader.dataset)))
        finally:
            model.train(was_training)
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict):
        """Features of one batch into the current set's evaluator."""
        self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
        outputs = batch_features(self.runner.model, self.adaptor, data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_val_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs
        )
