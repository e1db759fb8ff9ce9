"""``PairedCrossSpectralDataset``: LR/HR VIS (left view) + LR/HR NIR (right view) + optional disparity."""
from os import path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import FileClient, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from cspsr_arch.data.crop import aligned_random_crop
from cspsr_arch.data.degradation import CameraDegradation
from cspsr_arch.image_io import decode
from cspsr_arch.data.stereo_transforms import random_stereo_flip
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.split import (IMAGE_EXT, LMDB_EXT, META_INFO, dataset_roots, images_by_stem, list_images,
                                   read_meta_names, stream_dir)

# stream name -> (option key, decoding kind, resolution)
STREAMS = {
    'gt': ('dataroot_gt', 'vis', 'hr'),
    'lq': ('dataroot_lq', 'vis', 'lr'),
    'gt_nir': ('dataroot_gt_nir', 'nir', 'hr'),
    'lq_nir': ('dataroot_lq_nir', 'nir', 'lr'),
    'disp': ('dataroot_disp', 'disp', 'lr'),
    'disp_r': ('dataroot_disp_r', 'disp', 'lr'),
}
REQUIRED_STREAMS = ('gt', 'lq', 'lq_nir')
OPTION_KEYS = frozenset({
    'name', 'type', 'phase', 'scale', 'meta_info_file', 'io_backend', 'gt_size', 'use_hflip', 'use_vflip', 'use_rot',
    'cache_in_memory', 'degradation', 'dataroot', 'nir_scale',
    *(key for key, _, _ in STREAMS.values())
})
"""Keys this dataset reads from its options (BasicSR's data-loader keys come on top)."""


def nir_scale_of(opt: dict) -> int:
    """The ``nir_scale`` option (default 1), checked: an integer that divides ``scale``.

    Args:
        opt: Dataset options with ``scale``.
    """
    scale, value = int(opt['scale']), opt.get('nir_scale', 1)
    allowed = [f for f in range(1, scale + 1) if scale % f == 0]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise CSPSRInputError(f"Dataset {opt.get('name')}: nir_scale is {value!r}, but it must divide the scale "
                              f'({scale}): one of {allowed} (the NIR input is nir_scale x the LR size). Set nir_scale '
                              "to the network's network_g:nir_scale.")
    return value


def _list_images(folder: str) -> Dict[str, str]:
    """Key (file stem) -> file name of the images in one stream folder; two files of one key are an error.

    Args:
        folder: Stream folder.
    """
    return {stem: path.name for stem, path in images_by_stem(list_images(folder)).items()}


