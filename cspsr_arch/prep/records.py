"""The per-pair records that make ``tools/prepare_data.py`` resumable (:mod:`cspsr_arch.prep.prepare`).

A finished source pair leaves ``<split>/.prepare/items/<key>.json``, written after its images: the source
files' paths, sizes and modification times, and its output keys. A re-run skips a pair whose record matches
its sources and whose outputs are all there; any other pair is redone.
"""
import json
import os
from pathlib import Path
from typing import List, Optional, Sequence

from cspsr_arch.prep.sources import SourcePair
from cspsr_arch.prep.split import REQUIRED_STREAMS, image_path

SPARSE_DIR = 'DISP_SPARSE'
RECORDS = '.prepare'


def source_stat(pair: SourcePair) -> list:
    """Paths, sizes and modification times of a pair's source files (what a record remembers).

    Args:
        pair: The source pair.
    """
    paths = [p for p in (pair.vis, pair.nir, pair.keypoints) if p]
    return [[str(Path(p).resolve()), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths]


def output_files(split: Path, key: str, scales: Sequence[int], sparse: bool) -> List[Path]:
    """Every file the tool writes for one output key.

    Args:
        split: The split folder.
        key: Output key.
        scales: Scales.
        sparse: Whether a ``DISP_SPARSE`` file belongs to it.
    """
    files = [image_path(split, stream, key, s) for s in (None, *scales) for stream in REQUIRED_STREAMS]
    return files + ([split / SPARSE_DIR / f'{key}.txt'] if sparse else [])


def record_path(split: Path, key: str) -> Path:
    """Where the record of the source pair ``key`` lives.

    Args:
        split: The split folder.
        key: Key of the source pair.
    """
    return split / RECORDS / 'items' / f'{key}.json'


def load_record(split: Path, pair: SourcePair, scales: Sequence[int]) -> Optional[dict]:
    """The record of a finished pair, or None when the pair must be (re)done.

    Args:
        split: The split folder.
        pair: The source pair.
        scales: Scales.
    """
    try:
        record = json.loads(record_path(split, pair.key).read_text())
    except (OSError, ValueError):
        return None
    if record.get('source') != source_stat(pair):
        return None
    if not all(p.is_file() for key, _, _ in record['outputs']
               for p in output_files(split, key, scales, pair.keypoints is not None)):
        return None
    return record
