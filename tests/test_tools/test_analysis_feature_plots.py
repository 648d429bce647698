"""tools/analysis_tools/feature_tsne.py and feature_histograms.py on real AID images."""

import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from pera_mm.testing import PERA_CONFIG, REPO_ROOT, TINY_ARCH, make_pera_checkpoint
from pera_mm.testing.config_shrink import shrink_model_config
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.visualization import (
    encoder_features,
    feature_statistics,
    list_images,
    load_encoder,
    normalisation,
)

TOOLS = REPO_ROOT / 'tools/analysis_tools'
AID = 'AID_150px/AID'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('feats')
    ckpt, _ = make_pera_checkpoint(root / 'pera.pth', teacher_offset=0.02)
    other, _ = make_pera_checkpoint(root / 'other_run.pth', seed=1, teacher_offset=0.02)
    cfg = Config.fromfile(PERA_CONFIG)
    cfg.model = shrink_model_config(
        cfg.model, TINY_ARCH, 64, 256, hidden_channels=96, bottleneck_channels=32
    )
    cfg.dump(str(root / 'tiny.py'))
    return dict(root=root, ckpt=ckpt, other=other, config=str(root / 'tiny.py'), cfg=cfg)


def one_error_line(err: str) -> str:
    """The tool's error: one line after any progress-bar output, and no traceback."""
    assert 'Traceback' not in err, err
    return err.rstrip('\n').split('\n')[-1]


def run_cli(tool, argv, capsys, name):
    code = 0
    try:
        PeraCliErrors.run(tool.main, argv, tool=name)
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def numpy_weighted_knn(bank, bank_y, query, query_y, k=20, t=0.07):
    """The protocol's vote written out with numpy (cosine, exp(sim / T), sum per class)."""
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    sim = query @ bank.T
    hits = 0
    for row, label in zip(sim, query_y):
        top = np.argsort(-row, kind='stable')[:k]
        votes = np.zeros(max(bank_y) + 1)
        np.add.at(votes, np.asarray(bank_y)[top], np.exp(row[top] / t))
        hits += int(np.argmax(votes) == label)
    return 100.0 * hits / len(query_y)


def evaluation_loop_knn(tiny, root, size=64):
    """kNN top-1 of the teacher cls features as ``FeatureKNNValLoop`` computes them."""
    from mmengine.dataset import default_collate
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import DATASETS, MODELS

    from pera_mm.evaluation.feature_adaptors import TeacherBackboneFeatures, batch_features
    from pera_mm.evaluation.knn_protocol import weighted_knn_top1

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(tiny['cfg'].model).eval()
        load_checkpoint(model, str(tiny['ckpt']), map_location='cpu', strict=True, logger='silent')
        dataset = DATASETS.build(
            dict(
                type='BankQueryFolderDataset',
                data_root=str(root),
                pipeline=[
                    dict(type='LoadRGBImageFromFile'),
                    dict(type='Resize', scale=(size, size), interpolation='area'),
                    dict(type='PackInputs', meta_keys=('img_path', 'split')),
                ],
            )
        )
        samples = [dataset[i] for i in range(len(dataset))]
    out = batch_features(model, TeacherBackboneFeatures(), default_collate(samples))
    split = {name: [o for o in out if o['split'] == name] for name in ('bank', 'query')}
    return weighted_knn_top1(
        torch.stack([o['feat'] for o in split['bank']]),
        [o['gt_label'] for o in split['bank']],
        torch.stack([o['feat'] for o in split['query']]),
        [o['gt_label'] for o in split['query']],
    )


@pytest.mark.needs_shared
def test_tsne_figure_states_the_protocol_knn_accuracy(
    load_script, tiny, shared_path, tmp_path, capsys
):
    tool = load_script(TOOLS / 'feature_tsne.py')
    root = shared_path(AID)
    png, js = tmp_path / 'tsne.png', tmp_path / 'tsne.json'
    argv = [tiny['config'], str(tiny['ckpt']), '--data-root', str(root), '--out', str(png)]
    code, stdout, err = run_cli(tool, argv + ['--json', str(js)], capsys, 'feature_tsne')
    assert code == 0, err
    result = json.loads(js.read_text())
    assert result['images'] == 300 and len(result['classes']) == 30
    assert result['classes'][0] == 'Airport' and result['labels'][:10] == [0] * 10
    xy = np.array(result['xy'])
    assert xy.shape == (300, 2) and np.isfinite(xy).all() and xy.std(0).min() > 1
    # the accuracy on the figure: the protocol's bank (1-5) / query (6-10), k=20, T=0.07
    vit, _ = load_encoder(tiny['cfg'], str(tiny['ckpt']))
    mean, std = normalisation(tiny['cfg'])
    feats = encoder_features(vit, result['paths'], 64, mean, std).double().numpy()
    number = [int(p.rsplit('_', 1)[1].split('.')[0]) for p in result['paths']]
    labels = np.array(result['labels'])
    bank = np.array([n <= 5 for n in number])
    expected = numpy_weighted_knn(feats[bank], labels[bank], feats[~bank], labels[~bank])
    assert result['knn_top1'] == pytest.approx(expected, abs=1e-9)
    assert f'kNN top-1 {expected:.2f}% (k=20, T=0.07)' in stdout
    assert expected > 100 / 30  # even this random tiny encoder beats chance on AID
    # the same number through the evaluation loop's own path (dataset, pipeline, adaptor)
    assert result['knn_top1'] == pytest.approx(evaluation_loop_knn(tiny, root), abs=1e-9)
    figure = np.asarray(Image.open(png))
    assert figure.shape[:2] == (650, 900) and figure.std() > 10


