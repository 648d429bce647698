"""kNN probe of a PerA backbone on a labelled folder tree (one subfolder per class).

    python tools/analysis_tools/knn_probe.py CONFIG [CHECKPOINT] --data-root DIR

Prints leave-one-out kNN accuracy and the mean pairwise cosine of the teacher
cls features. Without CHECKPOINT the randomly initialised model is probed,
the baseline a healthy pretraining must beat.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmpretrain.registry import MODELS  # noqa: E402

import pera_mm  # noqa: E402,F401
from pera_mm.datasets.transforms.loading import decode_rgb  # noqa: E402
from pera_mm.evaluation import knn_leave_one_out, mean_pairwise_cosine  # noqa: E402

EXTS = {'.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp'}


def labelled_images(root):
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f'knn_probe: --data-root {root} is not a folder')
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = [
        (p, i)
        for i, c in enumerate(classes)
        for p in sorted((root / c).rglob('*'))
        if p.suffix.lower() in EXTS
    ]
    if len(classes) < 2 or not items:
        raise SystemExit(f'knn_probe: --data-root {root} needs >= 2 class subfolders of images')
    return items, classes


@torch.no_grad()
def teacher_features(model, items, size, mean, std, batch=64):
    feats = []
    for i in range(0, len(items), batch):
        imgs = [decode_rgb(p.read_bytes(), str(p)) for p, _ in items[i : i + batch]]
        x = torch.stack([torch.from_numpy(im).permute(2, 0, 1).float() for im in imgs])
        x = F.interpolate(
            x, size=(size, size), mode='bilinear', align_corners=False, antialias=True
        )
        x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        feats.append(model.teacher.backbone.forward_sparse(x, None)[:, 0])
    return torch.cat(feats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?')
    parser.add_argument('--data-root', required=True)
    parser.add_argument(
        '--img-size', type=int, default=None, help='probe size (default: the backbone img_size)'
    )
    parser.add_argument('--k', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args()

    cfg = Config.fromfile(args.config)
    DefaultScope.get_instance('knn_probe', scope_name='mmpretrain')
    torch.manual_seed(args.seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    model.eval()
    pre = cfg.model.data_preprocessor
    mean, std = torch.tensor(pre['mean']), torch.tensor(pre['std'])
    size = args.img_size or cfg.model.backbone.img_size
    items, classes = labelled_images(args.data_root)
    feats = teacher_features(model, items, size, mean, std)
    labels = torch.tensor([c for _, c in items])
    result = dict(
        checkpoint=args.checkpoint or 'random-init',
        images=len(items),
        classes=len(classes),
        k=args.k,
        knn_accuracy=knn_leave_one_out(feats, labels, args.k),
        chance=1 / len(classes),
        cls_cosine=mean_pairwise_cosine(feats),
    )
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
    np.set_printoptions(precision=4)
    main()
