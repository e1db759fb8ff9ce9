"""Decoding of the cross-spectral streams with checks that name the offending file, and the disparity encoding.

One home below both the data sets (:mod:`cspsr_arch.data`) and data preparation (:mod:`cspsr_arch.prep`), which
read and write the same files.
"""
from typing import Optional

import cv2
import numpy as np

from cspsr_arch.errors import CSPSRInputError

DISPARITY_SCALE = 256.0
"""Disparity PNGs store ``round(d * 256)`` in 16 bits (see datasets/README.md)."""


def encode_disparity(disp: np.ndarray) -> np.ndarray:
    """Disparity in pixels to its 16-bit PNG encoding ``round(d * 256)``, clipped to 0..65535."""
    return np.clip(np.round(np.asarray(disp, np.float64) * DISPARITY_SCALE), 0, 65535).astype(np.uint16)


def decode_disparity(value: np.ndarray) -> np.ndarray:
    """16-bit PNG disparity values back to float32 pixels."""
    return value.astype(np.float32) / DISPARITY_SCALE


def _to_float(img: np.ndarray, path: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    raise CSPSRInputError(f'{path}: unsupported pixel type {img.dtype}; store images as 8- or 16-bit PNG.')


def decode(buf: Optional[bytes], path: str, kind: str) -> np.ndarray:
    """Decode one stream's file content into a float32 HWC array.

    Args:
        buf (bytes | None): File content (None: an LMDB key was missing).
        path (str): File path or LMDB key, used in error messages.
        kind (str): ``'vis'`` (3 channels, [0, 1], BGR), ``'nir'`` (1 channel, [0, 1]; three equal
            channels are reduced to one) or ``'disp'`` (16-bit PNG, pixels = value / 256).

    Returns:
        np.ndarray: float32 array (h, w, c).
    """
    if buf is None:
        raise CSPSRInputError(f'{path}: missing (no such file, or no such key in the LMDB). Restore the file, or '
                              'rebuild the LMDB from a complete folder with tools/create_lmdb.py.')
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CSPSRInputError(f'{path}: not a readable image (corrupt or truncated file?). Re-create or remove it.')
    if img.ndim == 2:
        img = img[:, :, None]
    channels = img.shape[2]
    if kind == 'disp':
        if img.dtype != np.uint16 or channels != 1:
            raise CSPSRInputError(f'{path}: a disparity map must be a 1-channel 16-bit PNG holding round(d * 256); '
                                  f'got {channels} channel(s) of {img.dtype}.')
        return decode_disparity(img)
    if kind == 'vis':
        if channels == 4:
            img = img[:, :, :3]
        elif channels != 3:
            swapped = (' It looks like a NIR image: check that the VIS and NIR files (--vis and --nir) are not '
                       'swapped; a grey visible image must be stored as colour (3 equal channels).' if channels == 1
                       else ' Convert it to colour (BGR/RGB) first.')
            raise CSPSRInputError(f'{path}: the VIS image must have 3 channels, got {channels}.{swapped}')
        return _to_float(img, path)
    if kind == 'nir':
        if channels == 3:
            if not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])):
                raise CSPSRInputError(f'{path}: the NIR image has 3 channels that differ, like a colour image: check '
                                      'that the VIS and NIR files (--vis and --nir) are not swapped; a NIR image must '
                                      'have one channel (or three equal ones).')
            img = img[:, :, :1]
        elif channels != 1:
            raise CSPSRInputError(f'{path}: the NIR image must have 1 channel, got {channels}.')
        return _to_float(img, path)
    raise ValueError(f'Unknown stream kind {kind!r}.')
