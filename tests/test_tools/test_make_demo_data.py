# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/misc/make_demo_data.py: the command line around the scene generator."""

from mmengine.config import Config
from PIL import Image

from pera_mm.testing import REPO_ROOT

TOOL = REPO_ROOT / 'tools' / 'misc' / 'make_demo_data.py'
DEMO = REPO_ROOT / 'configs' / 'pera' / 'pera_vit-tiny-p16_1xb32-20e_demo-96px.py'


def test_writes_tiles_once(tmp_path, capsys, load_script):
    cli = load_script(TOOL)
    out = tmp_path / 'demo'
    cli.main([str(out), '--num', '6', '--size', '40', '--seed', '2'])
    files = sorted(out.rglob('*.jpg'))
    assert len(files) == 6
    assert all(Image.open(f).size == (40, 40) for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    cli.main([str(out), '--num', '6', '--size', '40', '--seed', '2'])
    assert 'already holds 6' in capsys.readouterr().out
    assert [f.stat().st_mtime_ns for f in files] == stamps  # nothing rewritten


def test_default_folder_is_where_the_demo_config_reads(load_script):
    # run without arguments, the tool fills the folder the demo config trains on
    default = load_script(TOOL).parse_args([]).out_dir
    assert Config.fromfile(DEMO).train_dataloader.dataset.data_root == default
