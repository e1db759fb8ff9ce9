"""Inputs of ``basicsr infer``: find the VIS/NIR pairs, read and check them, write the results.

``--vis`` and ``--nir`` are two files, or two folders whose images are matched by name: ``a.png`` with
``a.png`` (or ``a.tif``), and a trailing ``_rgb``/``_vis``/``_nir`` in the name is ignored
(``a_rgb.png`` with ``a_nir.png``), so both may also be the same folder. ``--disp`` (left disparity
for ``cvm: given`` networks) is a file or folder matched the same way. VIS-only networks need no ``--nir``:
``--vis`` alone is then a file or a folder of images, where names ending with ``_nir``/``_disp`` are
skipped (so a folder of pairs serves too). Images are decoded by
:func:`cspsr_arch.image_io.decode`, as in training: 8- or 16-bit, scaled to [0, 1]; VIS with 3
channels (4: alpha dropped); NIR with 1 channel or 3 equal ones; disparity as 16-bit ``round(d * 256)``.
The NIR has the VIS size, or ``nir_scale`` times it for a network built with ``nir_scale`` (its NIR camera
has the higher resolution); the disparity has the VIS size.
"""
import os
import re
from typing import Dict, List, NamedTuple, Optional, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor

from cspsr_arch.image_io import decode
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.split import IMAGE_EXTENSIONS, PNG_PARAMS, PNG_SIGNATURE
SUFFIXES = {'vis': ('_rgb', '_vis'), 'nir': ('_nir', ), 'disp': ('_disp', )}


class Pair(NamedTuple):
    """One input pair: output key, VIS file, NIR file (None for VIS-only networks) and optional disparity file."""

    key: str
    vis: str
    nir: Optional[str]
    disp: Optional[str] = None


class LoadedPair(NamedTuple):
    """Decoded tensors of a pair (1, c, h, w), RGB VIS, and the bit depth of the VIS file (no NIR: None)."""

    vis: Tensor
    nir: Optional[Tensor]
    disp: Optional[Tensor]
    bits: int


def _key(name: str, kind: str) -> str:
    stem = os.path.splitext(name)[0]
    for suffix in SUFFIXES[kind]:
        if stem.lower().endswith(suffix):
            return stem[:-len(suffix)]
    return stem


def _listing(folder: str, kind: str, same_folder: bool, skip: Tuple[str, ...] = ()) -> Dict[str, str]:
    """key -> file for the images of ``folder``; in a shared folder only the names with ``kind``'s suffix.

    Args:
        folder (str): The folder.
        kind (str): ``vis``, ``nir`` or ``disp`` (its suffixes are dropped from the keys).
        same_folder (bool): Other streams' files are in the folder too: take only names with ``kind``'s suffix.
        skip (tuple[str, ...]): Kinds whose suffixed names are left out (a VIS-only listing of a folder of pairs).
    """
    files: Dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(IMAGE_EXTENSIONS) or not os.path.isfile(os.path.join(folder, name)):
            continue
        if any(_key(name, other) != os.path.splitext(name)[0] for other in skip):
            continue
        key = _key(name, kind)
        if same_folder and key == os.path.splitext(name)[0]:
            continue  # no suffix of this kind: the other stream's file
        if key in files:
            raise CSPSRInputError(f'{folder}: two {kind.upper()} files for the name {key!r} ({files[key]}, {name}); '
                                  'keep one.')
        files[key] = name
    return files


def _check_exists(path: str, option: str) -> None:
    if not os.path.exists(path):
        raise CSPSRInputError(f'{option} {path} does not exist: give an image file or a folder of images.')


def _vis_only(vis: str) -> List[Pair]:
    """The images of ``--vis`` alone (VIS-only networks): a file, or a folder without its NIR/disparity files."""
    if os.path.isfile(vis):
        return [Pair(_key(os.path.basename(vis), 'vis'), vis, None)]
    listing = _listing(vis, 'vis', False, skip=('nir', 'disp'))
    if not listing:
        raise CSPSRInputError(f'--vis {vis} holds no images ({", ".join(IMAGE_EXTENSIONS)}) other than NIR '
                              f'({"/".join(SUFFIXES["nir"])}) or disparity ones.')
    return [Pair(key, os.path.join(vis, name), None) for key, name in sorted(listing.items())]


