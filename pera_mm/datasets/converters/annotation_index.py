# Copyright (c) pera-mm contributors. All rights reserved.
"""The annotation file of a large tile collection (tools/dataset_converters/build_annotation.py).

The folder tree is listed in parallel, one directory per task, level by level; the
files are then checked in parallel chunks, so one huge folder keeps every worker busy
too. The checks:

- ``header`` (default): empty files, and files whose leading bytes are not the format
  their extension names (a PNG called ``.jpg``, text called ``.png``), are rejected;
- ``decode``: also fully decoded with the consuming dataset's own decoder
  (:func:`decode_rgb` of ``LoadRGBImageFromFile``, or :func:`read_multiband` of
  ``LoadMultiBandImageFromFile``), so a truncated JPEG is rejected here, not in training.

Output: the list file of :class:`UnlabeledImageDataset` (one path per line, relative
to the root, sorted) and a tab-separated report ``<path>\\t<reason>`` of the rejected files.
"""

import multiprocessing
import os
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ...utils.errors import PeraConfigError, PeraFileNotFoundError

CHECKS = ('none', 'header', 'decode')
DECODERS = ('rgb', 'multiband')
DEFAULT_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp', '.webp')

#: extension -> the format name its files must start with
_EXPECTED_FORMAT = {
    '.jpg': 'JPEG',
    '.jpeg': 'JPEG',
    '.png': 'PNG',
    '.tif': 'TIFF',
    '.tiff': 'TIFF',
    '.bmp': 'BMP',
    '.webp': 'WEBP',
}


