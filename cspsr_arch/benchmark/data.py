"""The benchmark's data sets (step 1 of :mod:`cspsr_arch.benchmark.pipeline`): generated or reused under
``<out>/<name>/data``, and the one training split (and validation split) that every model trains on.

* ``synthetic``: the embedded synthetic cross-view set (:mod:`cspsr_arch.prep.synthetic`).
* ``country``: the 52 EPFL country pairs (``--country``) as a semi-synthetic stereo set
  (:mod:`cspsr_arch.prep.semisynthetic`), tested on the 12 last keys.
* ``semisynthetic``: the six real pairs of ``--real``, the same way.
* ``country_registered``: the country pairs again, tested on the registered split of the preset
  (``cspsr_arch.benchmark.presets.REGISTERED_TEST``). With ``country`` it is a test split only and both sets'
  test photographs are kept out of training (:data:`COUNTRY_SETS`).

``--country-train`` (:data:`TRAIN_POLICIES`) chooses what happens to the country sets' misregistered training
pairs; their test photographs are always scored as they were taken.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from cspsr_arch.engine.options import plain
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.semisynthetic import build_dataset as build_semisynthetic
from cspsr_arch.prep.split import META_INFO, STREAM_NAMES, image_path, meta_keys


def _generate(folder: Path, settings: dict, make) -> dict:
    """Run ``make()`` unless ``folder`` holds a set generated with the same settings; return its record."""
    stamp = folder / 'benchmark_data.json'
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record['settings'] == settings:
            return record
    keys, infos = make()
    record = {'settings': settings, 'keys': keys, 'infos': plain(infos)}
    stamp.write_text(json.dumps(record, indent=1))
    return record


def _semisynthetic(data_root: Path, name: str, source: Path, settings: dict, scales: List[int], policy: str) -> dict:
    """A semi-synthetic set made from the real pairs of ``source`` (generated or reused)."""
    semi = dict(settings)
    policy = semi.pop('misaligned', policy)
    folder = data_root / name
    stamp = plain({'input': str(source.resolve()), 'scales': scales, 'seed': 0, 'misaligned': policy, **semi})
    print(f'[benchmark] data: semi-synthetic set from {source} in {folder}', flush=True)
    record = _generate(folder, stamp, lambda: build_semisynthetic(
        source, folder, scales, 0, misaligned=policy, overwrite=True, **semi))
    size = f"longest side {semi['max_size']} px" if semi.get('max_size') else 'full size'
    training = f"{semi.get('variants', 2)} variant(s) per training pair" if semi.get('train', True) else \
        'test split only (its training pairs are in the training split of the other country set)'
    return {'dir': folder, 'keys': record['keys'], 'settings': stamp, 'description': (
        f"the real VIS/NIR pairs of {source.name}/ with a generated disparity, the real NIR moved to the right view "
        f"(tools/make_semisynthetic_rgbnir.py, {size}, {training}, split by scene){_registration_notes(record, semi)}."),
        'registration': {i['key']: {k: i.get(k) for k in ('action', 'split', 'registration', 'after')}
                         for i in record['infos']}}


def _registration_notes(record: dict, semi: dict) -> str:
    """What the registration check did to the pairs a semi-synthetic set uses, for its description."""
    infos = record['infos']
    limit = semi.get('max_misalignment', 2.5)
    train = semi.get('train', True)
    used = [i for i in infos if i.get('split')]
    notes = []
    skipped = [f"{i['key']} ({i['registration']['misalignment']:.1f} px)" for i in infos
               if i['action'] == 'skipped' and train]
    if skipped:
        notes.append(f"left out as not registered: {', '.join(skipped)}")
    registered = [i['key'] for i in used if i['action'] == 'registered']
    if registered:
        notes.append(f'training pairs registered by the tool (NIR warped onto the VIS, cspsr_arch.prep.registration) '
                     f'where they measured more than {limit:g} px: {len(registered)} pair(s)')
    failed = [f"{i['key']} ({i['after']['misalignment']:.1f} / {i['check']['misalignment'] or 0:.1f} px after, "
              'measure / cross-check)' for i in infos if i['action'] == 'unregistrable']
    if failed:
        notes.append(f"left out as they could not be registered: {', '.join(failed)}")
    kept = [i for i in used if i['misaligned'] and i['action'] == 'kept']
    for split in ('train', 'test'):
        count = sum(i['split'] == split for i in kept)
        if count:
            why = ('test photographs as they were taken' if split == 'test' and semi.get('test_misaligned') == 'keep'
                   else 'moving content between the two shots')
            notes.append(f'{split} pairs kept although the registration check measured more than {limit:g} px '
                         f'({why}): {count}')
    return ''.join(f'; {n}' for n in notes)


DATASETS = ('synthetic', 'country', 'semisynthetic', 'country_registered')
"""The benchmark's data sets (``--datasets``; the default leaves ``country_registered`` out:
:data:`DEFAULT_DATASETS`)."""
DEFAULT_DATASETS = ('synthetic', 'country', 'semisynthetic')
COUNTRY_SETS = ('country', 'country_registered')
"""Data sets made from the country pairs. Chosen together, they share one training split: the pairs outside
both test splits (and outside either set's excluded pairs), written by the first; the second is a test split
only. So no photograph one set tests on is trained on for the other's column."""
TRAIN_POLICIES = ('keep', 'skip', 'register')
"""``--country-train``: the country sets' training pairs as they are, only the registered ones, or registered
by the tool (:mod:`cspsr_arch.prep.registration`); their test pairs stay as photographed."""


def country_settings(preset, datasets: Sequence[str], train_policy: Optional[str] = None) -> Dict[str, dict]:
    """The generator settings of the chosen country sets (see :data:`COUNTRY_SETS`).

    Args:
        preset: The preset (``country``, ``country_registered``, ``registration_limit``).
        datasets: The chosen data sets.
        train_policy: One of :data:`TRAIN_POLICIES` for the training pairs, or None (the preset's).
    """
    chosen = [name for name in COUNTRY_SETS if name in datasets and getattr(preset, name)]
    out = {}
    for index, name in enumerate(chosen):
        settings = dict(getattr(preset, name))
        others = [getattr(preset, other) for other in chosen if other != name]
        exclude = set(settings.get('exclude', ()))
        for other in others:
            exclude |= set(other.get('test_scenes', ())) | set(other.get('exclude', ()))
        exclude -= set(settings.get('test_scenes', ()))
        if exclude:
            settings['exclude'] = tuple(sorted(exclude))
        if index > 0:
            settings['train'] = False
        if train_policy is not None:
            if train_policy not in TRAIN_POLICIES:
                raise CSPSRInputError(f'--country-train must be one of {", ".join(TRAIN_POLICIES)}, got {train_policy!r}.')
            settings.update(misaligned=train_policy, test_misaligned='keep',
                            max_misalignment=preset.registration_limit)
        out[name] = settings
    return out


def prepare_data(data_root: Path, preset, real: Optional[Path], country: Optional[Path] = None,
                 datasets: Sequence[str] = DEFAULT_DATASETS, country_train: Optional[str] = None) -> Dict[str, dict]:
    """Generate (or reuse) the benchmark's data sets; return name -> ``dir``, ``keys``, ``description``.

    Args:
        data_root: Where the sets go.
        preset: Their settings.
        real: Folder of the six real pairs (semi-synthetic set ``semisynthetic``), or None.
        country: Folder of the EPFL country pairs (semi-synthetic set ``country``), or None.
        datasets: The sets to use, among :data:`DATASETS` (e.g. ``country`` alone: models trained on real NIR only).
        country_train: The country sets' training-pair policy (:data:`TRAIN_POLICIES`), or None (the preset's).
    """
    from cspsr_arch.prep.synthetic.build import build_dataset as build_synthetic
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown or not datasets:
        raise CSPSRInputError(f'data sets {unknown or "(none)"}: choose among {", ".join(DATASETS)}.')
    data_root.mkdir(parents=True, exist_ok=True)
    scales = list(preset.scales)
    syn, out = dict(preset.synthetic), {}
    if 'synthetic' in datasets:
        folder = data_root / 'synthetic'
        settings = plain({'scales': scales, 'seed': 0, **syn})
        print(f'[benchmark] data: synthetic cross-view set in {folder}', flush=True)
        record = _generate(folder, settings, lambda: build_synthetic(
            folder, scales, 0, overwrite=True, **syn))
        out['synthetic'] = {'dir': folder, 'keys': record['keys'], 'settings': settings, 'description': (
            f"the embedded synthetic cross-view set (cspsr_arch.prep.synthetic, longest side "
            f"{syn.get('max_size', 480)} px, {syn.get('variants', 2)} variant(s) per training scene, "
            f"{syn.get('test_variants', 1)} per test scene; VIS camera effects, rendered NIR, dense ground-truth "
            'disparity).')}
    countries = country_settings(preset, datasets, country_train)
    for name, source, settings, policy in (('country', country, countries.get('country'), 'keep'),
                                           ('semisynthetic', real, preset.semisynthetic, 'skip'),
                                           ('country_registered', country, countries.get('country_registered'),
                                            'keep')):
        if name not in datasets:
            continue
        if source is None or not source.is_dir():
            print(f'[benchmark] data: no real pairs at {source}: the {name} set is left out', flush=True)
        elif settings:
            out[name] = _semisynthetic(data_root, name, source, settings, scales, policy)
    return out


def _up_to_date(src: Path, dst: Path) -> bool:
    """``dst`` is a hard link or a complete copy of ``src`` made after it."""
    try:
        d = dst.stat()
    except FileNotFoundError:
        return False
    s = src.stat()
    return d.st_size == s.st_size and d.st_mtime >= s.st_mtime


def scene_of(key: str) -> str:
    """The scene of a training key (``<scene>_v<k>`` -> ``<scene>``)."""
    stem, _, variant = key.rpartition('_v')
    return stem if stem and variant.isdigit() else key


def combine_train_splits(data: Dict[str, dict], out: Path, scales: Sequence[int],
                         val_scenes: Optional[Dict[str, Sequence[str]]] = None, validation: bool = False) -> Path:
    """One split holding every data set's training images (keys ``<data set>__<key>``), hard-linked (copied
    where links are impossible); kept as it is when it already holds exactly these images (another
    benchmark process may be reading it), rebuilt otherwise.

    Args:
        data: Data set name -> record of :func:`prepare_data`.
        out: The combined split folder.
        scales: Scales whose LR folders to include.
        val_scenes: Per data set, training scenes held out for validation (all variants of each).
        validation: Build the validation split (those scenes) instead of the training split (the others).
    """
    import shutil
    held_out = {name: set(scenes) for name, scenes in (val_scenes or {}).items()}
    streams = [(stream, s) for s in (None, *scales) for stream in STREAM_NAMES]
    meta, files = [], []
    for name, record in data.items():
        split = record['dir'] / 'train'
        if 'train' not in record.get('keys', {'train': None}):  # a test split only
            continue
        for line in (split / META_INFO).read_text().splitlines():
            key = meta_keys([line])[0]
            if (scene_of(key) in held_out.get(name, ())) != validation:
                continue
            meta.append(f'{name}__{line}')
            files += [(image_path(split, stream, key, s), image_path(out, stream, f'{name}__{key}', s))
                      for stream, s in streams]
    if not meta:
        raise CSPSRInputError(f'no {"validation" if validation else "training"} images for {out}: check the preset\'s '
                              f'val_scenes {val_scenes}.')
    meta_text = '\n'.join(meta) + '\n'
    meta_file = out / META_INFO
    if meta_file.is_file() and meta_file.read_text() == meta_text and all(_up_to_date(*f) for f in files):
        return out
    if out.exists():
        shutil.rmtree(out)
    for src, dst in files:
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
    meta_file.write_text(meta_text)
    return out