def discover_pairs(vis: str, nir: Optional[str], disp: Optional[str] = None) -> List[Pair]:
    """Match ``--vis``, ``--nir`` (and ``--disp``) into pairs.

    Args:
        vis (str): VIS image file or folder.
        nir (str | None): NIR image file or folder; None: the VIS images alone (VIS-only networks).
        disp (str | None): Disparity file or folder.

    Returns:
        list[Pair]: Sorted by key.
    """
    paths = {'vis': vis, **({'nir': nir} if nir else {}), **({'disp': disp} if disp else {})}
    for kind, path in paths.items():
        _check_exists(path, f'--{kind}')
    if not nir:
        if disp:
            raise CSPSRInputError('--disp without --nir: a disparity relates the VIS image to a NIR image; pass both '
                                  '(cvm: given CSPSR models), or neither (VIS-only networks).')
        return _vis_only(vis)
    if all(os.path.isfile(p) for p in paths.values()):
        return [Pair(_key(os.path.basename(vis), 'vis'), vis, nir, disp)]
    if not all(os.path.isdir(p) for p in paths.values()):
        kinds = ', '.join(f'--{k} is a {"folder" if os.path.isdir(p) else "file"}' for k, p in paths.items())
        raise CSPSRInputError(f'{kinds}: give files for one pair, or folders for many.')
    shared = len({os.path.abspath(p) for p in paths.values()}) < len(paths)
    listings = {kind: _listing(path, kind, shared) for kind, path in paths.items()}
    for kind, listing in listings.items():
        if not listing:
            what = f' whose name ends with {"/".join(SUFFIXES[kind])}' if shared else ''
            raise CSPSRInputError(f'--{kind} {paths[kind]} holds no images ({", ".join(IMAGE_EXTENSIONS)}){what}.')
    keys = set(listings['vis'])
    for kind, listing in listings.items():
        if set(listing) != keys:
            lone_vis = sorted(keys - set(listing))
            lone = sorted(set(listing) - keys)
            parts = []
            if lone_vis:
                parts.append(f'{len(lone_vis)} VIS image(s) have no {kind.upper()} partner in {paths[kind]} '
                             f'(first: {listings["vis"][lone_vis[0]]})')
            if lone:
                parts.append(f'{len(lone)} {kind.upper()} image(s) have no VIS partner in {vis} '
                             f'(first: {listing[lone[0]]})')
            raise CSPSRInputError('; '.join(parts) + '. Pairs are matched by name (a.png with a.png, or a_rgb.png '
                                  'with a_nir.png): rename or remove the unmatched files.')
    return [Pair(k, *(os.path.join(paths[kind], listings[kind][k]) for kind in paths)) for k in sorted(keys)]


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as err:
        raise CSPSRInputError(f'{path}: cannot be read ({err.strerror}).') from None


def _read(path: str, kind: str) -> np.ndarray:
    return decode(_read_bytes(path), path, kind)


def bit_depth(buf: bytes) -> int:
    """8 or 16: the sample depth of an encoded image (PNG header, else by decoding)."""
    if buf[:8] == PNG_SIGNATURE and len(buf) > 24:
        return 16 if buf[24] == 16 else 8
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    return 16 if img is not None and img.dtype == np.uint16 else 8


def load_pair(pair: Pair, device: torch.device, nir_scale: int = 1) -> LoadedPair:
    """Read and check a pair: VIS and disparity of one size, the NIR ``nir_scale`` times it (1: the same size).

    Args:
        pair (Pair): Files.
        device (torch.device): Where the tensors go.
        nir_scale (int): The network's ``nir_scale``: the NIR is that many times the VIS size. Default: 1.

    Returns:
        LoadedPair: Tensors (1, c, h, w): VIS in RGB order, NIR (None without a NIR file), disparity in LR pixels.
    """
    vis_buf = _read_bytes(pair.vis)
    vis = decode(vis_buf, pair.vis, 'vis')
    arrays = {'nir': _read(pair.nir, 'nir')} if pair.nir else {}
    if pair.disp:
        arrays['disp'] = _read(pair.disp, 'disp')
    height, width = vis.shape[:2]
    if 'nir' in arrays and nir_scale != 1 and arrays['nir'].shape[:2] != (nir_scale * height, nir_scale * width):
        nir = arrays['nir']
        raise CSPSRInputError(f'{pair.nir} is {nir.shape[1]}x{nir.shape[0]} (WxH) but {pair.vis} is {width}x{height}: '
                              f'this network takes its NIR at nir_scale ({nir_scale}) x the VIS size, so the NIR must '
                              f'be {nir_scale * width}x{nir_scale * height}.')
    for kind, arr in arrays.items():
        if kind == 'nir' and nir_scale != 1:
            continue
        if arr.shape[:2] != vis.shape[:2]:
            raise CSPSRInputError(f'{getattr(pair, kind)} is {arr.shape[1]}x{arr.shape[0]} (WxH) but {pair.vis} is '
                                  f'{vis.shape[1]}x{vis.shape[0]}: VIS and {kind.upper()} of a pair must have the same '
                                  'size (both LR images of the same rectified stereo rig).')

    def tensor(arr: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0).float().to(device)

    rgb = vis[:, :, ::-1]
    return LoadedPair(tensor(rgb), tensor(arrays['nir']) if 'nir' in arrays else None,
                      tensor(arrays['disp']) if 'disp' in arrays else None, bit_depth(vis_buf))


def write_png(path: str, img: np.ndarray) -> None:
    """Write an 8- or 16-bit image as PNG, creating the folder; a failed write is an error naming the file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, img, PNG_PARAMS):
        raise CSPSRInputError(f'Cannot write {path}; check the --out folder and the free space.')


def output_paths(out: str, key: str, single: bool) -> Dict[str, str]:
    """Output files of one pair: ``<out>/<key>.png`` (and ``<key>_nir.png``), or ``out`` itself when it ends
    with ``.png`` and there is one pair."""
    if re.search(r'\.png$', out, re.IGNORECASE):
        if not single:
            raise CSPSRInputError(f'--out {out} is a file name, but there are several pairs; give a folder.')
        return {'sr': out, 'nir': out[:-4] + '_nir.png'}
    return {'sr': os.path.join(out, f'{key}.png'), 'nir': os.path.join(out, f'{key}_nir.png')}