def sniff_format(head: bytes) -> Optional[str]:
    """The image format named by a file's first bytes (None when none is recognised)."""
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'PNG'
    if head.startswith(b'\xff\xd8\xff'):
        return 'JPEG'
    if head[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'):
        return 'TIFF'
    if head.startswith(b'BM'):
        return 'BMP'
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'WEBP'
    if head.startswith(b'GIF8'):
        return 'GIF'
    return None


def header_problem(path: str) -> Optional[str]:
    """Why ``path`` fails the header check, or None."""
    try:
        with open(path, 'rb') as handle:
            head = handle.read(16)
    except OSError as err:
        return f'cannot be opened ({err.strerror or err})'
    if not head:
        return 'file is empty (0 bytes)'
    expected = _EXPECTED_FORMAT.get(os.path.splitext(path)[1].lower())
    found = sniff_format(head)
    if expected is not None and found != expected:
        what = f'{found} data' if found else 'not an image format we recognise'
        return f'wrong extension: {what} in a {os.path.splitext(path)[1]} file'
    return None


def decode_problem(path: str, decoder: str) -> Optional[str]:
    """Why the dataset's decoder (``'rgb'`` or ``'multiband'``) rejects ``path``, or None."""
    from ..transforms.load_multiband_image import read_multiband
    from ..transforms.loading import UnreadableImageError, decode_rgb

    try:
        if decoder == 'rgb':
            with open(path, 'rb') as handle:
                decode_rgb(handle.read(), path)
        else:
            read_multiband(path)
    except UnreadableImageError as err:
        return f'undecodable: {" ".join(str(err.reason).split())}'
    except Exception as err:  # any decoder failure is a rejection, with its reason
        return f'undecodable: {type(err).__name__}: {" ".join(str(err).split())}'
    return None


def _scan(task) -> Tuple[List[str], List[str], List[Tuple[str, str]]]:
    """List one directory: (image files, sub-directories, unlistable (folder, reason))."""
    directory, extensions = task
    files, subdirs = [], []
    try:
        entries = list(os.scandir(directory))
    except OSError as err:
        return [], [], [(directory, f'folder cannot be listed ({err.strerror or err})')]
    for entry in entries:
        if entry.is_dir(follow_symlinks=True):
            subdirs.append(entry.path)
        elif entry.name.lower().endswith(extensions):
            files.append(entry.path)
    return files, subdirs, []


def _check(task) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Check a chunk of files: (accepted, rejected (file, reason))."""
    paths, check, decoder = task
    accepted, rejected = [], []
    for path in paths:
        reason = header_problem(path)
        if reason is None and check == 'decode':
            reason = decode_problem(path, decoder)
        if reason is None:
            accepted.append(path)
        else:
            rejected.append((path, reason))
    return accepted, rejected


#: files per check task (small enough to balance workers, large enough to amortise IPC)
CHECK_CHUNK = 256


def walk_images(
    root: str,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    check: str = 'header',
    decoder: str = 'rgb',
    workers: int = 1,
    progress: Optional[Callable[[int], None]] = None,
) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Find (and check) the image files under ``root`` with ``workers`` processes.

    The listing runs level by level (one directory per task); the checks then run
    over chunks of :data:`CHECK_CHUNK` files, so one huge folder is checked in
    parallel too. ``progress`` receives the number of files done after each chunk.

    Returns:
        tuple[list[str], list[tuple[str, str]]]: the accepted paths relative to
        ``root`` (sorted) and the rejected ``(relative path, reason)`` pairs (sorted).
    """
    if check not in CHECKS:
        raise PeraConfigError(f'check {check!r}: expected one of {CHECKS}')
    if decoder not in DECODERS:
        raise PeraConfigError(f'decoder {decoder!r}: expected one of {DECODERS}')
    if not os.path.isdir(root):
        raise PeraFileNotFoundError(f'{root}: no such folder')
    extensions = tuple('.' + e.lower().lstrip('.') for e in extensions)
    found, rejected = [], []
    frontier = [root]
    pool = multiprocessing.get_context('fork').Pool(workers) if workers > 1 else None
    run = (lambda fn, tasks: pool.imap_unordered(fn, tasks)) if pool else map
    try:
        while frontier:
            listed = run(_scan, [(d, extensions) for d in frontier])
            frontier = []
            for files, subdirs, bad in listed:
                found.extend(files)
                rejected.extend(bad)
                frontier.extend(subdirs)
        if check == 'none':
            accepted = found
            if progress is not None:
                progress(len(found))
        else:
            accepted = []
            chunks = [found[i : i + CHECK_CHUNK] for i in range(0, len(found), CHECK_CHUNK)]
            for good, bad in run(_check, [(c, check, decoder) for c in chunks]):
                accepted.extend(good)
                rejected.extend(bad)
                if progress is not None:
                    progress(len(good) + len(bad))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    accepted = sorted(os.path.relpath(p, root) for p in accepted)
    rejected = sorted((os.path.relpath(p, root), r) for p, r in rejected)
    return accepted, rejected


def write_annotation(
    root: str,
    out_file: str,
    report_file: Optional[str] = None,
    **walk_kwargs,
) -> Dict[str, object]:
    """Walk ``root`` and write the annotation file and the rejection report.

    Args:
        root (str): the image folder (``data_prefix['img_path']`` of the dataset).
        out_file (str): the list file to write (``ann_file`` of the dataset).
        report_file (str, optional): the report; defaults to ``<out_file>.rejected.tsv``.
        **walk_kwargs: :func:`walk_images` arguments (``extensions``, ``check``,
            ``decoder``, ``workers``, ``progress``).

    Returns:
        dict: ``accepted`` / ``rejected`` counts, ``reasons`` (reason -> count, with
        the reason's kind before ':'), and the ``files`` written.
    """
    accepted, rejected = walk_images(root, **walk_kwargs)
    report_file = report_file or f'{out_file}.rejected.tsv'
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    with open(out_file, 'w', encoding='utf-8') as handle:
        for path in accepted:
            handle.write(path + '\n')
    with open(report_file, 'w', encoding='utf-8') as handle:
        handle.write('path\treason\n')
        for path, reason in rejected:
            handle.write(f'{path}\t{reason}\n')
    kinds: Dict[str, int] = {}
    for _, reason in rejected:
        kind = reason.split(':')[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(
        accepted=len(accepted),
        rejected=len(rejected),
        reasons=kinds,
        files=dict(annotation=out_file, report=report_file),
    )


def read_report(report_file: str) -> Iterator[Tuple[str, str]]:
    """The ``(path, reason)`` rows of a rejection report."""
    with open(report_file, encoding='utf-8') as handle:
        next(handle, None)
        for line in handle:
            path, _, reason = line.rstrip('\n').partition('\t')
            yield path, reason
