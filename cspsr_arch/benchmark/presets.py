"""Benchmark presets: the data, the models, their sizes and the common training budget.

Every model of a preset trains on the same training split with the same iterations, batch, patch size,
optimizer, learning-rate schedule and pixel loss; CSPSR adds its own L_CSSC term and its learned
cross-view matching is pre-trained first (its own, reported budget). The networks are those of the
option files (``options/train_<model>_x<s>.yml``); a preset may shrink them (``networks``) to fit its
budget, the same way for every scale.

* ``quick``: tiny data (96- and 128-pixel images), networks of 10-60 k parameters, 1600 iterations; about
  2.5 minutes on a CPU with one thread (used by ``tests/test_benchmark/test_benchmark_pipeline.py``). Its HAT uses
  ``img_range: 255`` (as BasicSR's EDSR and RCAN do): with HAT's own 1 the tiny HAT did not get past
  bicubic interpolation within this budget. Its CSPSR keeps the paper's BatchNorm: with
  ``norm: instance`` (statistics of the 32-pixel training patches, then of whole 96-pixel test images) it
  scored 21.42 dB against bicubic's 22.05 on the synthetic test split when the real pairs are absent
  (BatchNorm: 22.41, EDSR 22.14).
* ``cpu``: the largest budget that fits about an hour on a 2-core CPU: networks of 0.1-0.25 M
  parameters, 4000 iterations of batch 8 with 96-pixel patches (sized from measured iteration rates,
  see docs/benchmark.md "Results"). CSPSR keeps the paper's BatchNorm here too: at 2000 iterations of this preset
  with the ground-truth disparity, BatchNorm scored 26.63 / 27.14 dB (synthetic / semi-synthetic) and
  ``norm: instance`` 26.61 / 27.10, and at 4000 iterations instance normalisation fell to 26.57 / 26.85
  (its statistics over 24-pixel training patches differ from those over whole test images).
* ``paper``: the option files as they are (paper-size networks, 120x120 patches, batch 32, 500k
  iterations, learned-CVM pre-training of 20k iterations), x2 and x4; meant for a GPU.
"""
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Sequence, Tuple

import yaml

from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.synthetic.scenes import EXTRA_SCENES, SCENES

SR_MODELS: Tuple[str, ...] = ('EDSR', 'RCAN', 'HAT', 'ConcatNIR', 'CSPSR')
"""Models of the main table, in the order of the tables; ``CSPSR_given`` is an optional reference row."""
PEER_MODELS: Tuple[str, ...] = ('PASSR', 'NAFSSR', 'MASASR', 'CMSR', 'CMSR_HRNIR')
"""The prior-guided networks of the CSPSR paper's Table 2 (stereo SR, reference-based SR, multi-modal SR, and
CMSR guided by the HR NIR), trained on request (``--models``) from ``options/train_<model>_x<s>.yml``."""
SINGLE_IMAGE_MODELS: Tuple[str, ...] = ('SMSR', 'NLSN', 'ENLCN', 'ENLCN_NIR')
"""The further networks of the CSPSR paper's Tables 1 and 3, trained on request (``--models``): VIS-only SMSR
(sparse masks), NLSN (non-local sparse attention) and ENLCN (efficient non-local contrastive attention), and
ENLCN with the LR NIR as a fourth input channel (``ENLCN_NIR``, sized as ``ENLCN``)."""
SIZE_SOURCE: Dict[str, str] = {'CMSR_HRNIR': 'CMSR', 'ENLCN_NIR': 'ENLCN', 'CSPSR_HRNIR_align': 'CSPSR',
                               'CSPSR_HRNIR_path': 'CSPSR'}
"""Rows whose network takes the sizes of another row of a preset's ``networks``."""
EXTRA_MODELS: Tuple[str, ...] = ('CSPSR_given', 'CSPSR_HRNIR', 'CSPSR_HRNIR_given')
"""Rows trained on request (``--models``): CSPSR warping by the ground-truth disparity (an oracle), and CSPSR
given the NIR at the HR size (``nir_scale`` = scale: rigs whose NIR camera has the output resolution; the
project's upper bound of what a NIR image can give), and the two together (the HR NIR warped by the
ground-truth disparity). They take the ``CSPSR`` network options."""
VARIANT_MODELS: Tuple[str, ...] = ('CSPSR_additive', 'CSPSR_vis_block', 'CSPSR_HRNIR_align', 'CSPSR_HRNIR_path')
"""Named CSPSR variants, trained on request (``--models``) from ``options/train_<model>_x<s>.yml`` with the sizes of
their own entry in a preset's ``networks`` (each sized to CSPSR's parameters): ``CSPSR_additive`` adds the fused
NIR features to a VIS path of its own, scaled from zero (NAFSSR's form, ``vis_path: additive``); ``CSPSR_vis_block``
is its ablation, the same VIS path with the fused features added unscaled (``vis_path: residual_block``);
``CSPSR_HRNIR_align`` and ``CSPSR_HRNIR_path`` are ``CSPSR_HRNIR`` with CMSR's learned alignment of the matched NIR
(``nir_align``) or with its guide branch to the output (``nir_path``), sized as ``CSPSR`` (:data:`SIZE_SOURCE`)."""
ROW_MODELS: Tuple[str, ...] = SR_MODELS + EXTRA_MODELS + VARIANT_MODELS + PEER_MODELS + SINGLE_IMAGE_MODELS
"""Every trained row ``--models`` takes."""


