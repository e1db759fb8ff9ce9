"""The command-line help a user reads: plain text (no reST markup), the description once, and an example."""
import subprocess
import sys
from pathlib import Path

import pytest

from cspsr_arch.cli import main as basicsr
from cspsr_arch.helptext import plain, split_doc
from cspsr_arch.prep import commands

TOOLS = Path(__file__).resolve().parents[1] / 'tools'


def _help(capsys, run, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        run(argv)
    assert stop.value.code == 0
    return capsys.readouterr().out


def _tool_help(name: str) -> str:
    """``python tools/<name>.py --help`` as a user runs it."""
    out = subprocess.run([sys.executable, str(TOOLS / f'{name}.py'), '--help'], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_plain_text_from_rest():
    assert plain('See :mod:`cspsr_arch.x` and :func:`~a.b` with ``--flag``::\n\n    cmd\n') == \
        'See cspsr_arch.x and a.b with --flag:\n\n    cmd\n'
    assert split_doc('First line.\n\nRest ``x``.') == ('First line.', 'Rest x.\n')


def test_benchmark_help_is_plain_and_says_its_description_once():
    text = _tool_help('benchmark')
    assert '``' not in text and ':mod:' not in text and ':func:' not in text
    assert text.count('Benchmark CSPSR against EDSR') == 1
    assert 'python tools/benchmark.py --preset quick' in text and '--external NAME=PATH' in text


def test_prepare_data_help_gives_the_layouts_and_an_example(capsys):
    assert commands.prepare_data(['pairs', '--help']) == 0  # the tool returns its status
    text = capsys.readouterr().out
    assert '<name>_rgb.<ext> and <name>_nir.<ext>' in text
    assert 'python tools/prepare_data.py pairs --root my_pairs/train --out datasets/Custom' in text


def test_infer_help_has_examples(capsys):
    text = _help(capsys, basicsr, ['infer', '--help'])
    assert 'examples:' in text and 'basicsr infer -opt weights/CSPSR_country_camera_x4.yml' in text
    assert '--model alone' in text  # a checkpoint of another project
