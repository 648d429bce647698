"""tools/dataset_converters/crop_change_pairs.py on the real 952 x 640 SZTAKI pair."""

import numpy as np
import pytest
from PIL import Image

from pera_mm.datasets.change_pair_crops import crop_pairs, pair_triples
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraDataError

TOOL = REPO_ROOT / 'tools' / 'dataset_converters' / 'crop_change_pairs.py'


def _rgb(path):
    return np.asarray(Image.open(path).convert('RGB'))


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'crop, stride, ys, xs',
    [(256, 192, [0, 192, 384], [0, 192, 384, 576, 696]), (512, 220, [0, 128], [0, 220, 440])],
)
def test_sztaki_pair_crops_with_real_overlap(shared_path, tmp_path, crop, stride, ys, xs):
    src = shared_path('SZTAKI_AirChange/Szada/1')
    files = [src / 'im1.bmp', src / 'im2.bmp', src / 'gt.bmp']
    out = tmp_path / 'out'
    names = crop_pairs(pair_triples([[str(f) for f in files]]), str(out), crop, stride, 'train')
    assert names == [f'1_im1_{y:04d}_{x:04d}' for y in ys for x in xs]
    assert (out / 'list' / 'train.txt').read_text().split() == [n + '.png' for n in names]
    a, b = _rgb(files[0]), _rgb(files[1])
    gt = np.asarray(Image.open(files[2]))
    assert a.shape == (640, 952, 3)
    covered = np.zeros(gt.shape, int)
    for name in names:
        y, x = (int(v) for v in name.split('_')[-2:])
        np.testing.assert_array_equal(
            _rgb(out / 'A' / f'{name}.png'), a[y : y + crop, x : x + crop]
        )
        np.testing.assert_array_equal(
            _rgb(out / 'B' / f'{name}.png'), b[y : y + crop, x : x + crop]
        )
        label = np.asarray(Image.open(out / 'label' / f'{name}.png'))
        np.testing.assert_array_equal(label, gt[y : y + crop, x : x + crop])
        covered[y : y + crop, x : x + crop] += 1
    assert covered.min() >= 1  # every pixel is in some crop
    assert (covered > 1).any()  # and neighbours really overlap
    assert xs[1] - xs[0] == stride  # the stride is honoured


@pytest.mark.needs_shared
def test_cli_crops_and_reports_bad_label_in_one_line(shared_path, tmp_path, load_script, capsys):
    src = shared_path('SZTAKI_AirChange/Szada/1')
    tool = load_script(TOOL)
    im1, im2, gt = (str(src / n) for n in ('im1.bmp', 'im2.bmp', 'gt.bmp'))
    tool.main(['--pair', im1, im2, gt, str(tmp_path / 'ok'), '--crop-size', '256'])
    # default stride crop/2 = 128: ceil((640-256)/128)+1 = 4 rows, ceil((952-256)/128)+1 = 7
    assert '28 crops of 256 px (stride 128) from 1 pairs' in capsys.readouterr().out
    assert len((tmp_path / 'ok' / 'list' / 'all.txt').read_text().split()) == 28
    # an RGB photo given as the label: channels differ -> one line naming the file, exit 4
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--pair', im1, im2, im1, str(tmp_path / 'o'), '--crop-size', '256'])
    assert exit_info.value.code == 4
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'im1.bmp' in lines[0] and 'data error' in lines[0]


def test_size_mismatch_and_small_image_name_the_files(tmp_path):
    def write(name, shape):
        path = tmp_path / name
        Image.fromarray(np.zeros(shape, np.uint8)).save(path)
        return str(path)

    a, b = write('a.png', (300, 300, 3)), write('b.png', (300, 260, 3))
    label = write('l.png', (300, 300))
    with pytest.raises(PeraDataError, match='a.png / .*b.png'):
        crop_pairs(pair_triples([[a, b, label]]), str(tmp_path / 'o'), 256, 128)
    small = write('s.png', (200, 200, 3))
    small_label = write('sl.png', (200, 200))
    with pytest.raises(PeraDataError, match='s.png .*smaller than the 256-pixel crop'):
        crop_pairs(pair_triples([[small, small, small_label]]), str(tmp_path / 'o'), 256, 128)
