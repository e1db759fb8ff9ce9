"""Source layouts of the public RGB-NIR data sets, and the sparse disparity (keypoint) text format.

``tools/prepare_data.py`` (:mod:`cspsr_arch.prep.prepare`) converts these layouts to the canonical one of ``datasets/README.md``;
:func:`read_sparse_disparity` reads back the sparse ground truth it writes (``<split>/DISP_SPARSE``).

Layouts (names as on the command line):

* ``rgbnir-stereo`` (Zhi et al., CVPR 2018): ``<root>/<video>/RGBResize/<frame>_RGBResize.png``,
  ``<root>/<video>/NIRResize/<frame>_NIRResize.png``, optional ``<root>/<video>/Keypoint/<frame>_Keypoint.txt``
  and ``<root>/lists/<video>.txt`` (lines ``<video> <frame> ...``: the frames to use). The videos may
  also sit under ``<root>/data/``. VIS (RGB) is the left view, NIR the right one. Output keys are
  always ``<video>_<frame>``: frame names may repeat across videos (per-video frame numbers), and a
  key that does not depend on the other videos stays the same whichever videos are prepared. Frame
  lists (:data:`FRAME_LISTS`, see :func:`scan_rgbnir_stereo`): ``clean`` splits by video, ``paper``
  as the CSPSR authors' code does.
* ``nirscene`` (EPFL RGB-NIR scene data set): ``<root>/<category>/NNNN_rgb.tiff`` + ``NNNN_nir.tiff``.
* ``ranus``: ``<root>/RGB/<seq>/<frame>.png`` + ``<root>/NIR/<seq>/<frame>.png``.
* ``pairs``: ``<root>/<name>_rgb.<ext>`` + ``<root>/<name>_nir.<ext>`` (any image extension).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.split import check_key, images_by_stem, list_images

PathLike = Union[str, Path]

LAYOUTS = ('rgbnir-stereo', 'nirscene', 'ranus', 'pairs')
STEREO_SPLITS: Dict[str, tuple] = {
    'train': ('20170221_1357', '20170222_0715', '20170222_1207', '20170222_1638', '20170223_0920', '20170223_1217',
              '20170223_1445', '20170224_1022'),
    'test': ('20170222_0951', '20170222_1423', '20170223_1639', '20170224_0742'),
}
# Frame lists of rgbnir-stereo: 'clean' = the video lists above (no test scene is seen in training); 'paper' =
# the CSPSR authors' lists (every PAPER_TEST_EVERY-th frame of the test videos is the test set, the other frames
# of the test videos join the training set).
FRAME_LISTS = ('clean', 'paper')
PAPER_TEST_EVERY = 5
NIRSCENE_CATEGORIES = ('country', 'field', 'forest', 'indoor', 'mountain', 'oldbuilding', 'street', 'urban', 'water')
DEFAULT_SPLITS: Dict[str, tuple] = {'rgbnir-stereo': ('train', 'test'), 'nirscene': ('test', ), 'ranus': ('test', ),
                                    'pairs': ('test', )}
SPARSE_HEADER = ('# x y d c: column and row (0-based pixels of this image, left/VIS view), disparity d in pixels '
                 '(the NIR/right-view match is at column x - d), material class c')


class SourcePair(NamedTuple):
    """One VIS/NIR pair of a source data set.

    Attributes:
        key: Output key (file stem in the canonical layout).
        vis: Path of the VIS (RGB) image.
        nir: Path of the NIR image.
        keypoints: Path of the sparse disparity file (``rgbnir-stereo`` only), or None.
    """

    key: str
    vis: str
    nir: str
    keypoints: Optional[str] = None


def match_pairs(vis: Dict[str, Path], nir: Dict[str, Path], prefix: str = '') -> List[SourcePair]:
    """Pair VIS and NIR files by name; a file without its partner is an error naming it.

    Args:
        vis: Name -> VIS file.
        nir: Name -> NIR file.
        prefix: Prepended to every key (e.g. the category).
    """
    for name, path in sorted(vis.items()):
        if name not in nir:
            raise CSPSRInputError(f'missing NIR image for the VIS file {path} (no matching NIR file for {name!r}); '
                                  'add it or move the VIS file out of the source folder.')
    for name, path in sorted(nir.items()):
        if name not in vis:
            raise CSPSRInputError(f'missing VIS image for the NIR file {path} (no matching VIS file for {name!r}); '
                                  'add it or move the NIR file out of the source folder.')
    return [SourcePair(check_key(prefix + name, vis[name]), str(vis[name]), str(nir[name])) for name in sorted(vis)]


def _subfolder(root: Path, name: str, what: str) -> Path:
    """Return ``root/name``, which must be a folder.

    Args:
        root: Parent folder.
        name: Folder name.
        what: What the folder is, for the message.
    """
    folder = root / name
    if not folder.is_dir():
        raise CSPSRInputError(f'{what} folder {folder} is missing; download it, or pass --subset with the '
                              'ones you have.')
    return folder


def _choose(known: Sequence[str], subset: Optional[Sequence[str]], what: str) -> List[str]:
    """The collections to prepare: ``subset`` (checked against ``known``) or all of ``known``.

    Args:
        known: Collections of the data set.
        subset: Collections asked for, or None.
        what: Their name, for the message.
    """
    if subset is None:
        return list(known)
    unknown = [name for name in subset if name not in known]
    if unknown:
        raise CSPSRInputError(f'unknown {what} {unknown[0]!r} in --subset; choose among: {", ".join(known)}.')
    return [name for name in known if name in subset]


def _stereo_list(list_file: Path, video: str) -> List[str]:
    """Frame names of one video, in line order, from ``lists/<video>.txt`` (lines ``<video> <frame> ...``).

    Args:
        list_file: The list file.
        video: The video it describes.
    """
    keys = []
    for number, line in enumerate(list_file.read_text(encoding='utf-8').splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or fields[0] != video:
            raise CSPSRInputError(f'{list_file}, line {number}: expected "<video> <frame> ..." with video {video}, got '
                                  f'{line.strip()!r}; fix the line or remove the list file to use every frame.')
        keys.append(fields[1])
    return keys


def stereo_videos(split: str, frames: str) -> tuple:
    """Videos whose frames the rgbnir-stereo split ``split`` takes from.

    Args:
        split: ``train`` or ``test``.
        frames: One of :data:`FRAME_LISTS`; ``paper`` adds the test videos to ``train``.
    """
    if frames == 'paper' and split == 'train':
        return STEREO_SPLITS['train'] + STEREO_SPLITS['test']
    return STEREO_SPLITS[split]


def in_split(split: str, video: str, index: int, frames: str) -> bool:
    """Whether the frame at position ``index`` of ``video``'s frame list belongs to ``split``.

    Args:
        split: ``train`` or ``test``.
        video: A video of :func:`stereo_videos` for this split.
        index: Position of the frame in the video's list (see :func:`scan_rgbnir_stereo`).
        frames: One of :data:`FRAME_LISTS`.
    """
    if frames == 'clean' or video not in STEREO_SPLITS['test']:
        return True
    return (index % PAPER_TEST_EVERY == 0) == (split == 'test')


def _video_frames(root: Path, data: Path, video: str) -> List[SourcePair]:
    """The frames of one video, in list order, keyed ``<video>_<frame>``.

    Args:
        root: The data set folder (holds ``lists/``).
        data: The folder holding the videos (``root`` or ``root/data``).
        video: The video.
    """
    folder = _subfolder(data, video, 'video')
    rgb_dir = _subfolder(folder, 'RGBResize', 'RGBResize')
    nir_dir = _subfolder(folder, 'NIRResize', 'NIRResize')
    list_file = root / 'lists' / f'{video}.txt'
    if list_file.is_file():
        frames = _stereo_list(list_file, video)
    else:
        frames = [p.name[:-len('_RGBResize.png')] for p in sorted(rgb_dir.glob('*_RGBResize.png'))]
    pairs: List[SourcePair] = []
    seen = set()
    for frame in frames:
        vis, nir = rgb_dir / f'{frame}_RGBResize.png', nir_dir / f'{frame}_NIRResize.png'
        if not vis.is_file():
            raise CSPSRInputError(f'{vis} is missing ({list_file} lists {frame!r}); restore it or remove the '
                                  'line from the list.')
        if not nir.is_file():
            raise CSPSRInputError(f'missing NIR image {nir} for the VIS file {vis}; restore it or remove '
                                  'the frame (and its line in the list file).')
        if frame in seen:
            raise CSPSRInputError(f'{list_file} lists the frame {frame!r} twice; remove one of the lines.')
        seen.add(frame)
        keypoints = folder / 'Keypoint' / f'{frame}_Keypoint.txt'
        pairs.append(SourcePair(check_key(f'{video}_{frame}', vis), str(vis), str(nir),
                                str(keypoints) if keypoints.is_file() else None))
    return pairs


def scan_rgbnir_stereo(root: Path, splits: Sequence[str], subset: Optional[Sequence[str]],
                       frames: str = 'clean') -> Dict[str, List[SourcePair]]:
    """List the frames of the RGB-NIR stereo data set per split (see the module docstring).

    A frame's index is its 0-based position in its video's frame list: the order of the lines of
    ``lists/<video>.txt`` (blank lines skipped) when that file exists, else the sorted file names of
    ``RGBResize``. The frame number in the file name plays no part. This is what the CSPSR authors'
    loader (``data/datasetRGBNIR.py``) does: it enumerates the lines of each video's list file and
    tests ``i % 5``.

    Args:
        root: The data set folder.
        splits: Splits to prepare (``train``, ``test``).
        subset: Videos to prepare (default all of the splits).
        frames: ``clean``: ``train`` = every frame of the 8 training videos, ``test`` = every frame of the
            4 test videos. ``paper``: ``test`` = the frames of the test videos whose index is a multiple
            of 5; ``train`` = every frame of the training videos and the other frames of the test videos
            (test scenes are seen in training, as in the paper).
    """
    unknown = [s for s in splits if s not in STEREO_SPLITS]
    if unknown:
        raise CSPSRInputError(f'unknown split {unknown[0]!r} for rgbnir-stereo: its splits are train and test.')
    if frames not in FRAME_LISTS:
        raise CSPSRInputError(f'unknown frame lists {frames!r}; choose one of: {", ".join(FRAME_LISTS)}.')
    videos = list(dict.fromkeys(v for s in splits for v in stereo_videos(s, frames)))
    data = root / 'data' if (root / 'data').is_dir() and not any((root / v).is_dir() for v in videos) else root
    chosen = _choose(videos, subset, 'video')
    found = {video: _video_frames(root, data, video) for video in chosen}
    return {split: [pair for video in stereo_videos(split, frames) if video in found
                    for index, pair in enumerate(found[video]) if in_split(split, video, index, frames)]
            for split in splits}


def scan_layout(layout: str, root: PathLike, splits: Optional[Sequence[str]] = None,
                subset: Optional[Sequence[str]] = None, frames: str = 'clean') -> Dict[str, List[SourcePair]]:
    """List the VIS/NIR pairs of a source data set, per output split.

    Args:
        layout: One of :data:`LAYOUTS`.
        root: The downloaded data set folder.
        splits: Output splits; default :data:`DEFAULT_SPLITS`. ``rgbnir-stereo`` takes ``train`` and/or ``test``
            (its fixed video lists); the other layouts put every pair into their one split.
        subset: Videos (``rgbnir-stereo``), categories (``nirscene``) or sequences (``ranus``) to prepare;
            default all. For the first two, a missing one is an error unless ``subset`` leaves it out.
        frames: Frame lists of ``rgbnir-stereo`` (:data:`FRAME_LISTS`, see :func:`scan_rgbnir_stereo`);
            the other layouts ignore it.

    Returns:
        Split -> pairs (sorted by key within a video, category or sequence; rgbnir-stereo frames in list order).

    Raises:
        CSPSRInputError: Unknown layout, missing folder or partner file, bad key, frame listed twice.
    """
    if layout not in LAYOUTS:
        raise CSPSRInputError(f'unknown layout {layout!r}; choose one of: {", ".join(LAYOUTS)}.')
    root = Path(root)
    if not root.is_dir():
        raise CSPSRInputError(f'source folder {root} does not exist (or is not a folder); pass the downloaded data '
                              'set folder to --root.')
    splits = list(splits or DEFAULT_SPLITS[layout])
    if layout == 'rgbnir-stereo':
        return scan_rgbnir_stereo(root, splits, subset, frames)
    if len(splits) != 1:
        raise CSPSRInputError(f'layout {layout} writes one split; pass one name to --split (got {" ".join(splits)}).')
    if layout == 'pairs':
        if subset is not None:
            raise CSPSRInputError('--subset does not apply to the pairs layout; move the pairs you want into a folder.')
        files = list_images(root)
        pairs = match_pairs(images_by_stem(files, '_rgb'), images_by_stem(files, '_nir'))
        if not pairs:
            raise CSPSRInputError(f'{root} holds no <name>_rgb.<ext> / <name>_nir.<ext> image pairs.')
        return {splits[0]: pairs}
    if layout == 'nirscene':
        pairs = []
        for category in _choose(NIRSCENE_CATEGORIES, subset, 'category'):
            files = list_images(_subfolder(root, category, 'category'))
            pairs += match_pairs(images_by_stem(files, '_rgb'), images_by_stem(files, '_nir'), prefix=f'{category}_')
        return {splits[0]: pairs}
    rgb_root, nir_root = _subfolder(root, 'RGB', 'RGB'), _subfolder(root, 'NIR', 'NIR')
    sequences = sorted(p.name for p in rgb_root.iterdir() if p.is_dir())
    pairs = []
    for seq in _choose(sequences, subset, 'sequence'):
        nir_dir = nir_root / seq
        if not nir_dir.is_dir():
            raise CSPSRInputError(f'missing NIR folder {nir_dir} for the VIS sequence {rgb_root / seq}; add it or '
                                  'leave the sequence out with --subset.')
        pairs += match_pairs(images_by_stem(list_images(rgb_root / seq)), images_by_stem(list_images(nir_dir)),
                             prefix=f'{seq}_')
    orphans = sorted(p.name for p in nir_root.iterdir() if p.is_dir() and p.name not in sequences)
    if orphans:
        raise CSPSRInputError(f'NIR sequence {nir_root / orphans[0]} has no VIS folder {rgb_root / orphans[0]}; add it '
                              'or move the NIR sequence away.')
    return {splits[0]: pairs}


def parse_keypoints(path: PathLike, width: int, height: int) -> np.ndarray:
    """Read an RGB-NIR stereo ``Keypoint.txt`` file into pixel units.

    Each line is ``x y d c``: x and y normalised by the image width and height (1-based pixel positions
    divided by the size, as the data set's own loader reads them), d the disparity normalised by the width,
    c the material class.

    Args:
        path: The keypoint file.
        width: Width of the source image the file belongs to (582 in the data set).
        height: Height of the source image (429).

    Returns:
        float64 array (N, 4): column, row (0-based pixels, ``round(x * width) - 1``), disparity in pixels
        (``d * width``), class.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            x, y, d, c = (float(v) for v in fields)
        except ValueError:
            raise CSPSRInputError(f'{path}, line {number}: expected four numbers "x y d c", got {line.strip()!r}; '
                                  'fix or delete the line.') from None
        rows.append((round(x * width) - 1, round(y * height) - 1, d * width, c))
    return np.array(rows, np.float64).reshape(-1, 4)


def format_sparse_disparity(points: np.ndarray) -> str:
    """Text of a ``DISP_SPARSE/<key>.txt`` file: a header line, then ``x y d c`` per point.

    Args:
        points: (N, 4) array from :func:`parse_keypoints` (shifted to the output image).
    """
    lines = [SPARSE_HEADER] + [f'{int(x)} {int(y)} {d:.4f} {int(c)}' for x, y, d, c in points]
    return '\n'.join(lines) + '\n'


def read_sparse_disparity(path: PathLike, scale: int = 1) -> np.ndarray:
    """Read a ``DISP_SPARSE/<key>.txt`` file (HR pixels), optionally in the LR pixels of a scale.

    Args:
        path: The file.
        scale: 1 for HR pixels; s for ``LR_bicubic/X<s>``: positions become ``(p + 0.5) / s - 0.5`` (pixel
            centres) and disparities ``d / s``.

    Returns:
        float32 array (N, 4): column, row, disparity (left view; NIR match at column x - d), class.
    """
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        if not line.strip() or line.startswith('#'):
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            rows.append([])
        if len(rows[-1]) != 4:
            raise CSPSRInputError(f'{path}, line {number}: expected "x y d c", got {line.strip()!r}; prepare the '
                                  'split again with tools/prepare_data.py.')
    points = np.array(rows, np.float32).reshape(-1, 4)
    if scale != 1:
        points[:, :2] = (points[:, :2] + 0.5) / scale - 0.5
        points[:, 2] /= scale
    return points