@dataclass(frozen=True)
class Preset:
    """One benchmark configuration (None: keep the option files' value).

    Attributes:
        name: Preset name.
        scales: SR scales.
        synthetic: Keyword arguments of ``cspsr_arch.prep.synthetic.build.build_dataset``.
        semisynthetic: Keyword arguments of ``cspsr_arch.prep.semisynthetic.build_dataset`` (without input) for
            the six real pairs of ``--real``.
        country: The same for the 52 registered EPFL country pairs of ``--country`` (the main real test set).
        country_registered: The same for the registered test split of the country pairs (data set
            ``country_registered``; see :data:`REGISTERED_TEST`).
        registration_limit: Misalignment (source pixels) under which a pair counts as registered, for the
            country sets' training pairs when a training policy is given (``--country-train``).
        val_scenes: Per data set, training scenes held out as the validation split (scored every ``val_every``
            iterations for the learning curves; never the test split, never used to choose anything).
        val_every: Iterations between validations (a multiple of ``print_freq``).
        camera: The ``degradation`` block of the camera protocol (see ``cspsr_arch.data.degradation``).
        iters: Training iterations of every SR model.
        batch: Batch size of every SR model.
        gt_size: HR patch size of every SR model.
        lr: Adam learning rate of every SR model.
        cosine: Cosine decay to 1e-6 over ``iters`` (False: the option files' schedule).
        pixel_loss: ``'L1Loss'`` or ``'MSELoss'`` (None: the option files' MSE).
        stereo_iters: Pre-training iterations of CSPSR's learned CVM.
        stereo_batch: Its batch size.
        stereo_gt_size: Its HR patch size.
        max_disp_hr: Disparity search range of the learned CVM in HR pixels (LR: divided by the scale,
            rounded up); None: the option files' range.
        networks: Per model, network options merged over the option file's ``network_g``.
        given_reference: Also train CSPSR with the data set's ground-truth disparity (``cvm: given``).
        num_worker: Data-loader worker processes.
        print_freq: Iterations between log lines (and progress-bar updates).
        checkpoints: Checkpoints per training run (resume points).
        profile_runs: Timed forward passes per latency figure.
        paper_cost: Also profile the paper-size networks of the option files (two timed runs each).
    """

    name: str
    scales: Tuple[int, ...]
    synthetic: Dict[str, object]
    semisynthetic: Dict[str, object]
    country: Dict[str, object] = field(default_factory=dict)
    country_registered: Dict[str, object] = field(default_factory=dict)
    registration_limit: float = 1.5
    val_scenes: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    val_every: int = 500
    camera: Dict[str, object] = field(default_factory=dict)
    iters: Optional[int] = None
    batch: Optional[int] = None
    gt_size: Optional[int] = None
    lr: Optional[float] = None
    cosine: bool = False
    pixel_loss: Optional[str] = None
    stereo_iters: Optional[int] = None
    stereo_batch: Optional[int] = None
    stereo_gt_size: Optional[int] = None
    max_disp_hr: Optional[int] = None
    networks: Dict[str, Dict[str, object]] = field(default_factory=dict)
    given_reference: bool = True
    num_worker: int = 0
    print_freq: int = 100
    checkpoints: int = 4
    profile_runs: int = 5
    paper_cost: bool = True


SYNTHETIC_TEST = ('motorcycle', 'camera', 'coins', 'chelsea', 'rocket', *EXTRA_SCENES)
"""The synthetic test scenes of ``cpu`` and ``paper``: five of the default scenes and the five test-only extras
(so the 9 training scenes are the same as before the extras were added)."""

COUNTRY_TEST = tuple(f'{k:04d}' for k in range(40, 52) if k != 49) + ('0070', )
"""The last 12 keys of ``nirscene_country`` (0049 does not exist; 0070 is the last key)."""

