"""``basicsr infer`` when a pass does not fit in memory: it falls back to tiles, and says so; when nothing fits, a
one-line error names ``--tile``."""
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from cspsr_arch.archs.cspsr_arch import CSPSR
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.infer.command import AUTO_TILES, is_out_of_memory, super_resolve_fitting

CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
           'allocate 838860800 bytes. Error code 12 (Cannot allocate memory)')


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(RuntimeError(CPU_OOM))
    assert is_out_of_memory(RuntimeError('could not create a primitive'))  # oneDNN's failed workspace allocation
    assert is_out_of_memory(torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB'))
    assert not is_out_of_memory(RuntimeError('Given groups=1, weight of size [8, 3, 3, 3], expected input ...'))
    assert not is_out_of_memory(ValueError("can't allocate memory"))


def test_the_fallback_takes_smaller_tiles_in_turn():
    tried, lines = [], []

    def run(tile: int) -> str:
        tried.append(tile)
        if tile in (0, 256):
            raise RuntimeError(CPU_OOM)
        return f'result at {tile}'

    assert super_resolve_fitting(run, 0, 'a.png', '900x600', log=lines.append) == ('result at 128', 128)
    assert tried == [0, 256, 128]
    assert lines == ['basicsr infer: a.png (900x600) does not fit in memory at once; super-resolving it in tiles of 256 '
                     'LR pixels (--tile 256).',
                     'basicsr infer: a.png (900x600) does not fit in memory in tiles of 256; super-resolving it in tiles '
                     'of 128 LR pixels (--tile 128).']
    assert super_resolve_fitting(lambda tile: tile, 0, 'a.png', '1x1', log=lines.append) == (0, 0)  # fits: untiled

    tried.clear()
    with pytest.raises(CSPSRInputError, match=r'a\.png \(900x600\) does not fit in memory even in tiles of 64 LR pixels '
                                              r"\(.*can't allocate memory.*\); free memory, or pass a smaller --tile"):
        super_resolve_fitting(lambda tile: run(0), 200, 'a.png', '900x600', log=lines.append)

    def broken(tile: int):
        raise RuntimeError('Given groups=1, weight of size [8, 3, 3, 3]')
    with pytest.raises(RuntimeError, match='Given groups'):  # not a memory problem: not hidden by a retry
        super_resolve_fitting(broken, 0, 'a.png', '1x1', log=lines.append)
    assert AUTO_TILES == tuple(sorted(AUTO_TILES, reverse=True))


LIMITED = r'''
import resource, sys
import torch, cspsr_arch
from cspsr_arch.cli import main
vm = int([line for line in open('/proc/self/status') if line.startswith('VmSize')][0].split()[1]) * 1024
limit = vm + int(sys.argv[1]) * 2 ** 20  # address space beyond what the libraries already mapped
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(main(['infer'] + sys.argv[2:]))
'''


@pytest.fixture(scope='module')
def big_pair(tmp_path_factory):
    """A tiny CSPSR and a 1000x750 LR pair: its untiled x4 pass needs more than a few hundred MB."""
    root = tmp_path_factory.mktemp('oom')
    torch.manual_seed(0)
    net = CSPSR(num_feat=8, num_dmf=1, cvm='none')
    torch.save({'params': net.state_dict()}, root / 'net.pth')
    (root / 'opt.yml').write_text(yaml.safe_dump({'scale': 4, 'network_g': {'type': 'CSPSR', 'num_feat': 8, 'num_dmf': 1,
                                                                           'cvm': 'none', 'upscale': 4}}))
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / 'a_rgb.png'), (rng.random((750, 1000, 3)) * 255).astype(np.uint8))
    cv2.imwrite(str(root / 'a_nir.png'), (rng.random((750, 1000)) * 255).astype(np.uint8))
    return root


def _infer(root: Path, headroom_mb: int, out: str, *extra: str) -> subprocess.CompletedProcess:
    args = ['-opt', str(root / 'opt.yml'), '--model', str(root / 'net.pth'), '--vis', str(root / 'a_rgb.png'),
            '--nir', str(root / 'a_nir.png'), '--out', str(root / out), '--quiet', *extra]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-c', LIMITED, str(headroom_mb), *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='limits the address space through /proc and rlimit')
def test_a_pass_that_does_not_fit_is_tiled_under_a_real_memory_limit(big_pair):
    short = _infer(big_pair, 400, 'short.png')
    assert short.returncode == 0, short.stderr
    assert 'does not fit in memory at once; super-resolving it in tiles of' in short.stdout
    used = re.search(r'tiles of (\d+) where memory was short', short.stdout)
    assert used, short.stdout
    plain = _infer(big_pair, 100000, 'plain.png', '--tile', used.group(1))  # the same tiles, no memory limit
    assert plain.returncode == 0, plain.stderr
    assert np.array_equal(cv2.imread(str(big_pair / 'short.png')), cv2.imread(str(big_pair / 'plain.png')))
    none = _infer(big_pair, 60, 'none.png')
    assert none.returncode == 2 and not (big_pair / 'none.png').exists()
    last = none.stderr.strip().splitlines()[-1]
    assert 'does not fit in memory even in tiles of 64 LR pixels' in last and '--tile' in last
    assert 'Traceback' not in none.stderr
