# Copyright (c) pera-mm contributors. All rights reserved.
"""FeatureKNNValLoop prefixes the metrics of every ``val_evaluator`` form the Runner accepts."""

import pytest
from mmengine.evaluator import Evaluator

from pera_mm.engine.runner.feature_knn_val_loop import FeatureKNNValLoop
from pera_mm.utils.errors import PeraConfigError

KNN = dict(type='BankQueryKNNMetric', ks=(20, 1))
K1 = dict(type='BankQueryKNNMetric', ks=(1,), ridge_lambda=None)


def prefixes(metrics):
    return [(m['type'], m['prefix']) for m in metrics]


def test_one_metric_and_a_list_become_prefixed_lists():
    assert prefixes(FeatureKNNValLoop._prefixed(KNN, 'aid')) == [('BankQueryKNNMetric', 'aid')]
    out = FeatureKNNValLoop._prefixed([KNN, K1], 'rsscn7')
    assert prefixes(out) == [('BankQueryKNNMetric', 'rsscn7'), ('BankQueryKNNMetric', 'rsscn7')]


def test_an_evaluator_dict_keeps_its_wrapper_and_prefixes_each_metric():
    cfg = dict(type='Evaluator', metrics=[KNN, K1])
    out = FeatureKNNValLoop._prefixed(cfg, 'aid')
    assert out['type'] == 'Evaluator'
    assert prefixes(out['metrics']) == [('BankQueryKNNMetric', 'aid')] * 2
    single = FeatureKNNValLoop._prefixed(dict(metrics=KNN), 'aid')
    assert prefixes(single['metrics']) == [('BankQueryKNNMetric', 'aid')]
    # the config is copied, never edited in place (it is shared by every set)
    assert 'prefix' not in KNN and 'prefix' not in cfg['metrics'][0]


def test_every_form_builds_into_an_evaluator_with_the_prefixes():
    from mmengine.registry import DefaultScope

    import pera_mm  # noqa: F401  (registers the metrics)

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for form in (KNN, [KNN], dict(type='Evaluator', metrics=[KNN])):
            cfg = FeatureKNNValLoop._prefixed(form, 'aid')
            ev = Evaluator(cfg['metrics'] if isinstance(cfg, dict) else cfg)
            assert [m.prefix for m in ev.metrics] == ['aid']


def test_a_metric_that_is_not_a_dict_is_a_one_line_error():
    with pytest.raises(PeraConfigError, match='each val_evaluator metric must be a dict'):
        FeatureKNNValLoop._prefixed(dict(type='Evaluator', metrics=['knn']), 'aid')
