# Copyright (c) pera-mm contributors. All rights reserved.
"""Encoder-decoder with a frozen encoder, for linear-probe segmentation."""

from typing import Optional

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError, PeraError


@MODELS.register_module()
class LinearProbeEncoderDecoder(EncoderDecoder):
    """MMSeg's :class:`EncoderDecoder` whose backbone never changes.

    The backbone (any of our ViTs with ``out_type='featmap'``: ``PerAViT``,
    ``IJEPAViT``, ``LatentMIMViT``) has ``requires_grad=False`` from construction (so
    no optimizer step touches it: AdamW skips tensors without gradients, weight decay
    included), always stays in eval mode (no dropout / drop path) and runs under
    ``torch.no_grad``. Only the decode head learns. A neck is refused: a linear probe
    reads the encoder's features directly.

    Band statistics: a ``data_preprocessor`` config must give ``mean`` and ``std``
    (one value per input band). MMSeg's ``SegDataPreProcessor`` silently skips the
    normalisation when either is None, which would probe the encoder on raw DN; here it
    is a one-line :class:`PeraConfigError` naming the field. ``band_stats`` fills both
    from a GEO-Bench task's ``band_stats.json`` instead, when the model is built.

    Args:
        band_stats (dict, optional): ``dict(data_root=<GEO-Bench task folder>,
            bands=[...])``: ``data_preprocessor.mean`` / ``std`` become the ``mean`` /
            ``std`` of ``bands`` (``'B2'`` or ``'02 - Blue'`` names) in
            ``<data_root>/band_stats.json``. The config's own ``mean`` and ``std`` must
            then be None.
        **kwargs: :class:`EncoderDecoder` arguments (``data_preprocessor``, ...).
    """

    def __init__(
        self,
        backbone: dict,
        decode_head: dict,
        neck=None,
        band_stats: Optional[dict] = None,
        **kwargs,
    ):
        if neck is not None:
            raise PeraConfigError('LinearProbeEncoderDecoder: a linear probe takes no neck')
        preprocessor = kwargs.get('data_preprocessor')
        if band_stats is not None:
            preprocessor = with_band_stats(preprocessor, band_stats)
        check_band_normalisation(preprocessor, backbone)
        kwargs['data_preprocessor'] = preprocessor
        super().__init__(backbone=backbone, decode_head=decode_head, **kwargs)
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        """Set the mode of the heads; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def extract_feat(self, inputs: torch.Tensor):
        """The frozen backbone's features, without autograd."""
        with torch.no_grad():
            return self.backbone(inputs)


def with_band_stats(preprocessor, band_stats: dict) -> dict:
    """``preprocessor`` (a config) with ``mean`` / ``std`` read from ``band_stats.json``.

    Raises:
        PeraConfigError: ``band_stats`` malformed, no preprocessor config, or the
            preprocessor already has statistics.
        PeraFileNotFoundError: no ``<data_root>/band_stats.json``.
        PeraDataError: a band missing from it.
    """
    from ...datasets.geobench_seg_dataset import geobench_band_stats

    if not isinstance(band_stats, dict) or set(band_stats) != {'data_root', 'bands'}:
        raise PeraConfigError(
            f'model.band_stats must be dict(data_root=<GEO-Bench task folder>, bands=[...]), '
            f'got {band_stats!r}'
        )
    if not isinstance(preprocessor, dict):
        raise PeraConfigError(
            'model.band_stats needs model.data_preprocessor as a config dict '
            f'(got {type(preprocessor).__name__})'
        )
    given = [k for k in ('mean', 'std') if preprocessor.get(k) is not None]
    if given:
        raise PeraConfigError(
            f'model.band_stats and model.data_preprocessor.{given[0]} are both set: '
            'give the statistics one way (set mean and std to None, or band_stats to None)'
        )
    bands = band_stats['bands']
    if isinstance(bands, str) or not bands:
        raise PeraConfigError(f'model.band_stats.bands must be a list of bands, got {bands!r}')
    try:
        stats = geobench_band_stats(str(band_stats['data_root']), list(bands))
    except PeraError as err:  # name the config field the file came from
        raise type(err)(f'model.band_stats: {err}') from err
    return dict(preprocessor, mean=stats['mean'], std=stats['std'])


def check_band_normalisation(preprocessor, backbone: dict) -> None:
    """One-line error unless ``preprocessor`` normalises every input band.

    ``None`` (MMEngine's plain ``BaseDataPreprocessor``: inputs used as given) is
    accepted; a config needs ``mean`` and ``std`` of the backbone's band count.
    """
    if preprocessor is None:
        return
    if not isinstance(preprocessor, dict):
        if getattr(preprocessor, '_enable_normalize', True) is False:
            raise PeraConfigError(
                'model.data_preprocessor has no mean/std: a linear probe needs per-band statistics'
            )
        return
    for key in ('mean', 'std'):
        if preprocessor.get(key) is None:
            raise PeraConfigError(
                f'model.data_preprocessor.{key} is None: a linear probe needs per-band '
                'statistics (SegDataPreProcessor would silently skip the normalisation); '
                'set band_mean / band_std in the config, or model.band_stats='
                'dict(data_root=<GEO-Bench task folder>, bands=[...]) to read band_stats.json'
            )
    mean, std = list(preprocessor['mean']), list(preprocessor['std'])
    bands = backbone.get('in_channels') if isinstance(backbone, dict) else None
    if len(mean) != len(std) or (bands is not None and len(mean) != bands):
        raise PeraConfigError(
            f'model.data_preprocessor: mean has {len(mean)} values and std {len(std)}, '
            f'expected one per input band ({bands if bands is not None else len(mean)})'
        )
    if any(float(s) <= 0 for s in std):
        raise PeraConfigError(f'model.data_preprocessor.std must be positive, got {std}')
