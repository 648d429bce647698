# Copyright (c) pera-mm contributors. All rights reserved.
"""DIORDataset: the DIOR layout, class matching, the box policy and its counts, bad input."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DefaultScope
from PIL import Image

import pera_mm  # noqa: F401
from pera_mm.datasets import DIOR_CLASSES, DIORDataset
from pera_mm.utils import PeraConfigError, PeraDataError, PeraFileNotFoundError

COUNT_KEYS = ('boxes', 'difficult', 'clipped', 'skipped_outside', 'skipped_degenerate')


def _dataset(root, split, **kwargs):
    return DIORDataset(data_root=str(root), split=split, test_mode=True, **kwargs)


# --------------------------------------------------------------- the DOTA-made fixture
@pytest.mark.needs_shared
@pytest.mark.parametrize('split', ['train', 'val', 'test'])
def test_counts_and_boxes_equal_the_fixture(dior_data, split):
    root, manifest = dior_data
    ds = _dataset(root, split)
    expected = manifest[split]
    assert len(ds) == expected['images']
    assert {k: ds.box_counts[k] for k in COUNT_KEYS} == {k: expected[k] for k in COUNT_KEYS}
    assert ds.num_clipped == expected['clipped'] > 0
    assert ds.num_skipped_outside == expected['skipped_outside'] == 1
    assert ds.num_skipped_degenerate == expected['skipped_degenerate'] == 1
    kinds = [kind for _, _, kind in ds.box_issues]
    assert kinds.count('clipped') == expected['clipped']
    assert kinds.count('skipped_outside') == kinds.count('skipped_degenerate') == 1
    folder = 'JPEGImages-test' if split == 'test' else 'JPEGImages-trainval'
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['img_id'] == expected['ids'][i]
        assert Path(info['img_path']) == root / folder / f'{info["img_id"]}.jpg'
        assert (info['width'], info['height']) == Image.open(info['img_path']).size
        want = manifest['objects'][info['img_id']]
        got = info['instances']
        assert [DIOR_CLASSES[o['bbox_label']] for o in got] == [name for name, _, _ in want]
        np.testing.assert_array_equal([o['bbox'] for o in got], [box for _, box, _ in want])
        assert [o['ignore_flag'] for o in got] == [d for _, _, d in want]
        boxes = np.array([o['bbox'] for o in got])
        assert boxes.min() >= 0 and boxes[:, 2].max() <= 127 and boxes[:, 3].max() <= 127
    if split == 'test':
        assert ds.box_counts['difficult'] == 1  # the one difficult DOTA ship


@pytest.mark.needs_shared
def test_trainval_is_train_plus_val_and_names_match_in_any_case(dior_data):
    root, manifest = dior_data
    ds = _dataset(root, 'trainval')
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == (
        manifest['train']['ids'] + manifest['val']['ids']
    )
    for key in COUNT_KEYS:
        assert ds.box_counts[key] == manifest['train'][key] + manifest['val'][key], key
    # the XML spells the classes in three ways; every object is loaded
    names = set()
    for xml in (root / 'Annotations/Horizontal Bounding Boxes').glob('*.xml'):
        names |= {n.text for n in ET.parse(xml).getroot().iter('name')}
    assert {'vehicle', 'VEHICLE', 'Vehicle', 'ship', 'SHIP', 'Ship'} <= names


@pytest.mark.needs_shared
def test_pipeline_packs_difficult_boxes_as_ignored(dior_data):
    root, manifest = dior_data
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        ds = _dataset(root, 'test', pipeline=pipeline)
        for i in range(len(ds)):
            sample = ds[i]['data_samples']
            want = manifest['objects'][sample.img_id]
            assert len(sample.gt_instances) == sum(1 for *_, d in want if not d)
            assert len(sample.ignored_instances) == sum(1 for *_, d in want if d)
            assert ds[i]['inputs'].shape == (3, 128, 128)


# --------------------------------------------------------------- hand-written XML
def _write(root: Path, objects, split='train', size=(100, 80), with_size=True, img_id='00001'):
    """A one-image DIOR layout; ``objects`` are (name, (xmin, ymin, xmax, ymax), difficult)."""
    folder = 'JPEGImages-test' if split == 'test' else 'JPEGImages-trainval'
    (root / folder).mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size, (40, 80, 120)).save(root / folder / f'{img_id}.jpg')
    ann = ET.Element('annotation')
    if with_size:
        node = ET.SubElement(ann, 'size')
        ET.SubElement(node, 'width').text = str(size[0])
        ET.SubElement(node, 'height').text = str(size[1])
    for name, box, difficult in objects:
        obj = ET.SubElement(ann, 'object')
        ET.SubElement(obj, 'name').text = name
        if difficult is not None:
            ET.SubElement(obj, 'difficult').text = str(difficult)
        bnd = ET.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bnd, key).text = str(value)
    ann_dir = root / 'Annotations/Horizontal Bounding Boxes'
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / f'{img_id}.xml').write_bytes(ET.tostring(ann))
    sets = root / 'ImageSets/Main'
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f'{split}.txt').write_text(f'{img_id}\n')
    return ann_dir / f'{img_id}.xml'


def test_box_policy_values_on_a_hand_written_file(tmp_path):
    objects = [
        ('Expressway-Service-area', (1, 1, 100, 80), 0),  # the whole image
        ('expressway-service-area', (11, 21, 30, 40), 1),  # difficult
        ('EXPRESSWAY-TOLL-STATION', (-4, 71, 20, 95), 0),  # partly outside: clipped
        ('Dam', (90.5, 10, 130, 20.5), None),  # float coords, partly outside, no <difficult>
        ('windmill', (101, 5, 120, 30), 0),  # right of the image: after clipping no width
        ('windmill', (-30, 5, 0, 30), 0),  # left of the image
        ('airplane', (50, 10, 50, 30), 0),  # no width
        ('airplane', (60, 30, 70, 20), 0),  # ymax < ymin
    ]
    _write(tmp_path, objects)
    ds = _dataset(tmp_path, 'train')
    (info,) = [ds.get_data_info(0)]
    label = {c: i for i, c in enumerate(DIOR_CLASSES)}
    got = [(o['bbox_label'], o['bbox'], o['ignore_flag']) for o in info['instances']]
    assert got == [
        (label['Expressway-Service-area'], [0.0, 0.0, 99.0, 79.0], 0),
        (label['Expressway-Service-area'], [10.0, 20.0, 29.0, 39.0], 1),
        (label['Expressway-toll-station'], [0.0, 70.0, 19.0, 79.0], 0),
        (label['dam'], [89.5, 9.0, 99.0, 19.5], 0),
    ]
    assert ds.box_counts == dict(
        boxes=4,
        difficult=1,
        clipped=2,
        skipped_outside=2,
        skipped_degenerate=2,
        excluded_class=0,
    )
    assert [(i, k) for _, i, k in ds.box_issues] == [
        (2, 'clipped'),
        (3, 'clipped'),
        (4, 'skipped_outside'),
        (5, 'skipped_outside'),
        (6, 'skipped_degenerate'),
        (7, 'skipped_degenerate'),
    ]


def test_without_minus_one_and_size_from_the_image(tmp_path):
    _write(tmp_path, [('ship', (0, 0, 9, 9), 0)], with_size=False, size=(64, 48))
    ds = _dataset(tmp_path, 'train', minus_one=False)
    info = ds.get_data_info(0)
    assert (info['width'], info['height']) == (64, 48)
    assert info['instances'][0]['bbox'] == [0.0, 0.0, 9.0, 9.0]
    assert ds.num_clipped == 0


def test_class_subset_leaves_out_and_counts_the_other_classes(tmp_path):
    _write(tmp_path, [('ship', (1, 1, 9, 9), 0), ('Vehicle', (2, 2, 8, 8), 0)])
    ds = _dataset(tmp_path, 'train', metainfo=dict(classes=('vehicle',)))
    info = ds.get_data_info(0)
    assert [o['bbox_label'] for o in info['instances']] == [0]
    assert ds.box_counts['excluded_class'] == 1 and ds.box_counts['boxes'] == 1


def test_a_class_not_in_dior_is_a_one_line_error_naming_the_file(tmp_path):
    xml = _write(tmp_path, [('ship', (1, 1, 9, 9), 0), ('helicopter', (2, 2, 8, 8), 0)])
    with pytest.raises(PeraDataError) as err:
        _dataset(tmp_path, 'train')
    text = str(err.value)
    assert '\n' not in text
    assert str(xml) in text and "object 1 has class 'helicopter'" in text and 'DIOR' in text


def test_config_and_file_errors(tmp_path):
    with pytest.raises(PeraConfigError, match="split must be one of.*'trainval'"):
        DIORDataset(data_root=str(tmp_path), split='training')
    with pytest.raises(PeraFileNotFoundError, match=r'image-set file .*val\.txt does not exist'):
        _dataset(tmp_path, 'val')
    xml = _write(tmp_path, [('ship', (1, 'a', 9, 9), 0)])
    with pytest.raises(PeraDataError, match=rf'{xml}: object 0 has no numeric <bndbox>/<ymin>'):
        _dataset(tmp_path, 'train')
    with pytest.raises(PeraConfigError, match=r"metainfo classes \['car'\] are not DIOR"):
        _dataset(tmp_path, 'train', metainfo=dict(classes=('ship', 'car')))
    xml.unlink()
    with pytest.raises(PeraFileNotFoundError, match=r"annotation .*00001\.xml of image id '00001'"):
        _dataset(tmp_path, 'train')
    xml.write_text('<annotation><object>')
    with pytest.raises(PeraDataError, match=rf'{xml}: not a valid XML file'):
        _dataset(tmp_path, 'train')
    (tmp_path / 'JPEGImages-trainval/00001.jpg').unlink()
    with pytest.raises(PeraFileNotFoundError, match=r'image .*00001\.jpg of id .* does not exist'):
        _dataset(tmp_path, 'train')
