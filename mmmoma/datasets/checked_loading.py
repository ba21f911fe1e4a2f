"""Loading transforms whose failures name the file and what is wrong with it.

MMCV's ``LoadImageFromFile`` reports an image that cannot be decoded as
``AssertionError: failed to load image: PATH`` (the file, not what is wrong
with it), and MMSeg's ``LoadAnnotations`` a label map as
``AttributeError: 'NoneType' object has no attribute 'squeeze'`` (not even
the file). From a dataloader worker either ends a run in the middle of an
epoch. :class:`CheckedLoadImageFromFile` and :class:`CheckedLoadAnnotations`
load exactly as those do; when a file fails, they read it again and raise a
:class:`DataFileError` that names it and says what is wrong: empty, cut
short (no PNG ``IEND`` chunk, no JPEG end-of-image marker), a PNG chunk that
fails its CRC, not an image at all, or a label map with several channels or
another size than its image. A good file costs nothing more than the stock
transform, and a label map two comparisons of its shape.

``tools/train.py`` and ``tools/test.py`` put them in place of the stock
transforms in every dataloader pipeline (:func:`use_checked_loading`); a
config may also name them itself::

    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
"""
import zlib
from typing import List, Optional

from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS as PRETRAIN_TRANSFORMS
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
JPEG_START = b'\xff\xd8'
JPEG_END = b'\xff\xd9'
# A JPEG may carry a few bytes after its end-of-image marker; one cut short
# in its compressed data has no marker there at all.
_JPEG_TAIL = 1024
# Other formats, named in the message when a decoder refuses one.
_MAGIC = ((b'BM', 'BMP'), (b'GIF8', 'GIF'), (b'II*\x00', 'TIFF'),
          (b'MM\x00*', 'TIFF'), (b'RIFF', 'WebP'), (b'P5', 'PGM'),
          (b'P6', 'PPM'))


class DataFileError(ValueError):
    """A data file that cannot be loaded; the message names it."""


