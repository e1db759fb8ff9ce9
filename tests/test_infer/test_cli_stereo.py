"""Through the console script: pre-train the disparity net, load it into CSPSR (frozen), ablation files."""
import re
from pathlib import Path

import torch
import yaml

from cli_runs import _basicsr, _train_options

from cspsr_arch.archs.cross_spectral_stereo_arch import CrossSpectralStereoNet


def _stereo_options(tmp_path: Path) -> Path:
    cspsr = yaml.safe_load(_train_options(tmp_path).read_text())
    for phase in ('train', 'val'):
        for key in ('dataroot_gt_nir', 'dataroot_disp_r'):
            del cspsr['datasets'][phase][key]
    cspsr['datasets']['train']['use_hflip'] = False
    opt = {
        'name': 'toy_stereo', 'model_type': 'CrossSpectralStereoModel', 'scale': 2, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': cspsr['datasets'],
        'network_g': {'type': 'CrossSpectralStereoNet', 'num_feat': 4, 'num_agg': 8, 'max_disp': 4},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {
            'ema_decay': 0.5,
            'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
            'total_iter': 2, 'warmup_iter': -1,
            'stereo_opt': {'type': 'UnsupervisedStereoLoss', 'lr_weight': 0.02},
        },
        'val': {'val_freq': 2, 'save_img': True, 'metrics': {
            'rmse': {'type': 'calculate_disparity_rmse', 'better': 'lower'},
            'bad1': {'type': 'calculate_bad_pixel_rate', 'threshold': 1.0, 'better': 'lower'}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    path = tmp_path / 'stereo.yml'
    path.write_text(yaml.safe_dump(opt))
    return path


def test_pretrain_disparity_then_train_cspsr_with_it_frozen(tmp_path):
    out = _basicsr(['train', '-opt', str(_stereo_options(tmp_path))], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'toy_stereo'
    log = next(exp.glob('train_toy_stereo_*.log')).read_text()
    assert re.search(r'l_stereo: \S+ l_rec: \S+ l_lr: \S+ l_smooth: \S+ epe: \S+', log)
    # the toy split's disparity is 4 HR = 2 LR pixels everywhere, so a zero disparity has an RMSE of 2.0 LR
    # pixels; the matching (a correlation volume) finds most of the shift from the first iterations on
    rmse = float(re.findall(r'# rmse: ([0-9.]+)', log)[-1])
    assert rmse < 0.75 * 2.0  # measured: 0.86 (the columns without a match keep it above 0)
    saved = list((exp / 'visualization').glob('*/*_disp_2.png'))
    assert len(saved) == 3 and all(p.stat().st_size > 0 for p in saved)
    ckpt = exp / 'models' / 'net_g_latest.pth'
    stereo_state = torch.load(ckpt, weights_only=True)['params']

    assert set(stereo_state) == set(CrossSpectralStereoNet(num_feat=4, num_agg=8, max_disp=4).state_dict())

    # CSPSR's built-in stereo net has 16 features, not 4: loading this checkpoint must say so
    opt_file = _train_options(tmp_path, total_iter=2, **{
        'network_g:cvm': 'learned', 'network_g:max_disp': 4, 'datasets:train:use_hflip': False,
        'path:pretrain_network_disp': str(ckpt)})
    out = _basicsr(['train', '-opt', str(opt_file)], tmp_path)
    assert out.returncode == 2 and 'is not a checkpoint of this disparity network' in out.stderr
    assert 'Traceback' not in out.stderr


def test_cspsr_loads_a_pretrained_disparity_net_and_keeps_it_frozen(tmp_path):
    torch.manual_seed(1)
    stereo = CrossSpectralStereoNet(max_disp=4)
    for param in stereo.parameters():
        torch.nn.init.normal_(param, std=0.1)
    torch.save({'params': stereo.state_dict()}, tmp_path / 'stereo.pth')
    opt_file = _train_options(tmp_path, total_iter=2)
    opt = yaml.safe_load(opt_file.read_text())
    opt['network_g'].update(cvm='learned', max_disp=4)
    opt['datasets']['train']['use_hflip'] = False
    opt['path']['pretrain_network_disp'] = str(tmp_path / 'stereo.pth')
    opt['train']['freeze_disp'] = True
    opt_file.write_text(yaml.safe_dump(opt))
    out = _basicsr(['train', '-opt', str(opt_file)], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    trained = torch.load(tmp_path / 'experiments' / 'toy_cspsr' / 'models' / 'net_g_latest.pth',
                         weights_only=True)['params']
    for key, value in stereo.state_dict().items():
        assert torch.equal(trained[f'cvm_net.{key}'], value), key  # loaded, then not trained
    assert not torch.equal(trained['head_vis.0.weight'], torch.zeros_like(trained['head_vis.0.weight']))

    opt['train']['freeze_disp'] = False
    opt['datasets']['train']['use_hflip'] = True
    opt_file.write_text(yaml.safe_dump(opt))
    out = _basicsr(['train', '-opt', str(opt_file)], tmp_path)
    assert out.returncode == 2 and 'use_hflip' in out.stderr and 'Traceback' not in out.stderr


def test_the_options_copied_into_experiments_are_what_trained_and_run_infer_and_test(tmp_path):
    base = _train_options(tmp_path)
    child = tmp_path / 'variants' / 'no_cssc.yml'
    child.parent.mkdir()
    child.write_text('base: ../train.yml\nname: toy_variant\nnetwork_g:\n  use_csft: false\ntrain:\n  cssc_opt: ~\n')
    out = _basicsr(['train', '-opt', str(child), '--force_yml', 'network_g:num_feat=6', 'train:total_iter=1'], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'toy_variant'
    log = next(exp.glob('train_toy_variant_*.log')).read_text()
    assert 'l_pix' in log and 'l_cssc' not in log
    copy = exp / 'no_cssc.yml'
    text = copy.read_text()
    assert text.startswith('# Options as trained') and '--force_yml network_g:num_feat=6' in text
    trained = yaml.safe_load(text)
    assert 'base' not in trained and trained['network_g']['use_csft'] is False and trained['train']['cssc_opt'] is None
    assert trained['network_g']['num_feat'] == 6  # the --force_yml change is in the copy
    assert trained['datasets'] == yaml.safe_load(base.read_text())['datasets']
    model = exp / 'models' / 'net_g_latest.pth'
    elsewhere = tmp_path / 'elsewhere'  # the copy needs no base file and no option file beside it
    elsewhere.mkdir()
    lr = tmp_path / 'data' / 'train' / 'LR_bicubic' / 'X2'
    out = _basicsr(['infer', '-opt', str(copy), '--model', str(model), '--vis', str(lr / 'VIS' / 'a.png'),
                    '--nir', str(lr / 'NIR' / 'a.png'), '--disp', str(lr / 'DISP_L' / 'a.png'), '--out',
                    str(elsewhere / 'a_sr.png'), '--quiet'], elsewhere)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f'wrote 1 image(s) to {elsewhere / "a_sr.png"}' in out.stdout
    out = _basicsr(['test', '-opt', str(copy), '--force_yml', f'path:pretrain_network_g={model}', 'name=toy_test'],
                   tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'basicsr test: datasets:train is a training set; it is not tested.' in out.stdout
    assert list((tmp_path / 'results' / 'toy_test').rglob('*.log'))
    out = _basicsr(['train', '-opt', str(tmp_path / 'nowhere.yml')], tmp_path)
    assert out.returncode == 2 and 'Option file not found' in out.stderr
