# Copyright (c) pera-mm contributors. All rights reserved.
"""Strict RGB image loading for uncurated remote-sensing tile collections."""

import io
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageFile, UnidentifiedImageError

from ...utils.errors import PeraConfigError, PeraError


class UnreadableImageError(PeraError, OSError):
    """A file that cannot be read or fully decoded as an image.

    Raised by :class:`LoadRGBImageFromFile` so that datasets can skip a bad
    tile (see :class:`UnlabeledImageDataset`) while every other error still
    propagates. It is a project data error (``exit_kind='data'``) for the
    tools' one-line report.

    Args:
        path (str): The offending file.
        reason (str): Why it could not be loaded.
    """

    exit_kind = 'data'

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'unreadable image {path!r}: {reason}')
        self.path = str(path)
        self.reason = reason

    def __reduce__(self):
        # Keep the two-argument signature picklable (DataLoader workers send
        # exceptions to the main process).
        return (self.__class__, (self.path, self.reason))


def _to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert any single-image Pillow mode to an RGB uint8 (H, W, 3) array.

    Alpha is dropped (colour values kept as stored, not composited), palettes
    are expanded, and 16/32-bit integer greyscale is rescaled from the 16-bit
    range (``value / 257``) rather than truncated.
    """
    mode = img.mode
    if mode == 'RGB':
        arr = np.asarray(img)
    elif mode.startswith('I;16') or mode == 'I':
        # 16-bit PNG/TIFF greyscale (Pillow gives 'I;16*' or 'I').
        grey = np.asarray(img).astype(np.float32)
        grey = np.clip(grey, 0, 65535) * (255.0 / 65535.0)
        grey = np.floor(grey + 0.5).astype(np.uint8)
        arr = np.repeat(grey[..., None], 3, axis=2)
    elif mode == 'F':
        grey = np.clip(np.asarray(img), 0, 255)
        grey = np.floor(grey + 0.5).astype(np.uint8)
        arr = np.repeat(grey[..., None], 3, axis=2)
    elif mode in ('L', 'LA', '1'):
        grey = np.asarray(img.getchannel(0).convert('L'))
        arr = np.repeat(grey[..., None], 3, axis=2)
    elif mode in ('RGBA', 'RGBX', 'RGBa'):
        arr = np.asarray(img.convert('RGBA'))[..., :3]
    elif mode in ('P', 'PA'):
        # Going through RGBA avoids Pillow's palette-transparency warning.
        arr = np.asarray(img.convert('RGBA'))[..., :3]
    else:  # CMYK, YCbCr, LAB, HSV, ...
        arr = np.asarray(img.convert('RGB'))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f'cannot convert mode {mode} to RGB uint8')
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order='C')  # Pillow's array views are read-only
    return arr


def decode_rgb(content: bytes, path: str = '<bytes>') -> np.ndarray:
    """Fully decode image bytes to an RGB uint8 (H, W, 3) array.

    Pillow's lazy loader can silently return the decoded prefix of a
    truncated file when ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set; we force
    strict, complete decoding so that a damaged tile fails here instead of
    entering training as a half-grey image.

    Raises:
        UnreadableImageError: If the bytes are not a complete image.
    """
    if not content:
        raise UnreadableImageError(path, 'file is empty')
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()
            return _to_rgb_uint8(img)
    except MemoryError:
        raise
    except UnidentifiedImageError as err:
        raise UnreadableImageError(
            path, 'UnidentifiedImageError: unknown format or corrupt header'
        ) from err
    except Exception as err:  # Pillow raises many types for bad data
        reason = f'{type(err).__name__}: {err}'.strip()
        raise UnreadableImageError(path, reason) from err
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


@TRANSFORMS.register_module()
class LoadRGBImageFromFile(BaseTransform):
    """Load an image file as an RGB uint8 array, failing loudly on bad files.

    Unlike mmcv's ``LoadImageFromFile`` (BGR, lenient decoders), this returns
    RGB in every case (greyscale, RGBA, palette, LA and 16-bit inputs are
    converted) and raises :class:`UnreadableImageError` for missing, empty,
    truncated or otherwise undecodable files, which
    :class:`UnlabeledImageDataset` turns into a counted skip.

    Required keys: ``img_path``. Added keys: ``img`` (H, W, 3) uint8 RGB,
    ``img_shape`` and ``ori_shape`` (H, W).

    Args:
        backend_args (dict, optional): Arguments to instantiate the
            ``mmengine.fileio`` backend (e.g. object storage). Defaults to
            None (local disk).
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        if backend_args is not None and not isinstance(backend_args, dict):
            raise PeraConfigError(
                f'backend_args must be a dict or None, got {type(backend_args).__name__}'
            )
        self.backend_args = None if backend_args is None else dict(backend_args)

    def transform(self, results: dict) -> dict:
        """Read ``results['img_path']`` and add the decoded RGB image."""
        if 'img_path' not in results:
            raise KeyError("LoadRGBImageFromFile needs results['img_path']")
        path = str(results['img_path'])
        try:
            content = fileio.get(path, backend_args=self.backend_args)
        except (OSError, ValueError) as err:
            raise UnreadableImageError(path, f'{type(err).__name__}: {err}') from err
        img = decode_rgb(content, path)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(backend_args={self.backend_args})'