def _png_problem(data: bytes) -> str:
    """Walk the chunks of a PNG: the first one cut short or failing its
    CRC-32, or the missing ``IEND``."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], 'big')
        kind = data[pos + 4:pos + 8].decode('latin-1')
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            return (f'a PNG cut short: its {kind} chunk at byte {pos} needs '
                    f'{end} bytes and the file holds {len(data)} (an '
                    'interrupted copy or write?)')
        crc = int.from_bytes(data[end - 4:end], 'big')
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            return (f'a damaged PNG: its {kind} chunk at byte {pos} fails its '
                    'CRC-32 check')
        if kind == 'IEND':
            return (f'a PNG of {len(data)} bytes, whole and with valid '
                    'checksums, whose image data the decoder rejects')
        pos = end
    return (f'a PNG cut short: {len(data)} bytes and no IEND chunk at the '
            'end (an interrupted copy or write?)')


def describe_image_bytes(data: bytes) -> str:
    """What is wrong with an encoded image that a decoder refused.

    Args:
        data (bytes): The whole file.

    Returns:
        str: The problem, e.g. ``'the file is empty (0 bytes)'`` or ``'a
        JPEG cut short: ...'``.
    """
    if not data:
        return 'the file is empty (0 bytes)'
    if data.startswith(PNG_SIGNATURE):
        return _png_problem(data)
    if data.startswith(JPEG_START):
        if JPEG_END not in data[-_JPEG_TAIL:]:
            return (f'a JPEG cut short: {len(data)} bytes and no '
                    'end-of-image marker (FF D9) at the end (an interrupted '
                    'copy or write?)')
        return (f'a JPEG of {len(data)} bytes whose compressed data the '
                'decoder rejects: the file is damaged')
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return (f'a {name} file of {len(data)} bytes that the decoder '
                    'rejects: damaged, or a variant it cannot read')
    return f'not an image: the file starts with {data[:16]!r}'


def _failure(path: str, backend_args: Optional[dict], what: str,
             error: Exception) -> str:
    """``PATH: what is wrong`` for a file a stock transform failed on."""
    try:
        problem = describe_image_bytes(
            fileio.get(path, backend_args=backend_args))
    except Exception as err:  # noqa: BLE001 - named in the message
        problem = f'it cannot be read ({type(err).__name__}: {err})'
    return (f'{path}: {problem}; it cannot be decoded as {what} '
            f'({type(error).__name__}: {error})')


@PRETRAIN_TRANSFORMS.register_module()
@SEG_TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """MMCV's ``LoadImageFromFile``, failing with the file and what is
    wrong with it.

    The arguments are those of ``LoadImageFromFile``. With
    ``ignore_empty=True`` a file that cannot be decoded is skipped (the
    stock transform skips one that cannot be read, and fails on one that
    cannot be decoded).

    Raises:
        DataFileError: The image cannot be read or decoded.
    """

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except Exception as err:
            if self.ignore_empty:
                return None
            path = results['img_path']
            raise DataFileError(
                f'{_failure(path, self.backend_args, "an image", err)}. '
                'Allowed: files that LoadImageFromFile can read (JPEG, PNG, '
                'BMP, ...), whole; copy the file again, or remove it from '
                'the dataset.') from err


@SEG_TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """MMSeg's ``LoadAnnotations``, failing with the label map and what is
    wrong with it.

    Besides a file that cannot be read or decoded, a label map with more
    than one channel, or with another height and width than its image
    (when the image was loaded first), is refused. The arguments are those
    of ``LoadAnnotations``.

    Raises:
        DataFileError: The label map cannot be read or decoded, or does not
            fit its image.
    """

    allowed = ('Allowed: files that LoadAnnotations can read: a whole '
               'single-channel PNG of class indices, (H, W) as its image; '
               'copy it again, write the dataset again (for the Fashion-'
               'MNIST scenes: tools/dataset_converters/make_fmnist_scenes.py'
               '), or remove the sample.')

    def _load_seg_map(self, results: dict) -> None:
        path = results['seg_map_path']
        try:
            super()._load_seg_map(results)
        except Exception as err:
            raise DataFileError(
                f'{_failure(path, self.backend_args, "a label map", err)}. '
                f'{self.allowed}') from err
        shape = results['gt_seg_map'].shape
        image = results.get('ori_shape')
        if len(shape) != 2:
            problem = (f'a label map of shape {shape}: {shape[-1]} channels '
                       '(a colour rendering of the labels?), not one')
        elif image is not None and tuple(image) != shape:
            problem = (f'a label map of (H, W) = {shape}, its image '
                       f'{results.get("img_path")} is {tuple(image)}')
        else:
            return
        raise DataFileError(f'{path}: {problem}. {self.allowed}')


def _checked_type(kind: str, default: Optional[str]) -> Optional[str]:
    """The type of the checked version of the transform ``kind`` names,
    resolved as the Runner will resolve it, or None for another one."""
    from mmengine.registry import TRANSFORMS
    with TRANSFORMS.switch_scope_and_registry(default) as registry:
        try:
            found = registry.get(kind)
        except KeyError:  # an unknown scope: left to the Runner to report
            return None
    if found is LoadImageFromFile:
        checked, scopes = CheckedLoadImageFromFile, ('mmpretrain', 'mmseg')
    elif found is LoadAnnotations:
        checked, scopes = CheckedLoadAnnotations, ('mmseg', )
    else:
        return None
    name = checked.__name__
    return name if default in scopes else f'{scopes[0]}.{name}'


def use_checked_loading(cfg) -> List[str]:
    """Put the checked loading transforms in the config's pipelines.

    In the dataset pipelines of ``train_dataloader``, ``val_dataloader``
    and ``test_dataloader`` (wrapped datasets included), MMCV's
    ``LoadImageFromFile`` becomes :class:`CheckedLoadImageFromFile` and
    MMSeg's ``LoadAnnotations`` :class:`CheckedLoadAnnotations`, with the
    same arguments, however the config spells them. Other transforms
    (other codebases' ``LoadAnnotations`` too) are left alone.

    Args:
        cfg (Config | dict): The full config; edited in place.

    Returns:
        list[str]: The keys of the replaced transforms, e.g.
        ``'train_dataloader.dataset.pipeline.0'``.
    """
    from .checks import _datasets
    default = cfg.get('default_scope')
    replaced = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not isinstance(loader, dict):
            continue
        for where, dataset in _datasets(loader.get('dataset'),
                                        f'{key}.dataset'):
            for i, step in enumerate(dataset.get('pipeline') or []):
                kind = step.get('type') if isinstance(step, dict) else None
                checked = (_checked_type(kind, default)
                           if isinstance(kind, str) else None)
                if checked is not None:
                    step['type'] = checked
                    replaced.append(f'{where}.pipeline.{i}')
    return replaced