@pytest.mark.needs_shared
def test_histograms_compare_student_and_teacher_with_exact_statistics(
    load_script, tiny, shared_path, tmp_path, capsys
):
    tool = load_script(TOOLS / 'feature_histograms.py')
    root = shared_path(f'{AID}/Forest')
    js = tmp_path / 'hist.json'
    argv = [tiny['config'], str(tiny['ckpt']), '--data-root', str(root), '--labels', 'S', 'T']
    code, stdout, err = run_cli(
        tool,
        argv + ['--out', str(tmp_path / 'h.png'), '--json', str(js)],
        capsys,
        'feature_histograms',
    )
    assert code == 0, err
    stats = json.loads(js.read_text())
    assert list(stats) == ['S', 'T']
    paths = [str(p) for p in list_images([root])]
    mean, std = normalisation(tiny['cfg'])
    for label, part in (('S', 'student'), ('T', 'teacher')):
        vit, _ = load_encoder(tiny['cfg'], str(tiny['ckpt']), part)
        f = encoder_features(vit, paths, 64, mean, std).double().numpy()
        unit = f / np.linalg.norm(f, axis=1, keepdims=True)
        cos = unit @ unit.T
        sv = np.linalg.svd(f - f.mean(0), compute_uv=False)
        p = sv / sv.sum()
        expected = dict(
            images=10,
            dims=64,
            value_mean=f.mean(),
            value_std=f.std(ddof=1),
            value_min=f.min(),
            value_max=f.max(),
            norm_mean=np.linalg.norm(f, axis=1).mean(),
            dim_std_mean=f.std(0, ddof=1).mean(),
            pairwise_cosine=(cos.sum() - np.trace(cos)) / 90,
            effective_rank=np.exp(-(p * np.log(p)).sum()),
        )
        for key, value in expected.items():
            assert stats[label][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (label, key)
    assert stats['S']['value_mean'] != pytest.approx(stats['T']['value_mean'], abs=1e-3)
    assert 'S: mean' in stdout and 'effective rank' in stdout
    # two runs: teacher against teacher
    js2 = tmp_path / 'two.json'
    argv = [tiny['config'], str(tiny['ckpt']), str(tiny['other']), '--data-root', str(root)]
    code, _, err = run_cli(
        tool,
        argv + ['--out', str(tmp_path / 'h2.png'), '--json', str(js2)],
        capsys,
        'feature_histograms',
    )
    assert code == 0, err
    two = json.loads(js2.read_text())
    assert list(two) == ['pera teacher', 'other_run teacher']
    assert two['pera teacher'] == pytest.approx(stats['T'])


def test_statistics_of_a_collapsed_set():
    feats = torch.ones(5, 8) * 3
    s = feature_statistics(feats)
    assert s['pairwise_cosine'] == pytest.approx(1.0) and s['dim_std_mean'] == 0
    assert s['norm_mean'] == pytest.approx(3 * 8**0.5) and s['effective_rank'] == pytest.approx(1.0)


@pytest.mark.needs_shared
def test_bad_input_is_one_line(load_script, tiny, shared_path, tmp_path, capsys):
    tsne = load_script(TOOLS / 'feature_tsne.py')
    hist = load_script(TOOLS / 'feature_histograms.py')
    (tmp_path / 'empty').mkdir()
    few = tmp_path / 'few'
    for name in ('Beach', 'Desert'):  # class folders with 3 images: too few for the split
        (few / name).mkdir(parents=True)
        for i in (1, 2, 3):
            src = shared_path(f'{AID}/{name}/{name.lower()}_{i}.jpg')
            (few / name / src.name).symlink_to(src)
    base = [tiny['config'], str(tiny['ckpt'])]
    out = ['--out', str(tmp_path / 'x.png')]
    cases = [
        (
            tsne,
            'feature_tsne',
            base + ['--data-root', str(tmp_path / 'empty')],
            4,
            'expected one sub-folder per class',
        ),
        (
            tsne,
            'feature_tsne',
            base + ['--data-root', str(few)],
            4,
            'missing image numbers [4, 5, 6',
        ),
        (
            tsne,
            'feature_tsne',
            base + ['--data-root', str(shared_path(AID)), '--method', 'umap'],
            3,
            'umap-learn',
        ),
        (
            tsne,
            'feature_tsne',
            [tiny['config'], str(tmp_path / 'no.pth'), '--data-root', str(shared_path(AID))],
            5,
            'no such checkpoint',
        ),
        (
            hist,
            'feature_histograms',
            base + ['--data-root', str(tmp_path / 'empty')],
            4,
            'no images',
        ),
        (
            hist,
            'feature_histograms',
            base + ['--data-root', str(few), '--parts', 'student', 'student'],
            0,
            '',
        ),
    ]
    for tool, name, argv, code, text in cases:
        got, _, err = run_cli(tool, argv + out, capsys, name)
        assert got == code, err
        if code:
            assert one_error_line(err).startswith(f'{name}: ') and text in one_error_line(err), err
    for tool, flag in ((tsne, '--method'), (hist, '--parts')):
        with pytest.raises(SystemExit) as e:
            tool.parse_args(['--help'])
        assert e.value.code == 0 and flag in capsys.readouterr().out
