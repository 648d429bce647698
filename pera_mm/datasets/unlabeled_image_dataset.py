# Copyright (c) pera-mm contributors. All rights reserved.
"""A label-free image dataset that survives bad tiles in uncurated data."""

import logging
import multiprocessing as mp
import os
import os.path as osp
from array import array
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine import fileio
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS, TRANSFORMS

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError
from .transforms.loading import UnreadableImageError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp', '.webp')


def _is_remote(path: str) -> bool:
    return '://' in path


class SkipCounter:
    """Process-shared counters of skipped images (total and this epoch).

    The values live in shared memory so that increments made inside
    DataLoader worker processes are visible to the main process, for fork
    (inherited) and spawn (passed while spawning) start methods. Plain
    pickling or deep-copying outside of process spawning (e.g.
    ``BaseDataset.get_subset``) yields an independent counter that starts
    from the current values.
    """

    def __init__(self, total: int = 0, epoch: int = 0) -> None:
        # A spawn-context lock can be shared with fork, forkserver and spawn
        # children alike (a fork-context one cannot go to spawned workers).
        ctx = mp.get_context('spawn')
        self._total = ctx.Value('q', total)
        self._epoch = ctx.Value('q', epoch)

    def increment(self) -> None:
        with self._total.get_lock():
            self._total.value += 1
        with self._epoch.get_lock():
            self._epoch.value += 1

    @property
    def total(self) -> int:
        return self._total.value

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def pop_epoch(self) -> int:
        """Return the skips since the last call and reset that count."""
        with self._epoch.get_lock():
            value = self._epoch.value
            self._epoch.value = 0
        return value

    def __reduce__(self):
        if mp.context.get_spawning_popen() is not None:
            # Being sent to a new worker process: share the same memory.
            return (_rebuild_shared, (self._total, self._epoch))
        return (SkipCounter, (self.total, self.epoch))

    def __deepcopy__(self, memo):
        return SkipCounter(self.total, self.epoch)


def _rebuild_shared(total, epoch) -> SkipCounter:
    counter = SkipCounter.__new__(SkipCounter)
    counter._total, counter._epoch = total, epoch
    return counter


