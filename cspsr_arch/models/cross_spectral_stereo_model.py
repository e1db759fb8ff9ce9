"""``CrossSpectralStereoModel``: trains the learned CVM (``CrossSpectralStereoNet``) on its own, without labels."""
import os.path as osp
from collections import OrderedDict
from typing import Optional, Tuple

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite
from basicsr.utils.registry import MODEL_REGISTRY
from torch import Tensor
from tqdm import tqdm

from cspsr_arch.archs.cross_spectral_stereo_arch import StereoOutput
from cspsr_arch.engine.checkpoint import AtomicCheckpointMixin, check_finite_loss
from cspsr_arch.image_io import encode_disparity
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.prep.split import PNG_PARAMS
from cspsr_arch.models.stereo_utils import check_flip_geometry


@MODEL_REGISTRY.register()
class CrossSpectralStereoModel(AtomicCheckpointMixin, SRModel):
    """Unsupervised training of a ``CrossSpectralStereoNet`` on the LR VIS/NIR pairs of a cross-spectral set.

    The network sees exactly what it sees inside CSPSR (``lq`` and ``lq_nir``, so disparities are in LR
    pixels) and learns from ``train.stereo_opt`` (an ``UnsupervisedStereoLoss``): no disparity labels
    are needed, so any RGB-NIR stereo set trains it. ``train.shift_augment`` (pixels) widens the
    disparity range it sees (:meth:`shifted_pair`). Its checkpoint goes into CSPSR by
    ``path.pretrain_network_disp``.

    Validation scores the left disparity against the data set's ``disp`` (LR ground truth) with the
    metrics of ``val.metrics`` (``calculate_disparity_rmse``, ``calculate_bad_pixel_rate``); ``save_img``
    writes the predicted disparity as a 16-bit PNG (``round(d * 256)``, as in ``datasets/README.md``).

    Reused from ``SRModel``/``BaseModel``: network building and loading, EMA, optimizers, schedulers,
    resuming, distributed validation and the metric logging; checkpoints are written atomically and a
    NaN/inf loss stops training (:mod:`cspsr_arch.engine.checkpoint`).
    """

    def init_training_settings(self) -> None:
        check_flip_geometry(self.opt, self.get_bare_model(self.net_g).min_disp)
        train_opt = self.opt['train']
        if not train_opt.get('stereo_opt'):
            raise CSPSRInputError('CrossSpectralStereoModel needs train:stereo_opt (type: UnsupervisedStereoLoss).')
        unused = [key for key in ('pixel_opt', 'perceptual_opt', 'cssc_opt') if train_opt.get(key)]
        if unused:
            raise CSPSRInputError(f'CrossSpectralStereoModel does not use train:{unused[0]}; remove it.')
        self.cri_stereo = build_loss(train_opt['stereo_opt']).to(self.device)
        self.net_g.train()
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)  # copy net_g
            self.net_g_ema.eval()
        self.setup_optimizers()
        self.setup_schedulers()

    def feed_data(self, data: dict) -> None:
        """Move ``lq``, ``lq_nir`` and, where present, the LR ground-truth disparity ``disp`` to the device."""
        self.lq = data['lq'].to(self.device)
        self.lq_nir = data['lq_nir'].to(self.device)
        self.disp_gt = data['disp'].to(self.device) if 'disp' in data else None

    def shifted_pair(self) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """The batch with the right view shifted left by a random ``k`` in ``0..train.shift_augment`` pixels.

        ``right'(x) = right(x + k)`` (the left view cropped to the same width) is a valid rectified pair
        whose disparity is ``d + k`` everywhere, as if the principal points were ``k`` pixels further
        apart. Without it the network learns the disparity range of the training set as a prior: trained
        on the synthetic set (mostly 0-7 LR pixels at x4), it predicted 0-3 pixels where the Middlebury
        pair has 10-15.
        """
        max_shift = int(self.opt['train'].get('shift_augment', 0) or 0)
        shift = int(torch.randint(0, max_shift + 1, ()).item()) if max_shift > 0 else 0
        if shift == 0 or shift >= self.lq.size(-1) // 2:
            return self.lq, self.lq_nir, self.disp_gt
        disp = None if self.disp_gt is None else self.disp_gt[..., :-shift] + shift
        return self.lq[..., :-shift], self.lq_nir[..., shift:], disp

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        lq, lq_nir, disp_gt = self.shifted_pair()
        out: StereoOutput = self.net_g(lq, lq_nir)
        terms = self.cri_stereo.terms(out.pseudo_nir, lq_nir, out.disp_l, out.disp_r)
        c = self.cri_stereo
        l_total = c.loss_weight * (terms['l_rec'] + c.lr_weight * terms['l_lr'] + c.smooth_weight * terms['l_smooth'])
        check_finite_loss(l_total, terms, current_iter, self.opt)
        l_total.backward()
        self.optimizer_g.step()
        loss_dict = OrderedDict(l_stereo=l_total, **terms)
        if disp_gt is not None:
            loss_dict['epe'] = (out.disp_l.detach() - disp_gt).abs().mean()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq, self.lq_nir)
        net.train(was_training)

    def get_current_visuals(self) -> OrderedDict:
        out = OrderedDict(disp_l=self.output.disp_l.detach().cpu(), disp_r=self.output.disp_r.detach().cpu(),
                          pseudo_nir=self.output.pseudo_nir.detach().cpu())
        if self.disp_gt is not None:
            out['disp_gt'] = self.disp_gt.detach().cpu()
        return out

    def nondist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        """Disparity metrics over a validation set (one image per batch), logged like SRModel's."""
        dataset_name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        if metrics and not hasattr(self, 'metric_results'):
            self.metric_results = {}
        if metrics:
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {name: 0.0 for name in metrics}
        pbar = tqdm(total=len(dataloader), unit='image') if self.opt['val'].get('pbar', False) else None
        count = 0
        for val_data in dataloader:
            name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            visuals = self.get_current_visuals()
            disp = visuals['disp_l'][0, 0].numpy()
            if metrics:
                if 'disp_gt' not in visuals:
                    raise CSPSRInputError(f'Validation set {dataset_name} has no ground-truth disparity (dataroot_disp) '
                                          'for the disparity metrics; add it or remove val:metrics.')
                data = dict(disp=disp, disp_gt=visuals['disp_gt'][0, 0].numpy())
                for metric, metric_opt in metrics.items():  # 'better' is read by the best-result tracking only
                    metric_opt = {k: v for k, v in metric_opt.items() if k != 'better'}
                    self.metric_results[metric] += calculate_metric(data, metric_opt)
            if save_img:
                tag = current_iter if self.opt['is_train'] else (self.opt['val'].get('suffix') or self.opt['name'])
                path = osp.join(self.opt['path']['visualization'], dataset_name, f'{name}_disp_{tag}.png')
                imwrite(encode_disparity(disp), path, params=PNG_PARAMS)
            count += 1
            if pbar is not None:
                pbar.update(1)
        if pbar is not None:
            pbar.close()
        if metrics and count:
            for metric in self.metric_results:
                self.metric_results[metric] /= count
                self._update_best_metric_result(dataset_name, metric, self.metric_results[metric], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        elif not count:
            get_root_logger().warning(f'Validation set {dataset_name} is empty.')
