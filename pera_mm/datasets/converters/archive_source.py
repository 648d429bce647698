# Copyright (c) pera-mm contributors. All rights reserved.
"""The files of a downloaded dataset archive: the zip itself or the folder it was extracted to."""

import io
import re
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from ...utils.errors import PeraDataError, PeraFileNotFoundError


class ArchiveSource:
    """Read members of a zip archive, or files of the folder it was extracted to.

    Member names are ``/``-separated paths inside the zip; for a folder they are
    the paths relative to the folder's parent, so ``Train/`` extracted from
    ``Train.zip`` gives the same names (``Train/Rural/...``) as the zip.
    The zip is opened lazily in each process, so a source can be sent to
    worker processes.

    Args:
        path (str | Path): a ``.zip`` file or a folder.

    Raises:
        PeraFileNotFoundError: ``path`` does not exist.
        PeraDataError: ``path`` is a file but not a readable zip archive.
    """

    def __init__(self, path) -> None:
        self.path = Path(path)
        self._zip: Optional[zipfile.ZipFile] = None
        if self.path.is_dir():
            root = self.path.parent
            self._members = sorted(
                p.relative_to(root).as_posix() for p in self.path.rglob('*') if p.is_file()
            )
        elif self.path.is_file():
            self._members = sorted(
                info.filename for info in self._open().infolist() if not info.is_dir()
            )
        else:
            raise PeraFileNotFoundError(f'{self.path}: no such archive or folder')

    @classmethod
    def locate(cls, folder, stem: str) -> 'ArchiveSource':
        """The archive ``<folder>/<stem>.zip``, or else the extracted folder ``<folder>/<stem>``.

        Args:
            folder (str | Path): the download folder.
            stem (str): the archive name without ``.zip``.

        Raises:
            PeraFileNotFoundError: neither exists.
        """
        folder = Path(folder)
        for candidate in (folder / f'{stem}.zip', folder / stem):
            if candidate.exists():
                return cls(candidate)
        raise PeraFileNotFoundError(
            f'{folder / (stem + ".zip")}: not found (nor the extracted folder {folder / stem})'
        )

    def _open(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as err:
                raise PeraDataError(f'{self.path}: not a readable zip archive ({err})') from None
        return self._zip

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_zip'] = None  # each process opens its own handle
        return state

    @property
    def members(self) -> List[str]:
        """The file members, sorted."""
        return list(self._members)

    def where(self, member: str) -> str:
        """How errors name ``member``: ``<archive>:<member>`` (or the file path of a folder)."""
        if self.path.is_dir():
            return str(self.path.parent / member)
        return f'{self.path}:{member}'

    def match(self, pattern: str, key: str = 'key') -> Dict[str, str]:
        """The members matching ``pattern``, by the regex group ``key``.

        Args:
            pattern (str): a regular expression searched in each member name.
            key (str): the named group that identifies the member.

        Returns:
            dict[str, str]: group value -> member name.

        Raises:
            PeraDataError: two members give the same key.
        """
        regex = re.compile(pattern)
        found: Dict[str, str] = {}
        for member in self._members:
            hit = regex.search(member)
            if hit is None:
                continue
            name = hit.group(key)
            if name in found:
                raise PeraDataError(
                    f'{self.path}: {found[name]} and {member} are the same item {name!r}'
                )
            found[name] = member
        return found

    def read(self, member: str) -> bytes:
        """The bytes of ``member``.

        Raises:
            PeraDataError: the member cannot be read (truncated or corrupt archive).
        """
        try:
            if self.path.is_dir():
                return (self.path.parent / member).read_bytes()
            return self._open().read(member)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as err:
            raise PeraDataError(f'{self.where(member)}: cannot be read ({err})') from None

    def read_image(self, member: str) -> np.ndarray:
        """Decode ``member`` as an image (TIFF, PNG, ...) into an array; RGB channel order.

        Raises:
            PeraDataError: the file is not a decodable image.
        """
        return decode_image(self.read(member), self.where(member))


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Decode image bytes with Pillow (OpenCV as a fallback), keeping the stored values.

    Args:
        data (bytes): the encoded image.
        where (str): the file named in errors.

    Returns:
        np.ndarray: ``(H, W)`` or ``(H, W, C)``; colour images in RGB order.

    Raises:
        PeraDataError: neither library can decode the bytes.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode == 'P':
                image = image.convert('RGB')
            return np.array(image)
    except Exception as pil_err:  # Pillow lacks some TIFF codecs: try OpenCV
        import cv2

        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise PeraDataError(f'{where}: not a decodable image ({pil_err})') from None
        if array.ndim == 3 and array.shape[2] in (3, 4):
            array = array[..., [2, 1, 0] + ([3] if array.shape[2] == 4 else [])]
        return array


def image_size(data: bytes, where: str):
    """``(width, height)`` from an encoded image's header, without decoding the pixels.

    Raises:
        PeraDataError: the bytes are not an image Pillow recognises.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception as err:
        raise PeraDataError(f'{where}: not a readable image ({err})') from None
