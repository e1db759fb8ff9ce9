"""tools/benchmark.py --preset quick end to end: report structure, finite figures, bicubic below every trained
model, one protocol for every model, and a second run that trains nothing."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml
from conftest import SHARED_COUNTRY, SHARED_REAL

from cspsr_arch.benchmark.runs import Run
from cspsr_arch.benchmark.training import done_record
from cspsr_arch.errors import CSPSRInputError

ROOT = Path(__file__).resolve().parents[2]
MODELS = ['EDSR', 'ConcatNIR', 'CSPSR']  # a VIS-only, the concatenation and CSPSR: the rows the tables compare
ITERS = 800
METRICS = ('psnr', 'ssim', 'psnr_y', 'ssim_y')
PROTOCOL = ('total_iter', 'optim_g', 'scheduler', 'pixel_opt', 'warmup_iter')


def _benchmark(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / 'tools' / 'benchmark.py'), '--preset', 'quick', '--out', str(out), '--threads', '1',
           '--protocol', 'both', '--models', *MODELS, '--iters', str(ITERS)]
    return subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope='module')
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench')
    proc = _benchmark(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return out, proc


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_quick_report_has_every_table_with_finite_figures(quick):
    out, proc = quick
    root = out / 'quick'
    report = json.loads((root / 'report.json').read_text())
    datasets = ['synthetic'] + (['country'] if SHARED_COUNTRY.is_dir() else []) + (
        ['semisynthetic'] if SHARED_REAL.is_dir() else [])
    assert list(report['results']) == ['bicubic', 'camera'] and list(report['datasets']) == datasets
    numbers = list(_numbers(report))
    assert len(numbers) > 100 and all(math.isfinite(v) for v in numbers)
    for protocol in ('bicubic', 'camera'):
        for dataset in datasets:
            rows = report['results'][protocol][dataset]['x4']
            assert list(rows) == ['bicubic', *MODELS]
            for row, scores in rows.items():
                assert 10 < scores['psnr'] < 50 and 0 < scores['ssim'] < 1 and 0 < scores['ssim_y'] < 1, (dataset, row)
            for model in MODELS:
                assert rows[model]['iters'] == ITERS and rows[model]['train_s'] > 0 and rows[model]['seeds'] == 1
                if protocol == 'bicubic':  # every trained model beats bicubic interpolation
                    assert rows[model]['psnr'] > rows['bicubic']['psnr'], (dataset, model, rows)
                pair = rows[model].get('vs_EDSR')
                assert (pair is None) == (model == 'EDSR')
                if pair:  # the paired differences are those of the per-image scores
                    diffs = [rows[model]['images'][k]['psnr'] - rows['EDSR']['images'][k]['psnr'] for k in rows['EDSR']['images']]
                    assert pair['mean_db'] == pytest.approx(sum(diffs) / len(diffs))
                    assert pair['wins'] == sum(d > 0 for d in diffs) and pair['images'] == len(diffs)
                nir_model = model in ('ConcatNIR', 'CSPSR')
                assert ('nir_zero' in rows[model]) == nir_model
                if nir_model:
                    assert rows[model]['nir_zero']['loss_db'] == pytest.approx(
                        rows[model]['psnr'] - rows[model]['nir_zero']['psnr'])
                    assert ('nir_swap' in rows[model]) == (report['datasets'][dataset]['test_images'] > 1)
        # the camera protocol degrades the inputs: bicubic interpolation of them scores lower
        assert report['results']['camera'][dataset]['x4']['bicubic']['psnr'] < \
            report['results']['bicubic'][dataset]['x4']['bicubic']['psnr']
        for protocol in ('bicubic', 'camera'):
            figure = report['figures'][f'{protocol}_{dataset}']
            assert list(figure['psnr']) == ['bicubic', 'EDSR', 'CSPSR']
            picture = cv2.imread(str(root / figure['path']))
            size = figure['box'][2] * max(1, 192 // figure['box'][2])
            assert picture.shape[1] == 4 * (size + 4) and picture.shape[0] == size + 44 + 4  # 4 panels + labels
    curves = report['validation']['curves']
    assert list(curves) == ['bicubic', 'camera'] and report['validation']['images'] > 0
    for by_row in curves.values():
        assert list(by_row) == MODELS
        for curve in by_row.values():  # validation every 400 iterations
            assert [it for it, _ in curve] == [400, 800] and all(10 < v < 50 for _, v in curve)
    assert cv2.imread(str(root / 'figures' / 'learning_curves.png')).shape[1] == 2 * 560
    assert report['stereo']['bicubic_x4']['iters'] == 50 and report['stereo']['camera_x4']['iters'] == 50
    cost = report['profile']['scales']['x4']
    assert list(cost) == MODELS
    for figures in cost.values():
        assert figures['params_M'] > 0 and figures['gflops'] > 0 and figures['latency_cpu_s'] > 0
        assert figures['peak_mem_MB'] >= 0
    assert cost['EDSR']['params_M'] == pytest.approx(0.031, abs=0.002)  # 16 features, 2 blocks
    through = report['throughput']['rows']
    assert set(through) == {'CSPSR', 'EDSR'} and all(set(m) == {'eager'} for m in through.values())  # no --compile
    assert all(m['eager']['it_s'] > 0 for m in through.values())
    assert any(t['what'].startswith('CSPSR - best VIS-only') for t in report['targets'])
    assert all(isinstance(t['met'], bool) for t in report['targets'])
    md = (root / 'report.md').read_text()
    for text in ('## Table 1 analog: PSNR / SSIM', '### camera protocol, synthetic, x4', '| Bicubic |', '| CSPSR |',
                 'NIR zeroed', '## Learning curves', '](figures/learning_curves.png)', '## Cost', '## Targets',
                 '**Training throughput**', '![camera_synthetic](figures/camera_synthetic_x4.png)',
                 'python tools/benchmark.py --preset quick'):
        assert text in md, text
    assert 'report.md' in proc.stdout


def test_every_model_has_the_same_data_and_budget(quick):
    out, _ = quick
    options = {p.stem: yaml.safe_load(p.read_text()) for p in (out / 'quick' / 'options').glob('*.yml')}
    names = {f'{m}_x4' for m in MODELS} | {'stereo_x4'}
    assert set(options) == names | {f'{n}_camera' for n in names}
    sr = [options[f'{m}_x4{p}'] for m in MODELS for p in ('', '_camera')]
    for opt in sr:
        assert {k: opt['train'][k] for k in PROTOCOL} == {k: sr[0]['train'][k] for k in PROTOCOL}
        data = opt['datasets']['train']
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file', 'gt_size', 'batch_size_per_gpu'):
            assert data[key] == sr[0]['datasets']['train'][key], key
        assert data['use_hflip'] is False and opt['val']['val_freq'] == 400
        camera = opt['name'].endswith('_camera')
        assert ('degradation' in data) == camera and ('degradation' in opt['datasets']['val']) == camera
        assert opt['datasets']['val']['dataroot_gt'] != data['dataroot_gt']  # a split of its own
    val_keys = (out / 'quick' / 'data' / 'val' / 'meta_info.txt').read_text()
    train_keys = (out / 'quick' / 'data' / 'train' / 'meta_info.txt').read_text()
    assert 'synthetic__color_v0' in val_keys and 'color' not in train_keys  # validation scenes are held out
    cspsr = options['CSPSR_x4']
    assert cspsr['network_g']['cvm'] == 'learned' and cspsr['train']['cssc_opt']['loss_weight'] == 0.1
    assert cspsr['path']['pretrain_network_disp'].endswith('experiments/stereo_x4/models/net_g_latest.pth')
    assert options['CSPSR_x4_camera']['path']['pretrain_network_disp'].endswith(
        'experiments/stereo_x4_camera/models/net_g_latest.pth')
    assert options['stereo_x4']['network_g']['max_disp'] == cspsr['network_g']['max_disp'] == 4
    assert options['ConcatNIR_x4']['network_g']['branches'] == 'concat'


def test_a_second_run_retrains_nothing_and_reports_the_same(quick):
    out, _ = quick
    root = out / 'quick'
    checkpoints = {p: p.stat().st_mtime_ns for p in root.glob('experiments/*/models/net_g_latest.pth')}
    assert len(checkpoints) == 2 * (len(MODELS) + 1)
    before = json.loads((root / 'report.json').read_text())
    proc = _benchmark(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints
    after = json.loads((root / 'report.json').read_text())
    assert after['results'] == before['results'] and after['profile'] == before['profile']


def test_a_run_trained_with_other_options_is_refused(tmp_path):
    run = Run('EDSR_x4', 'EDSR', 4, {'train': {'total_iter': 10}})
    (tmp_path / 'experiments' / 'EDSR_x4').mkdir(parents=True)
    record = tmp_path / 'experiments' / 'EDSR_x4' / 'benchmark.json'
    record.write_text(json.dumps({'options': {'train': {'total_iter': 10}}, 'wall_s': 1.0, 'iters': 10}))
    assert done_record(run, tmp_path)['wall_s'] == 1.0
    with pytest.raises(CSPSRInputError, match='delete that folder'):
        done_record(run, tmp_path, data='{"synthetic": {"max_size": 480}}')  # same options, other data
    record.write_text(json.dumps({'options': {'train': {'total_iter': 20}}, 'wall_s': 1.0, 'iters': 20}))
    with pytest.raises(CSPSRInputError, match='delete that folder'):
        done_record(run, tmp_path)


@pytest.mark.parametrize('preset_name', ['quick', 'cpu', 'paper'])
def test_every_preset_plans_runs_the_strict_option_checker_accepts(preset_name, tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.presets import PRESETS, SR_MODELS
    from cspsr_arch.benchmark.runs import plan
    from cspsr_arch.engine.options import check_options, load_options
    make_toy_split(tmp_path / 'train', scales=(2, 4))
    preset = PRESETS[preset_name]
    make_toy_split(tmp_path / 'val', scales=(2, 4))
    runs = plan(ROOT / 'options', tmp_path / 'train', preset, [*SR_MODELS, 'CSPSR_given'], ablations=True,
                protocols=('bicubic', 'camera'), seeds=2, val_dir=tmp_path / 'val')
    # Table 4's full model is the CSPSR row itself
    assert runs.ablation['full_x4'] is runs.table['bicubic'][4]['CSPSR'][0]
    assert len(runs.ablation) == 8 and [r.model for r in runs.runs].count('stereo') == 2 * len(preset.scales)
    seeds = [r.opt['manual_seed'] for r in runs.table['camera'][4]['EDSR']]
    assert seeds[1] == seeds[0] + 1 and [r.name for r in runs.table['camera'][4]['EDSR']] == ['EDSR_x4_camera',
                                                                                             'EDSR_x4_camera_seed1']
    for run in runs.runs:
        opt = dict(run.opt, is_train=True, path={k: v for k, v in run.opt['path'].items() if k != 'pretrain_network_disp'})
        check_options(opt)  # every key is one the code reads; the data roots exist
        assert opt['datasets']['train']['use_hflip'] is False
    if preset_name == 'paper':  # the option files as they are
        for model in SR_MODELS:
            source = load_options(str(ROOT / 'options' / f'train_{model}_x4.yml'))
            opt = runs.table['bicubic'][4][model][0].opt
            assert opt['network_g'] == source['network_g'] and opt['train'] == source['train']
            assert opt['datasets']['train']['batch_size_per_gpu'] == 32 and opt['datasets']['train']['gt_size'] == 120
        assert runs.runs[0].opt['train']['total_iter'] == 20000


def test_network_options_from_the_command_line_reach_the_runs_and_typos_are_refused(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.presets import CPU, with_networks
    from cspsr_arch.benchmark.runs import plan
    make_toy_split(tmp_path / 'train', scales=(4, ))
    preset = with_networks(CPU, ['CSPSR.norm=instance', 'CSPSR.num_dmf=6', 'EDSR.num_block=4'])
    assert CPU.networks['CSPSR'].get('norm') is None  # the preset itself is unchanged
    runs = plan(ROOT / 'options', tmp_path / 'train', preset, ['EDSR', 'CSPSR', 'CSPSR_given'], ablations=False)
    for row in ('CSPSR', 'CSPSR_given'):
        network = runs.table['bicubic'][4][row][0].opt['network_g']
        assert (network['norm'], network['num_dmf'], network['num_feat']) == ('instance', 6, 32)
    assert runs.table['bicubic'][4]['EDSR'][0].opt['network_g']['num_block'] == 4
    for bad, message in (('CSPSR.norm', 'MODEL.KEY=VALUE'), ('norm=batch', 'MODEL.KEY=VALUE'),
                         ('SRCNN.depth=3', "unknown model 'SRCNN'")):
        with pytest.raises(CSPSRInputError, match=message):
            with_networks(CPU, [bad])
    typo = with_networks(CPU, ['CSPSR.num_dfm=6'])
    with pytest.raises(CSPSRInputError, match=r"Unknown option 'CSPSR_x4 \(preset networks, --network\) network_g:num_dfm'\. "
                                              r"Did you mean 'num_dmf'\?"):
        plan(ROOT / 'options', tmp_path / 'train', typo, ['CSPSR'], ablations=False)
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'benchmark.py'), '--preset', 'quick', '--out',
                           str(tmp_path / 'out'), '--network', 'CSPSR.norm'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and 'MODEL.KEY=VALUE' in proc.stderr and not (tmp_path / 'out').exists()


def test_a_run_locked_by_a_live_process_is_left_to_it(tmp_path):
    from cspsr_arch.benchmark.training import claim
    run = Run('EDSR_x4', 'EDSR', 4, {'train': {'total_iter': 10}})
    lock = tmp_path / 'experiments' / 'EDSR_x4.lock'
    other = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        lock.parent.mkdir(parents=True)
        lock.write_text(str(other.pid))
        assert claim(run, tmp_path) is None  # held by a live process
    finally:
        other.kill()
        other.wait()
    assert claim(run, tmp_path) == lock and lock.read_text() == str(os.getpid())  # its process died: taken over
    assert claim(run, tmp_path) == lock  # our own lock, left by an interrupted call
    lock.write_text('')
    assert claim(run, tmp_path) is None  # being written by another process
    assert claim(run, tmp_path, fresh_s=0.0) == lock  # an empty lock that stays empty is stale


def test_train_all_comes_back_to_runs_trained_elsewhere(tmp_path, monkeypatch):
    from cspsr_arch.benchmark import training
    runs = [Run('stereo_x4', 'stereo', 4, {}), Run('EDSR_x4', 'EDSR', 4, {}),
            Run('CSPSR_x4', 'CSPSR', 4, {}, stereo='stereo_x4'), Run('RCAN_x4', 'RCAN', 4, {})]
    busy = {'stereo_x4': 2, 'EDSR_x4': 1}  # calls for which another process still holds the run
    calls = []

    def fake_train(run, root, data='', position=0):
        calls.append(run.name)
        if busy.get(run.name, 0):
            busy[run.name] -= 1
            return None
        return {'name': run.name}

    monkeypatch.setattr(training, 'train', fake_train)
    records = training.train_all(runs, tmp_path, poll_s=0.0)
    assert set(records) == {r.name for r in runs}
    # CSPSR loads the stereo run's network: it is never started before that run has finished
    assert calls == ['stereo_x4', 'EDSR_x4', 'RCAN_x4', 'stereo_x4', 'EDSR_x4', 'stereo_x4', 'CSPSR_x4']


def test_the_combined_training_split_is_kept_when_unchanged(tmp_path):
    from cspsr_arch.benchmark import pipeline as tool
    split = tmp_path / 'syn' / 'train'
    streams = ['HR/VIS', 'HR/NIR', 'HR/DISP_L', 'HR/DISP_R'] + [f'LR_bicubic/X4/{k}' for k in ('VIS', 'NIR', 'DISP_L', 'DISP_R')]
    for stream in streams:
        (split / stream).mkdir(parents=True)
        for key in ('a', 'b'):
            (split / stream / f'{key}.png').write_bytes(b'png ' + key.encode())
    (split / 'meta_info.txt').write_text('a.png (8, 8, 3)\nb.png (8, 8, 3)\n')
    data = {'syn': {'dir': tmp_path / 'syn'}}
    out = tool.combine_train_splits(data, tmp_path / 'train', [4])
    assert (out / 'meta_info.txt').read_text() == 'syn__a.png (8, 8, 3)\nsyn__b.png (8, 8, 3)\n'
    assert len(list(out.rglob('*.png'))) == 2 * len(streams)
    (out / 'reader_was_here').touch()
    assert tool.combine_train_splits(data, tmp_path / 'train', [4]) == out
    assert (out / 'reader_was_here').exists()  # not rebuilt under a reader's feet
    (split / 'meta_info.txt').write_text('a.png (8, 8, 3)\n')
    tool.combine_train_splits(data, tmp_path / 'train', [4])
    assert (out / 'meta_info.txt').read_text() == 'syn__a.png (8, 8, 3)\n' and not (out / 'HR/VIS/syn__b.png').exists()
    assert not (out / 'reader_was_here').exists()


def test_cached_scores_are_recomputed_when_the_test_split_changes(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.evaluation import evaluate
    split = tmp_path / 'data' / 'test'
    make_toy_split(split, keys=('a', 'b'), size=32, scales=(4, ))
    score = lambda: evaluate(None, tmp_path, 'toy', split, 4, tmp_path / 'images')
    first = score()
    cache = tmp_path / 'eval' / 'bicubic_x4_bicubic_toy.json'
    stale = json.loads(cache.read_text())
    stale['psnr'] = 99.0
    cache.write_text(json.dumps(stale))
    assert score()['psnr'] == 99.0  # unchanged split: the cached scores are used
    make_toy_split(split, keys=('a', 'b'), size=32, scales=(4, ), seed=7)  # regenerated: other images
    second = score()
    assert second['psnr'] not in (99.0, first['psnr']) and set(second['images']) == {'a', 'b'}
    assert json.loads(cache.read_text())['psnr'] == second['psnr']
    (split / 'LR_bicubic' / 'X4' / 'VIS' / 'b.png').write_bytes((split / 'LR_bicubic' / 'X4' / 'VIS' / 'a.png')
                                                                 .read_bytes())  # one LR image replaced
    assert score()['images']['b']['psnr'] != second['images']['b']['psnr']


def test_the_training_fingerprint_follows_training_images_not_test_images(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.pipeline import training_fingerprint
    for split in ('train', 'val', 'test'):
        make_toy_split(tmp_path / split, keys=('a', 'b'), size=32, scales=(4, ))
    fingerprint = lambda: training_fingerprint(tmp_path / 'train', tmp_path / 'val', [4])
    first = fingerprint()
    make_toy_split(tmp_path / 'test', keys=('a', 'b', 'c'), size=32, scales=(4, ), seed=3)  # more test images
    assert fingerprint() == first  # the trained models stay valid
    make_toy_split(tmp_path / 'val', keys=('a', 'b'), size=32, scales=(4, ), seed=3)
    second = fingerprint()
    assert second != first
    lr = tmp_path / 'train' / 'LR_bicubic' / 'X4' / 'NIR'
    (lr / 'b.png').write_bytes((lr / 'a.png').read_bytes())  # one training image replaced
    assert fingerprint() not in (first, second)
    assert training_fingerprint(tmp_path / 'train', None, [4]) != fingerprint()


def test_models_can_have_their_own_number_of_seeds(tmp_path):
    from toy_data import make_toy_split

    from cspsr_arch.benchmark.presets import CPU
    from cspsr_arch.benchmark.runs import plan
    make_toy_split(tmp_path / 'train', scales=(4, ))
    runs = plan(ROOT / 'options', tmp_path / 'train', CPU, ['EDSR', 'HAT', 'CSPSR'], ablations=False,
                protocols=('bicubic', 'camera'), seeds=2, model_seeds={'HAT': 1})
    for protocol, suffix in (('bicubic', ''), ('camera', '_camera')):
        rows = runs.table[protocol][4]
        assert [r.name for r in rows['HAT']] == [f'HAT_x4{suffix}']
        assert [r.name for r in rows['EDSR']] == [f'EDSR_x4{suffix}', f'EDSR_x4{suffix}_seed1']
        assert len(rows['CSPSR']) == 2
    assert len(runs.runs) == 2 * (1 + 2 + 1 + 2)  # per protocol: stereo, EDSR x2, HAT, CSPSR x2
    for bad in ({'HAT': 0}, {'RCAN': 1}):
        with pytest.raises(ValueError):
            plan(ROOT / 'options', tmp_path / 'train', CPU, ['EDSR', 'HAT'], ablations=False, seeds=2, model_seeds=bad)
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'benchmark.py'), '--preset', 'quick', '--out',
                           str(tmp_path / 'out'), '--models', 'EDSR', '--seeds-of', 'HAT=1'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and '--seeds-of' in proc.stderr and not (tmp_path / 'out').exists()


def test_the_wall_time_is_saved_at_each_log_line_so_a_killed_run_keeps_it(tmp_path, monkeypatch):
    """A training process killed without clean-up (SIGKILL, a restart) must not lose the run's earlier time."""
    import logging
    import time

    from cspsr_arch.benchmark import training
    from cspsr_arch.engine import pipeline as engine
    opt = {'train': {'total_iter': 10}}
    run = Run('EDSR_x4', 'EDSR', 4, opt)
    (tmp_path / 'experiments' / 'EDSR_x4').mkdir(parents=True)
    (tmp_path / 'logs').mkdir()
    partial = tmp_path / 'logs' / 'EDSR_x4.time.json'
    partial.write_text(json.dumps({'wall_s': 100.0, 'options': opt, 'data': 'd'}))  # an earlier process's time
    seen = []

    def killed_after_one_log_line(*args, **kwargs):
        time.sleep(0.05)
        logging.getLogger('basicsr').info('[epoch:  0, iter:       5, lr:(1.000e-03,)] [eta: 0:00:01] l_pix: 1e-02')
        seen.append(json.loads(partial.read_text())['wall_s'])  # what a SIGKILL now would leave
        raise RuntimeError('killed')

    monkeypatch.setattr(engine, 'run', killed_after_one_log_line)
    with pytest.raises(RuntimeError, match='killed'):
        training._train(run, tmp_path, 'd', 0)
    assert seen and 100.05 <= seen[0] < 110
