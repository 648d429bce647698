#!/usr/bin/env python
"""Merge the LoRA layers of a LoRA fine-tuning checkpoint into plain weights.

    python tools/model_converters/merge_lora.py SRC DST [--backbone-only]

SRC is a checkpoint of a config whose backbone is ``ViTLoRAModel`` (it keeps the
frozen base weights and every layer's ``alpha / rank``). Each adapted linear
becomes ``W + (alpha / rank) B A`` under its plain name and the wrapper's
``module.`` level is dropped, so DST loads into the same config with the plain
``PerAViT`` / ``PerAViTAdapter`` backbone (``tools/test.py PLAIN_CONFIG DST``)
and gives the same outputs. ``--backbone-only`` writes the backbone alone with
PerAViT names (no ``backbone.`` prefix), for ``init_cfg=dict(type='Pretrained',
checkpoint=DST)``. Optimizer state is not copied.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from tqdm import tqdm  # noqa: E402

from pera_mm.models.peft import lora_layer_prefixes, merge_lora_state_dict  # noqa: E402
from pera_mm.utils.checkpoint_convert import (  # noqa: E402
    CheckpointConvertError,
    load_weights_file,
    save_weights_file,
    unwrap_state_dict,
)
from pera_mm.utils.errors import PeraDataError  # noqa: E402
from pera_mm.version import __version__  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Merge LoRA layers of a ViTLoRAModel checkpoint into the base weights'
    )
    parser.add_argument('src', help='checkpoint of a LoRA fine-tuning run (MMEngine)')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write the merged backbone alone (PerAViT names, no "backbone." prefix)',
    )
    return parser.parse_args(argv)


def merge_checkpoint(src: str, backbone_only: bool = False):
    """The merged state dict of ``src`` and the number of merged layers."""
    state_dict = unwrap_state_dict(load_weights_file(src, mmap=True), src)
    layers = lora_layer_prefixes(state_dict)
    if not layers:
        raise PeraDataError(
            f'{src}: no LoRA layer (no *.lora_scaling key); expected a checkpoint of a '
            'ViTLoRAModel backbone'
        )
    merged = merge_lora_state_dict(state_dict, tqdm(layers, desc='merge LoRA', unit='layer'))
    if backbone_only:
        merged = type(merged)(
            (k[len('backbone.') :], v) for k, v in merged.items() if k.startswith('backbone.')
        )
        if not merged:
            raise PeraDataError(f'{src}: --backbone-only: no backbone.* key')
    return merged, len(layers)


def main(argv=None):
    args = parse_args(argv)
    try:
        merged, num_layers = merge_checkpoint(args.src, args.backbone_only)
        meta = dict(
            converter='merge_lora',
            source=osp.abspath(args.src),
            backbone_only=args.backbone_only,
            merged_layers=num_layers,
            pera_mm_version=__version__,
        )
        save_weights_file(merged, args.dst, meta, progress=True)
    except (CheckpointConvertError, PeraDataError) as e:
        sys.exit(f'error: {e}')
    print(f'merged {num_layers} LoRA layers; wrote {len(merged)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