@DATASETS.register_module()
class UnlabeledImageDataset(BaseDataset):
    """Images without labels, from a folder tree or a list file.

    Built for large uncurated remote-sensing collections:

    - Without ``ann_file`` the image folder is scanned recursively for
      ``extensions`` (case-insensitive) and the paths are sorted.
    - With ``ann_file``, a text file lists one image path per line, relative
      to the image folder (absolute paths are kept); blank lines and lines
      starting with ``#`` are ignored. The file is streamed and the paths are
      stored as one packed utf-8 buffer (not one dict per image), so lists of
      millions of tiles stay cheap and are shared copy-on-write with
      DataLoader workers.
    - An image the pipeline reports as unreadable
      (:class:`UnreadableImageError`) is skipped: it is counted in
      process-shared counters, its path is logged once per process, and
      another index is fetched, so one bad tile never stops training.
      Any other error propagates. In ``test_mode`` nothing is skipped.

    Each data info is ``dict(img_path=...)`` (plus ``sample_idx``).

    Args:
        data_root (str): Root of the dataset; joined with ``ann_file`` and
            ``data_prefix['img_path']`` when those are relative.
        ann_file (str): Optional list file (see above). Defaults to ''.
        data_prefix (dict | str): ``dict(img_path=...)`` image folder,
            relative to ``data_root`` (a plain string is accepted as
            ``img_path``). Defaults to ``dict(img_path='')``.
        extensions (Sequence[str]): File suffixes kept by the folder scan.
            Defaults to jpg, jpeg, png, tif, tiff, bmp, webp.
        pipeline (list): Transforms. Defaults to [].
        backend_args (dict, optional): ``mmengine.fileio`` backend arguments
            used to list the folder and read ``ann_file``. Defaults to None.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments
            (``indices``, ``serialize_data``, ``lazy_init``, ``test_mode``,
            ``max_refetch``, ``metainfo``, ...).
    """

    def __init__(
        self,
        data_root: str = '',
        ann_file: str = '',
        data_prefix: dict = dict(img_path=''),
        extensions: Sequence[str] = IMG_EXTENSIONS,
        pipeline: Sequence = (),
        backend_args: Optional[dict] = None,
        **kwargs,
    ) -> None:
        if (
            isinstance(extensions, str)
            or not extensions
            or not all(isinstance(e, str) and e.strip('.') for e in extensions)
        ):
            raise PeraConfigError(
                f'extensions must be a non-empty sequence of file suffixes, got {extensions!r}'
            )
        self.extensions = tuple('.' + e.lower().lstrip('.') for e in extensions)
        if isinstance(data_prefix, str):  # MMPretrain-style shorthand
            data_prefix = dict(img_path=data_prefix)
        if not isinstance(data_prefix, dict) or set(data_prefix) != {'img_path'}:
            raise PeraConfigError(f'data_prefix must be dict(img_path=...), got {data_prefix!r}')
        self.backend_args = backend_args
        self.skip_counter = SkipCounter()
        self._logged_bad_paths = set()
        self.last_unreadable: Optional[UnreadableImageError] = None
        data_root = data_root or ''
        self._check_paths(data_root, ann_file or '', data_prefix['img_path'])
        # Build dict transforms with MMPretrain's registry (like its own
        # datasets do), so no default scope is needed.
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            ann_file=ann_file or '',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=pipeline,
            **kwargs,
        )

    # ------------------------------------------------------------ listing
    def _check_paths(self, data_root: str, ann_file: str, img_prefix: str) -> None:
        """Fail at construction on missing local paths."""
        if data_root and not _is_remote(data_root) and not osp.isdir(data_root):
            raise PeraFileNotFoundError(
                f'data_root {data_root!r} does not exist or is not a directory'
            )
        if ann_file:
            path = (
                ann_file if osp.isabs(ann_file) or not data_root else osp.join(data_root, ann_file)
            )
            if not _is_remote(path) and not osp.isfile(path):
                raise PeraFileNotFoundError(f'ann_file {path!r} does not exist')
            return
        if not data_root and not img_prefix:
            raise PeraConfigError(
                "UnlabeledImageDataset needs data_root or data_prefix['img_path'] (or an ann_file)"
            )
        img_dir = (
            img_prefix
            if osp.isabs(img_prefix) or not data_root
            else osp.join(data_root, img_prefix)
        )
        if not _is_remote(img_dir) and not osp.isdir(img_dir):
            raise PeraFileNotFoundError(
                f"data_prefix['img_path'] folder {img_dir!r} does not exist"
            )

    def _iter_ann_file(self) -> Iterator[str]:
        """Stream the image paths listed in ``ann_file``."""
        with fileio.get_local_path(self.ann_file, backend_args=self.backend_args) as local:
            with open(local, encoding='utf-8') as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith('#'):
                        yield line

    def _scan_folder(self) -> List[str]:
        """Sorted image paths under the image folder, relative to it."""
        root = self.data_prefix['img_path']
        if not _is_remote(root):
            found = []
            for dirpath, dirnames, filenames in os.walk(root or '.', followlinks=True):
                dirnames.sort()
                rel_dir = osp.relpath(dirpath, root or '.')
                for name in filenames:
                    if name.lower().endswith(self.extensions):
                        found.append(name if rel_dir == '.' else osp.join(rel_dir, name))
        else:
            found = [
                p
                for p in fileio.list_dir_or_file(
                    root, list_dir=False, recursive=True, backend_args=self.backend_args
                )
                if p.lower().endswith(self.extensions)
            ]
        found.sort()
        return found

    def _relative_paths(self) -> Iterator[str]:
        return self._iter_ann_file() if self.ann_file else iter(self._scan_folder())

    def _join(self, rel_path: str) -> str:
        root = self.data_prefix['img_path']
        if not root:
            return rel_path
        if _is_remote(root):
            return fileio.join_path(root, rel_path, backend_args=self.backend_args)
        return osp.join(root, rel_path)

    def _raise_empty(self) -> None:
        if self.ann_file:
            raise PeraDataError(f'ann_file {self.ann_file!r} lists no images')
        raise PeraDataError(
            f'no images with extensions {list(self.extensions)} found under '
            f'data_root {self.data_root!r} (img_path '
            f'{self.data_prefix["img_path"]!r})'
        )

    @staticmethod
    def _pack(paths: Iterator[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Pack strings into (utf-8 bytes, cumulative end offsets)."""
        buffer = bytearray()
        ends = array('q')
        for path in paths:
            buffer += path.encode('utf-8')
            ends.append(len(buffer))
        return (np.frombuffer(buffer, dtype=np.uint8), np.frombuffer(ends, dtype=np.int64).copy())

    def load_data_list(self) -> List[dict]:
        """All data infos as ``dict(img_path=...)`` (``serialize_data=False``
        path; the default path packs them without building dicts)."""
        return [dict(img_path=self._join(p)) for p in self._relative_paths()]

    def full_init(self) -> None:
        """Load the image list (packed when ``serialize_data``), then apply
        ``indices``. Raises PeraDataError (a ValueError) when no image is found."""
        if self._fully_initialized:
            return
        if self.serialize_data:
            self.data_bytes, self.data_address = self._pack(self._relative_paths())
            empty = len(self.data_address) == 0
        else:
            self.data_list = self.load_data_list()
            empty = not self.data_list
        if empty:
            self._raise_empty()
        # Subsetting uses len(self), which needs the flag set first.
        self._fully_initialized = True
        if self._indices is not None:
            if self.serialize_data:
                self.data_bytes, self.data_address = self._get_serialized_subset(self._indices)
            else:
                self.data_list = self._get_unserialized_subset(self._indices)

    def get_data_info(self, idx: int) -> dict:
        """``dict(img_path=..., sample_idx=...)`` of the ``idx``-th image."""
        if not self.serialize_data:
            return super().get_data_info(idx)
        if idx < 0:
            idx += len(self)
        start = 0 if idx == 0 else int(self.data_address[idx - 1])
        end = int(self.data_address[idx])
        rel_path = self.data_bytes[start:end].tobytes().decode('utf-8')
        return dict(img_path=self._join(rel_path), sample_idx=idx)

    # ------------------------------------------------------------ skipping
    #: unreadable files quoted in the error when no readable image is found
    num_reasons_reported = 3

    def prepare_data(self, idx: int):
        """Run the pipeline; count, log and skip unreadable images.

        Returns None for an unreadable image (the reason is kept in
        ``last_unreadable`` for :meth:`__getitem__`'s report).
        """
        data_info = self.get_data_info(idx)
        self.last_unreadable = None
        try:
            return self.pipeline(data_info)
        except UnreadableImageError as err:
            if self.test_mode:
                raise
            self.last_unreadable = err
            self.skip_counter.increment()
            if err.path not in self._logged_bad_paths:
                self._logged_bad_paths.add(err.path)
                print_log(
                    f'skipping unreadable image {err.path} ({err.reason})',
                    logger='current',
                    level=logging.WARNING,
                )
            return None

    def __getitem__(self, idx: int) -> dict:
        """The ``idx``-th sample; in training an unreadable image is replaced
        by another, random one (up to ``max_refetch`` times).

        Raises:
            PeraDataError: when no readable image turned up: one line with how
                many files were tried and the first reasons.
        """
        if self.test_mode:
            return super().__getitem__(idx)
        if not self._fully_initialized:
            print_log(
                'Please call `full_init()` method manually to accelerate the speed.',
                logger='current',
                level=logging.WARNING,
            )
            self.full_init()
        tried, reasons = set(), []
        for _ in range(self.max_refetch + 1):
            data = self.prepare_data(idx)
            if data is not None:
                return data
            err = self.last_unreadable
            if err is not None:
                tried.add(idx)
                if len(reasons) < self.num_reasons_reported and all(
                    err.path != p for p, _ in reasons
                ):
                    reasons.append((err.path, ' '.join(str(err.reason).split())))
                if len(tried) == len(self):
                    break  # every file was tried: no point in drawing again
            idx = self._rand_another()
        raise PeraDataError(self._no_valid_image_message(tried, reasons))

    def _no_valid_image_message(self, tried, reasons) -> str:
        where = (
            f'ann_file {self.ann_file!r}'
            if self.ann_file
            else f'folder {self.data_prefix["img_path"] or self.data_root!r}'
        )
        if not tried:
            return (
                f'{type(self).__name__}: the pipeline returned no sample in '
                f'{self.max_refetch + 1} attempts from {where}'
            )
        scope = (
            f'all {len(self)} files'
            if len(tried) == len(self)
            else f'{len(tried)} of {len(self)} files'
        )
        first = '; '.join(f'{osp.basename(p)}: {r}' for p, r in reasons)
        return (
            f'{type(self).__name__}: no readable image in {where}: {scope} tried, '
            f'all unreadable (first reasons: {first})'
        )

    @property
    def num_skipped(self) -> int:
        """Unreadable images skipped since the dataset was built."""
        return self.skip_counter.total

    def pop_epoch_skipped(self) -> int:
        """Unreadable images skipped since the last call; resets the count."""
        return self.skip_counter.pop_epoch()