def split_streams(opt: dict) -> Tuple[Dict[str, str], str]:
    """The stream roots and io backend of a ``dataroot: <split folder>`` option (see the class docstring).

    The streams follow from the layout (:mod:`cspsr_arch.prep.split`) at ``scale``: ``HR/VIS``,
    ``LR_bicubic/X<s>/{VIS,NIR}`` (required), ``HR/NIR``, ``LR_bicubic/X<s>/{DISP_L,DISP_R}`` (when present).
    With ``nir_scale`` f > 1 the NIR input (``lq_nir``) is ``HR/NIR`` when f is the scale, else
    ``LR_bicubic/X<s/f>/NIR``.
    LMDB is detected from ``HR/VIS.lmdb`` (the tree ``tools/create_lmdb.py`` writes), folders from ``HR/VIS``.

    Args:
        opt: Dataset options with ``dataroot`` and ``scale``, without per-stream ``dataroot_*`` keys.

    Returns:
        (stream -> root, ``'lmdb'`` or ``'disk'``).
    """
    name, root, scale = opt.get('name'), str(opt['dataroot']), int(opt['scale'])
    given = sorted(key for key, _, _ in STREAMS.values() if opt.get(key))
    if given:
        raise CSPSRInputError(f'Dataset {name}: give either dataroot (one split folder) or the per-stream keys '
                              f'({", ".join(given)}), not both; remove one of them.')
    if not osp.isdir(root):
        lmdb_hint = f' ({root}_lmdb exists: point dataroot at it)' if osp.isdir(f'{root}_lmdb') else ''
        raise CSPSRInputError(f'Dataset {name}: dataroot {root} is not a folder{lmdb_hint}. Point it at a prepared '
                              'split (datasets/README.md; tools/prepare_data.py pairs --root <your pairs> --out '
                              '<folder> writes one, see docs/custom_data.md).')
    lmdb = osp.isdir(stream_dir(root, 'VIS', lmdb=True))
    backend = 'lmdb' if lmdb else 'disk'
    wanted = (opt.get('io_backend') or {}).get('type', backend)
    if wanted != backend:
        raise CSPSRInputError(f"Dataset {name}: io_backend type is {wanted!r} but dataroot {root} holds "
                              f"{'LMDBs' if lmdb else 'image folders'}; remove io_backend (it is detected) or fix it.")
    paths = dict(dataset_roots(root, scale, lmdb))
    nir_scale = nir_scale_of(opt)
    if nir_scale != 1:  # the NIR input at nir_scale x LR: HR/NIR, or the LR level of scale / nir_scale
        paths['lq_nir'] = stream_dir(root, 'NIR', scale // nir_scale, lmdb)
    roots = {}
    for stream, path in paths.items():
        if osp.isdir(path):
            roots[stream] = str(path)
        elif stream == 'lq_nir' and nir_scale != 1:
            if nir_scale == scale:
                fix = 'a split with HR/NIR (tools/prepare_data.py writes it)'
            else:
                fix = (f'prepare the split with --scales {scale} {scale // nir_scale} (tools/prepare_data.py'
                       + (', then tools/create_lmdb.py)' if lmdb else ')'))
            raise CSPSRInputError(f'Dataset {name}: {path} is missing: with nir_scale {nir_scale} at scale {scale} '
                                  f'the NIR input ({nir_scale} x the LR size) is read from it. Use {fix}, or set '
                                  'nir_scale: 1.')
        elif stream in REQUIRED_STREAMS:
            raise CSPSRInputError(f'Dataset {name}: {path} is missing, so dataroot {root} is not a split at scale '
                                  f'{scale} ({"tools/create_lmdb.py output" if lmdb else "datasets/README.md"}). '
                                  f'Prepare it with --scales {scale} (tools/prepare_data.py), or set the scale it has.')
    return roots, backend


@DATASET_REGISTRY.register()
class PairedCrossSpectralDataset(data.Dataset):
    """Cross-spectral stereo SR pairs: LR/HR VIS of the left view, LR/HR NIR of the right view.

    Like BasicSR's ``PairedImageDataset`` it has three modes: **lmdb** (``io_backend.type == 'lmdb'``, every
    dataroot an ``.lmdb``, keys from the GT LMDB's meta_info.txt), **meta_info_file** (names listed in a file)
    and **folder** (scan ``dataroot_gt``). Files of all streams are matched by name (key = file stem); a
    missing stream file, a VIS/NIR size mismatch or a size not divisible by the scale is an error naming
    the file.

    Each sample has ``lq`` (3, h, w), ``lq_nir`` (1, f*h, f*w) with ``f = nir_scale`` (1: the LR size),
    ``gt`` (3, s*h, s*w), optionally ``gt_nir`` (1, s*h, s*w), ``disp`` and ``disp_r`` (1, h, w; left/right
    disparity in LR pixels), and ``<stream>_path`` for each. Training crops all streams at the same place,
    each at its own resolution; flips keep the stereo geometry (see
    :func:`cspsr_arch.data.stereo_transforms.stereo_flip`); 90-degree rotation is refused.

    The data come either from ``dataroot: <split folder>`` (one option: with ``scale`` the streams follow from
    the canonical layout of :mod:`cspsr_arch.prep.split`, the optional ones when present, and the io backend
    is detected: ``HR/VIS.lmdb`` as ``tools/create_lmdb.py`` writes it means LMDB), or from one
    ``dataroot_<stream>`` key per stream with ``io_backend``; giving both is an error.

    Args:
        opt (dict): ``dataroot`` (a split folder), or ``dataroot_gt``, ``dataroot_lq``, ``dataroot_lq_nir``
            (required), ``dataroot_gt_nir``, ``dataroot_disp``, ``dataroot_disp_r`` (optional) and ``io_backend``;
            ``meta_info_file``,
            ``gt_size``, ``use_hflip``, ``use_vflip``, ``scale`` and ``phase`` (added by BasicSR), and
            ``cache_in_memory`` (keep decoded images, for small data sets: each training step then
            crops from memory instead of decoding six full images per sample; per data-loader process),
            ``degradation`` (optional camera-degradation protocol of the LR VIS and NIR, see
            :mod:`cspsr_arch.data.degradation`: random per sample in training, fixed per key otherwise;
            the HR streams stay clean), ``nir_scale`` (the NIR input at ``nir_scale`` x the LR size, for
            ``CSPSR(nir_scale=...)``; it must divide ``scale``; default 1). With ``dataroot`` the NIR input
            is then read from ``HR/NIR`` (nir_scale = scale) or ``LR_bicubic/X<scale / nir_scale>/NIR``;
            with ``dataroot_lq_nir`` point it at such a folder: ``nir_scale`` says what size to expect.
    """

    def __init__(self, opt: dict) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.nir_scale = nir_scale_of(opt)
        if opt.get('use_rot'):
            raise CSPSRInputError(f"Dataset {opt.get('name')}: use_rot is not allowed for stereo pairs (a 90-degree "
                                  'rotation breaks the horizontal epipolar geometry); set use_rot: false.')
        if opt.get('dataroot'):
            self.roots, backend = split_streams(opt)
            self.io_backend_opt = {'type': backend}
        else:
            for name in REQUIRED_STREAMS:
                if not opt.get(STREAMS[name][0]):
                    raise CSPSRInputError(f"Dataset {opt.get('name')}: option {STREAMS[name][0]} (or dataroot, "
                                          'the split folder) is required.')
            self.roots = {name: opt[key] for name, (key, _, _) in STREAMS.items() if opt.get(key)}
            if 'io_backend' not in opt:
                raise CSPSRInputError(f"Dataset {opt.get('name')}: io_backend (type: disk or lmdb) is required with "
                                      'the per-stream dataroot_* keys.')
            self.io_backend_opt = dict(opt['io_backend'])
        self.file_client: Optional[FileClient] = None
        self.cache: Optional[Dict[int, Dict[str, np.ndarray]]] = {} if opt.get('cache_in_memory') else None
        self.degradation = (CameraDegradation(opt['degradation'], opt.get('name', ''))
                            if opt.get('degradation') is not None else None)
        backend = self.io_backend_opt.get('type')
        first_of_root = {}
        self.client_key = {name: first_of_root.setdefault(root, name) for name, root in self.roots.items()}
        if backend == 'lmdb':
            self.paths = self._paths_from_lmdb()
            # one LMDB environment per folder: with nir_scale = scale, lq_nir and gt_nir are the same HR/NIR.lmdb,
            # which LMDB cannot open twice in one process
            self.io_backend_opt['db_paths'] = list(dict.fromkeys(self.roots.values()))
            self.io_backend_opt['client_keys'] = [self.client_key[name] for name in self.roots
                                                  if self.client_key[name] == name]
        elif backend == 'disk':
            if opt.get('meta_info_file'):
                keys = [osp.splitext(n)[0] for n in read_meta_names(opt['meta_info_file'])]
                self.paths = self._paths_from_names(keys, source=opt['meta_info_file'])
            else:
                self.paths = self._paths_from_folder()
        else:
            raise CSPSRInputError(f"Dataset {opt.get('name')}: io_backend type must be 'disk' or 'lmdb', got {backend!r}.")
        if not self.paths:
            raise CSPSRInputError(f"Dataset {opt.get('name')}: no image pairs found in {self.roots['gt']}.")

    def _check_root(self, name: str) -> None:
        root = self.roots[name]
        if not osp.exists(root):
            raise CSPSRInputError(f"{STREAMS[name][0]} {root} does not exist. Prepare the data first (see "
                                  'datasets/README.md: tools/make_synthetic_rgbnir.py or tools/prepare_data.py).')

    def _paths_from_folder(self) -> List[Dict[str, str]]:
        listings = {}
        for name in self.roots:
            self._check_root(name)
            listings[name] = _list_images(self.roots[name])
        keys = sorted(listings['gt'])
        for name, listing in listings.items():
            extra = sorted(set(listing) - set(keys))
            if extra:
                raise CSPSRInputError(f'{osp.join(self.roots[name], listing[extra[0]])} has no ground-truth VIS image '
                                      f"{osp.join(self.roots['gt'], extra[0])}.* ({len(extra)} unmatched file(s) in "
                                      f'{self.roots[name]}); add the missing files or remove the extra ones.')
        paths = []
        for key in keys:
            entry = {}
            for name, listing in listings.items():
                if key not in listing:
                    raise CSPSRInputError(f"{osp.join(self.roots['gt'], listings['gt'][key])} has no {name} file "
                                          f'{osp.join(self.roots[name], key)}.* : add it or remove the key.')
                entry[f'{name}_path'] = osp.join(self.roots[name], listing[key])
            paths.append(entry)
        return paths

    def _paths_from_names(self, keys: List[str], source: str) -> List[Dict[str, str]]:
        for name in self.roots:
            self._check_root(name)
        paths = []
        for key in keys:
            entry = {f'{name}_path': osp.join(root, f'{key}{IMAGE_EXT}') for name, root in self.roots.items()}
            for path in entry.values():
                if not osp.isfile(path):
                    raise CSPSRInputError(f'{path} (listed in {source}) does not exist; add it or remove the line.')
            paths.append(entry)
        return paths

    def _paths_from_lmdb(self) -> List[Dict[str, str]]:
        key_sets = {}
        for name, root in self.roots.items():
            self._check_root(name)
            if not root.endswith(LMDB_EXT):
                raise CSPSRInputError(f'{STREAMS[name][0]} {root} must be an .lmdb folder with io_backend lmdb.')
            key_sets[name] = [osp.splitext(n)[0] for n in read_meta_names(osp.join(root, META_INFO))]
        keys = sorted(key_sets['gt'])
        for name, names in key_sets.items():
            missing = sorted(set(keys) - set(names))
            if missing:
                raise CSPSRInputError(f'LMDB {self.roots[name]} lacks the key {missing[0]!r} ({len(missing)} missing) '
                                      f"that {self.roots['gt']} has; rebuild it with tools/create_lmdb.py.")
        return [{f'{name}_path': key for name in self.roots} for key in keys]

    def _load(self, index: int) -> Dict[str, np.ndarray]:
        if self.file_client is None:
            backend_opt = dict(self.io_backend_opt)
            self.file_client = FileClient(backend_opt.pop('type'), **backend_opt)
        entry, sample = self.paths[index], {}
        for name in self.roots:
            path = entry[f'{name}_path']
            label = path if self.io_backend_opt['type'] == 'disk' else f'{self.roots[name]}[{path}]'
            try:
                buf = self.file_client.get(path, self.client_key[name])
            except FileNotFoundError:
                buf = None
            sample[name] = decode(buf, label, STREAMS[name][1])
        return sample

    def _check_sizes(self, sample: Dict[str, np.ndarray], index: int) -> None:
        entry = self.paths[index]
        lr_h, lr_w = sample['lq'].shape[:2]
        for name, img in sample.items():
            factor = self._factor(name)
            expected = (lr_h * factor, lr_w * factor)
            if img.shape[:2] != expected and name == 'lq_nir' and factor != 1:
                raise CSPSRInputError(
                    f"{entry[f'{name}_path']}: size {img.shape[1]}x{img.shape[0]} (WxH), but with nir_scale {factor} "
                    f"the NIR input must be {factor} x the size of {entry['lq_path']} ({lr_w}x{lr_h}): expected "
                    f'{expected[1]}x{expected[0]}. Point dataroot_lq_nir at the NIR of that size (HR/NIR when '
                    f'nir_scale is the scale, else LR_bicubic/X<scale / nir_scale>/NIR of the split), or set nir_scale '
                    'to the factor of these images.')
            if img.shape[:2] != expected:
                raise CSPSRInputError(
                    f"{entry[f'{name}_path']}: size {img.shape[1]}x{img.shape[0]} (WxH) does not match "
                    f"{entry['lq_path']} ({lr_w}x{lr_h}) at scale {self.scale}: expected {expected[1]}x{expected[0]}. "
                    'VIS and NIR must have the same size and HR = scale x LR; crop HR to a multiple of the scale '
                    'and regenerate LR (tools/prepare_data.py does both).')

    def __getitem__(self, index: int) -> dict:
        if self.cache is not None and index in self.cache:
            sample = self.cache[index]
        else:
            sample = self._load(index)
            self._check_sizes(sample, index)
            if self.cache is not None:
                self.cache[index] = sample
        if self.opt['phase'] == 'train' and self.nir_scale != 1:
            factors = {name: self._factor(name) for name in sample}
            sample = aligned_random_crop(sample, factors, self.opt['gt_size'] // self.scale,
                                         self.paths[index]['gt_path'])
            sample = random_stereo_flip(sample, self.opt.get('use_hflip', False), self.opt.get('use_vflip', False))
        elif self.opt['phase'] == 'train':
            hr_names = [n for n in sample if STREAMS[n][2] == 'hr']
            lr_names = [n for n in sample if STREAMS[n][2] == 'lr']
            hrs, lrs = paired_random_crop([sample[n] for n in hr_names], [sample[n] for n in lr_names],
                                          self.opt['gt_size'], self.scale, self.paths[index]['gt_path'])
            hrs, lrs = (hrs if isinstance(hrs, list) else [hrs]), (lrs if isinstance(lrs, list) else [lrs])
            sample = dict(zip(hr_names + lr_names, hrs + lrs))
            sample = random_stereo_flip(sample, self.opt.get('use_hflip', False), self.opt.get('use_vflip', False))
        if self.degradation is not None:
            key = None if self.opt['phase'] == 'train' else osp.splitext(osp.basename(self.paths[index]['gt_path']))[0]
            sample = dict(sample)  # the cache keeps the clean images
            sample['lq'], sample['lq_nir'] = self.degradation(sample['lq'], sample['lq_nir'], key)
        out = {}
        for name, img in sample.items():
            out[name] = img2tensor(img, bgr2rgb=STREAMS[name][1] == 'vis', float32=True)
            out[f'{name}_path'] = self.paths[index][f'{name}_path']
        return out

    def _factor(self, name: str) -> int:
        """Size of stream ``name`` relative to the LR size: 1, ``nir_scale`` (``lq_nir``) or ``scale``."""
        if name == 'lq_nir':
            return self.nir_scale
        return 1 if STREAMS[name][2] == 'lr' else self.scale

    def __len__(self) -> int:
        return len(self.paths)

