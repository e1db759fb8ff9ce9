"""``CSPSRModel``: BasicSR's ``SRModel`` with the NIR streams and the L_CSSC loss."""
import contextlib
from collections import OrderedDict
from collections.abc import Mapping

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

from cspsr_arch.archs.cspsr_arch import CSPSROutput
from cspsr_arch.archs.precision import amp_dtype
from cspsr_arch.engine.checkpoint import AtomicCheckpointMixin, check_finite_loss
from cspsr_arch.errors import CSPSRInputError
from cspsr_arch.models.stereo_utils import check_flip_geometry, freeze, load_stereo_weights

OPTIONAL_STREAMS = ('gt', 'gt_nir', 'disp', 'disp_r')


def check_nir_scales(opt: dict) -> None:
    """Refuse a data set whose ``nir_scale`` differs from ``network_g:nir_scale`` (both default 1) of a network that
    reads the NIR (CSPSR and the guided comparison networks).

    The data set then delivers a NIR of another size than the network takes: a network built for the LR NIR
    must never be given the HR NIR (a comparison with it would be another comparison), and a mismatch would
    otherwise only fail at the first batch, with a tensor-size message.

    Args:
        opt: The model's options (``network_g``, ``datasets``).
    """
    from cspsr_arch.infer.vis_only import reads_nir
    net_opt = opt.get('network_g') or {}
    if not reads_nir(str(net_opt.get('type'))):
        return
    wanted = net_opt.get('nir_scale', 1)
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        if not isinstance(dataset_opt, Mapping):
            continue
        have = dataset_opt.get('nir_scale', 1)
        if have != wanted:
            raise CSPSRInputError(f'datasets:{name}:nir_scale is {have}, but network_g:nir_scale is {wanted}: the '
                                  f'network takes its NIR at {wanted} x the LR size of the VIS and the data set would '
                                  f'deliver it at {have} x. Set datasets:{name}:nir_scale: {wanted}.')


def check_warp_window(opt: dict) -> None:
    """Refuse ``network_g:warp_window`` (the learned alignment of CMSR and of ``CSPSR(nir_align=True)``, per
    window) other than ``datasets:train:gt_size``.

    The alignment is learnt on the training patches and applied per window of that size
    (:class:`~cspsr_arch.archs.guide_align.GuideAligner`): windows of another size move the guide by other
    distances than it learnt.

    Args:
        opt: The model's options (``network_g``, ``datasets``).
    """
    window = (opt.get('network_g') or {}).get('warp_window')
    train = (opt.get('datasets') or {}).get('train')
    if not window or not isinstance(train, Mapping) or 'gt_size' not in train or train['gt_size'] == window:
        return
    raise CSPSRInputError(f'network_g:warp_window is {window}, but datasets:train:gt_size is {train["gt_size"]}: the '
                          f'alignment is learnt on the training patches and applied per window of their size. Set '
                          f'network_g:warp_window: {train["gt_size"]}.')