REGISTERED_BLOCK = tuple(f'{k:04d}' for k in range(2, 13))
"""Keys 0002-0012 of ``nirscene_country``: one group of mountain and river photographs, shot apart from the
others (the rest are vineyards, villages and gardens)."""
REGISTERED_TEST = ('0002', '0004', '0005', '0006', '0007', '0008', '0009', '0010', '0011', '0012')
"""The registered real test split: the pairs of :data:`REGISTERED_BLOCK` that the registration measure
(``cspsr_arch.prep.registration.measure_misalignment``, full-size photographs) finds within 1.5 pixels, chosen
by that measure alone (0.6-1.4 px; the block's 0003 measures 2.2 px and is left out of training too, as a view of
the same river as 0004). The photographs the 12-key split tests on (:data:`COUNTRY_TEST`) all measure 1.9-9.6
px: moving vegetation between the two shots."""

QUICK = Preset(
    name='quick', scales=(4, ),
    synthetic={'scenes': ('astronaut', 'chelsea', 'coffee', 'color', 'coins', 'motorcycle'),
               'test_scenes': ('coins', 'motorcycle'), 'max_size': 96, 'variants': 2},
    semisynthetic={'max_size': 128, 'variants': 2, 'test_scenes': ('scene_tree', )},
    country={'max_size': 128, 'variants': 1, 'test_scenes': COUNTRY_TEST[-2:], 'misaligned': 'keep'},
    country_registered={'max_size': 128, 'variants': 1, 'test_scenes': REGISTERED_TEST[:2], 'exclude': ('0003', ),
                        'misaligned': 'keep'},
    val_scenes={'synthetic': ('color', )}, val_every=400,
    iters=1600, batch=8, gt_size=32, lr=2e-3, cosine=True,
    stereo_iters=50, stereo_batch=8, stereo_gt_size=64, max_disp_hr=16,
    networks={
        'CSPSR': {'num_feat': 8, 'num_dmf': 2},
        'ConcatNIR': {'num_feat': 8, 'num_dmf': 2},
        'CSPSR_additive': {'num_feat': 6, 'num_dmf': 2},  # CSPSR's size: its VIS blocks cost parameters
        'CSPSR_vis_block': {'num_feat': 6, 'num_dmf': 2},
        'EDSR': {'num_feat': 16, 'num_block': 2},
        'RCAN': {'num_feat': 16, 'num_group': 1, 'num_block': 2, 'squeeze_factor': 4},
        'HAT': {'embed_dim': 16, 'depths': [2], 'num_heads': [2], 'window_size': 4, 'compress_ratio': 2,
                'squeeze_factor': 4, 'num_feat': 16, 'img_range': 255.},
        'PASSR': {'num_feat': 8},
        'NAFSSR': {'width': 8, 'num_blocks': 2, 'drop_path_rate': 0.0},
        'MASASR': {'num_feat': 8, 'num_blocks_enc': [1, 1, 1], 'num_blocks_lr': [1, 1, 1], 'num_blocks_x1': 1,
                   'num_blocks_up': [1, 1]},
        'CMSR': {'num_feat': 8, 'num_layers': 4},
        'SMSR': {'num_feat': 16, 'num_block': 3, 'squeeze_factor': 4, 'tau_steps': 1600},
        'NLSN': {'num_feat': 16, 'num_block': 4},
        'ENLCN': {'num_feat': 16, 'num_block': 2, 'attn_every': 1},
    },
    given_reference=False, print_freq=50, checkpoints=1, profile_runs=2, paper_cost=False)