@MODEL_REGISTRY.register()
class CSPSRModel(AtomicCheckpointMixin, SRModel):
    """Cross-spectral SR model: ``loss = pixel_opt(I_SR, I_HR) + cssc_opt(NIR_SR, NIR_HR, disp_l, disp_r)``.

    Everything else (optimizers, schedulers, EMA, ``nondist_validation`` with PSNR/SSIM, image saving,
    tensorboard) is BasicSR's ``SRModel``; checkpoints are written atomically and a NaN/inf loss stops
    training (:mod:`cspsr_arch.engine.checkpoint`). ``self.output`` is I_SR, so BasicSR's
    validation measures the VIS result; ``self.output_nir`` keeps NIR_SR.

    Options read on top of SRModel's:

    * ``train.cssc_opt``: a ``CrossSpectralSpatialConsistencyLoss`` config (optional);
    * ``train.attention_opt``: a ``ParallaxAttentionLoss`` config (optional; PASSR's own losses on its attention);
    * ``path.pretrain_network_disp`` (+ ``param_key_disp``, ``strict_load_disp``): weights of the
      learned CVM (``network_g.cvm: learned``), e.g. from ``CrossSpectralStereoModel``; they replace the
      stereo part of ``pretrain_network_g``;
    * ``train.freeze_disp``: keep the learned CVM fixed (default: fine-tune it through L_CSSC and the
      SR loss);
    * ``train.amp``: ``bf16`` or ``fp16``: the training steps' forward pass and losses under
      ``torch.autocast`` in that type (:func:`cspsr_arch.archs.precision.amp_dtype`; the heads and the learned CVM
      keep fp32, see :mod:`cspsr_arch.archs.precision`); fp16 with a ``torch.amp.GradScaler`` (its scale starts
      afresh when training resumes). Off by default. Validation runs in fp32.
    * ``train.compile``: run the training steps through ``torch.compile`` (:mod:`cspsr_arch.engine.compile`;
      static shapes, the fixed patch size). Validation and checkpoints use ``net_g`` itself, so the
      saved weights have the usual names. Eager mode, with a warning, where no compiler is installed.

    When training resumes, ``pretrain_network_disp`` is not loaded again: the resumed checkpoint already
    holds the (fine-tuned) CVM weights.

    A CSPSR takes its NIR at ``network_g:nir_scale`` x the LR size: every data set of ``datasets`` must
    have that ``nir_scale`` (checked before anything is built, see :func:`check_nir_scales`), and the
    ``warp_window`` of a learned alignment must be the training patch size (:func:`check_warp_window`).
    """

    def __init__(self, opt: dict) -> None:
        check_nir_scales(opt)
        check_warp_window(opt)
        super().__init__(opt)
        if not self.is_train:
            self._load_disp_network()

    def _load_disp_network(self, net: nn.Module = None) -> None:
        path = self.opt['path'].get('pretrain_network_disp')
        if path is None:
            return
        net = self.get_bare_model(self.net_g if net is None else net)
        if not hasattr(net, 'cvm_net'):
            raise CSPSRInputError('path:pretrain_network_disp is set, but network_g has no learned CVM; set '
                                  'network_g:cvm: learned or remove the option.')
        load_stereo_weights(net.cvm_net, path, self.opt['path'].get('param_key_disp', 'params'),
                            self.opt['path'].get('strict_load_disp', True))

    def init_training_settings(self) -> None:
        train_opt = self.opt['train']
        for key in ('stereo_opt', 'shift_augment'):
            if train_opt.get(key):
                raise CSPSRInputError(f'train:{key} is read by CrossSpectralStereoModel (pre-training of the learned '
                                      'CVM), not by CSPSRModel; remove it (pre-train with '
                                      'options/train_disparity_*.yml and load it by path:pretrain_network_disp).')
        net = self.get_bare_model(self.net_g)
        if hasattr(net, 'cvm_net'):
            check_flip_geometry(self.opt, net.cvm_net.min_disp)
        elif train_opt.get('freeze_disp'):
            raise CSPSRInputError('train:freeze_disp needs network_g:cvm: learned.')
        resuming = bool(self.opt['path'].get('resume_state'))
        if not resuming:
            self._load_disp_network()
        if train_opt.get('freeze_disp'):
            freeze(net.cvm_net)
        cssc_opt = train_opt.get('cssc_opt')
        if cssc_opt and getattr(net, 'branches', 'dual') != 'dual':
            raise CSPSRInputError(f"train:cssc_opt needs the NIR output of the dual-branch network (network_g:branches "
                                  f"is {net.branches!r}); remove cssc_opt for the single-branch variants.")
        self.cri_cssc = build_loss(cssc_opt).to(self.device) if cssc_opt else None
        attention_opt = train_opt.get('attention_opt')
        if attention_opt and not hasattr(net, 'last_attention'):
            raise CSPSRInputError(f"train:attention_opt needs a network that keeps its parallax attention maps (PASSR); "
                                  f"network_g:type is {type(net).__name__}: remove attention_opt.")
        self.cri_attention = build_loss(attention_opt).to(self.device) if attention_opt else None
        super().init_training_settings()
        self.amp = amp_dtype(train_opt.get('amp'), self.device)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == torch.float16 else None
        self.train_net = self.net_g
        if train_opt.get('compile'):
            from basicsr.utils import get_root_logger

            from cspsr_arch.engine.compile import compile_network
            self.train_net = compile_network(self.net_g, self.device, dynamic_size=False,
                                             log=get_root_logger().warning)
        if hasattr(self, 'net_g_ema') and self.opt['path'].get('pretrain_network_g') and not resuming:
            self._load_disp_network(self.net_g_ema)  # the EMA copy was loaded from pretrain_network_g

    def feed_data(self, data: dict) -> None:
        """Move ``lq``, ``lq_nir`` and, where present, ``gt``, ``gt_nir``, ``disp``, ``disp_r`` to the device."""
        self.lq = data['lq'].to(self.device)
        self.lq_nir = data['lq_nir'].to(self.device)
        for name in OPTIONAL_STREAMS:
            if name in data:
                setattr(self, name, data[name].to(self.device))
            elif name != 'gt':  # SRModel's validation deletes self.gt itself
                setattr(self, name, None)

    def _run(self, net: nn.Module) -> CSPSROutput:
        return net(self.lq, self.lq_nir, self.disp, self.disp_r)

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        # without train:amp no autocast of its own: one the caller opened still applies
        amp = torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()
        with amp:
            l_total, loss_dict = self._losses()
        check_finite_loss(l_total, loss_dict, current_iter, self.opt)
        if self.scaler is None:
            l_total.backward()
            self.optimizer_g.step()
        else:
            self.scaler.scale(l_total).backward()
            self.scaler.step(self.optimizer_g)
            self.scaler.update()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _losses(self) -> tuple:
        """One forward pass of the training network and its losses: (total, OrderedDict of the terms)."""
        out = self._run(self.train_net)
        self.output, self.output_nir = out.sr, out.nir_sr

        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (('l_percep', l_percep), ('l_style', l_style)):
                if value is not None:
                    l_total += value
                    loss_dict[name] = value
        if self.cri_cssc:
            if self.gt_nir is None:
                raise ValueError('cssc_opt needs the HR NIR ground truth: set dataroot_gt_nir in the train data set.')
            l_cssc = self.cri_cssc(self.output_nir, self.gt_nir, out.disp_l, out.disp_r)
            l_total += l_cssc
            loss_dict['l_cssc'] = l_cssc

        if self.cri_attention:
            l_att = self.cri_attention(self.get_bare_model(self.net_g).last_attention, self.lq, self.lq_nir)
            l_total += l_att
            loss_dict['l_attention'] = l_att
        return l_total, loss_dict

    def model_ema(self, decay: float = 0.999) -> None:
        """BasicSR's parameter EMA, plus a copy of the buffers (BatchNorm running statistics in CSFT).

        BasicSR averages parameters only, so ``net_g_ema`` would keep its initial BatchNorm statistics
        and normalise wrongly at test time.
        """
        super().model_ema(decay)
        net_g = self.get_bare_model(self.net_g)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        with torch.no_grad():
            for name, buf in net_g.named_buffers():
                ema_buffers[name].copy_(buf)

    def validation(self, dataloader, current_iter: int, tb_logger, save_img: bool = False) -> None:
        """BasicSR's validation, with the iteration of the last one capped at ``train:total_iter``: BasicSR's
        training loop validates once more after it ends, with the iteration counter one past the total (a
        200-iteration run logged ``Best: ... @ 201 iter``)."""
        total = (self.opt.get('train') or {}).get('total_iter')
        if self.is_train and total is not None and current_iter > total:
            current_iter = int(total)
        super().validation(dataloader, current_iter, tb_logger, save_img)

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        net.eval()
        with torch.no_grad():
            out = self._run(net)
        self.output, self.output_nir = out.sr, out.nir_sr
        if net is self.net_g:
            self.net_g.train()