CPU = Preset(
    name='cpu', scales=(4, ),
    synthetic={'max_size': 480, 'variants': 2, 'test_variants': 2, 'scenes': SCENES + EXTRA_SCENES,
               'test_scenes': SYNTHETIC_TEST},
    semisynthetic={'max_size': 480, 'variants': 8, 'test_scenes': ('scene_tree', )},
    country={'max_size': 480, 'variants': 2, 'test_scenes': COUNTRY_TEST, 'misaligned': 'keep'},
    country_registered={'max_size': 480, 'variants': 2, 'test_scenes': REGISTERED_TEST, 'exclude': ('0003', ),
                        'misaligned': 'keep'},
    val_scenes={'synthetic': ('coffee', ), 'country': ('0038', '0039'), 'country_registered': ('0038', '0039')},
    val_every=500,
    iters=4000, batch=8, gt_size=96, lr=1e-3, cosine=True,
    stereo_iters=1500, stereo_batch=8, stereo_gt_size=128, max_disp_hr=48,
    networks={
        'CSPSR': {'num_feat': 32, 'num_dmf': 4},
        'ConcatNIR': {'num_feat': 32, 'num_dmf': 4},
        'CSPSR_additive': {'num_feat': 28, 'num_dmf': 4},  # 0.212 M against CSPSR's 0.215 M
        'CSPSR_vis_block': {'num_feat': 28, 'num_dmf': 4},  # the additive variant less its 4 x 28 scales
        'EDSR': {'num_feat': 32, 'num_block': 8},
        'RCAN': {'num_feat': 32, 'num_group': 2, 'num_block': 4, 'squeeze_factor': 8},
        'HAT': {'embed_dim': 32, 'depths': [2, 2], 'num_heads': [4, 4], 'window_size': 8, 'compress_ratio': 4,
                'squeeze_factor': 8, 'num_feat': 32},
        'PASSR': {'num_feat': 24},  # 0.200 M
        'NAFSSR': {'width': 32, 'num_blocks': 16, 'drop_path_rate': 0.0},  # 0.216 M
        # MASA-SR and CMSR with CSPSR's learned CVM in front (the option files' cvm: learned), counted in, as in
        # CSPSR's 0.215 M: 0.215 M and 0.209 M
        'MASASR': {'num_feat': 18, 'num_blocks_enc': [2, 2, 2], 'num_blocks_lr': [1, 1, 1], 'num_blocks_x1': 4,
                   'num_blocks_up': [2, 1]},
        'CMSR': {'num_feat': 52},
        # 0.216 M; tau_steps = iters: its Gumbel temperature reaches its floor at 60 % of them, as in the option files
        'SMSR': {'num_feat': 32, 'num_block': 4, 'squeeze_factor': 8, 'tau_steps': 4000},
        'NLSN': {'num_feat': 32, 'num_block': 8},  # 0.240 M: EDSR's size and 2 attention blocks
        'ENLCN': {'num_feat': 32, 'num_block': 8, 'attn_every': 4},  # 0.238 M: EDSR's size and 3 attention blocks
    },
    given_reference=True, print_freq=50, checkpoints=8, profile_runs=5)

PAPER = Preset(
    name='paper', scales=(2, 4),
    synthetic={'max_size': 480, 'variants': 2, 'test_variants': 2, 'scenes': SCENES + EXTRA_SCENES,
               'test_scenes': SYNTHETIC_TEST},
    semisynthetic={'max_size': 640, 'variants': 8, 'test_scenes': ('scene_tree', )},
    country={'max_size': 1024, 'variants': 4, 'test_scenes': COUNTRY_TEST, 'misaligned': 'keep'},
    country_registered={'max_size': 1024, 'variants': 4, 'test_scenes': REGISTERED_TEST, 'exclude': ('0003', ),
                        'misaligned': 'keep'},
    val_scenes={'synthetic': ('coffee', ), 'country': ('0038', '0039'), 'country_registered': ('0038', '0039')},
    val_every=5000,
    given_reference=True, num_worker=4, print_freq=100, checkpoints=20, profile_runs=10)

PRESETS: Dict[str, Preset] = {p.name: p for p in (QUICK, CPU, PAPER)}


def with_networks(preset: Preset, items: Sequence[str]) -> Preset:
    """The preset with network options changed, from ``--network MODEL.KEY=VALUE`` items.

    VALUE is read as YAML (``4``, ``false``, ``instance``, ``[2, 2]``). ``CSPSR`` options apply to the
    ``CSPSR_given`` row too. The runs' options record the change, so a benchmark trained with other
    options is refused (use another ``--name``).

    Args:
        preset: The preset.
        items: ``MODEL.KEY=VALUE`` strings, e.g. ``CSPSR.norm=instance``.

    Returns:
        Preset: A copy with ``networks`` updated.
    """
    networks = {model: dict(options) for model, options in preset.networks.items()}
    for item in items:
        target, equals, value = item.partition('=')
        model, dot, key = target.partition('.')
        if not (equals and dot and model and key):
            raise CSPSRInputError(f'--network {item!r}: expected MODEL.KEY=VALUE, e.g. CSPSR.norm=instance.')
        known = tuple(m for m in ROW_MODELS if m not in EXTRA_MODELS and m not in SIZE_SOURCE)
        if model not in known:
            raise CSPSRInputError(f'--network {item!r}: unknown model {model!r}, expected one of '
                                  f'{", ".join(known)} ({" and ".join(EXTRA_MODELS)} use the CSPSR options, '
                                  f'{", ".join(f"{a} those of {b}" for a, b in SIZE_SOURCE.items())}).')
        networks.setdefault(model, {})[key] = yaml.safe_load(value)
    return replace(preset, networks=networks)
