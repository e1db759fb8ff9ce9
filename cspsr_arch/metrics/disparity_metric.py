"""Disparity accuracy metrics (registered in BasicSR's metric registry): RMSE and bad-pixel rate."""
from typing import Optional

import numpy as np
from basicsr.utils.registry import METRIC_REGISTRY


def _errors(disp: np.ndarray, disp_gt: np.ndarray, valid: Optional[np.ndarray]) -> np.ndarray:
    disp, disp_gt = np.asarray(disp, np.float64), np.asarray(disp_gt, np.float64)
    if disp.shape != disp_gt.shape:
        raise ValueError(f'Predicted disparity {disp.shape} and ground truth {disp_gt.shape} differ in size.')
    if not np.isfinite(disp).all():
        raise ValueError('The predicted disparity has NaN or infinite values (did the training diverge?).')
    mask = np.isfinite(disp_gt)
    if valid is not None:
        mask &= np.asarray(valid, bool)
    if not mask.any():
        raise ValueError('No valid ground-truth disparity to compare with.')
    return np.abs(disp - disp_gt)[mask]


@METRIC_REGISTRY.register()
def calculate_disparity_rmse(disp: np.ndarray, disp_gt: np.ndarray, valid: Optional[np.ndarray] = None) -> float:
    """Root-mean-square disparity error in pixels.

    Args:
        disp (ndarray): Predicted disparity (any shape), pixels.
        disp_gt (ndarray): Ground truth, same shape; non-finite values are ignored.
        valid (ndarray | None): Optional boolean mask of the pixels to score.

    Returns:
        float: RMSE in pixels.
    """
    return float(np.sqrt(np.mean(_errors(disp, disp_gt, valid)**2)))


@METRIC_REGISTRY.register()
def calculate_bad_pixel_rate(disp: np.ndarray, disp_gt: np.ndarray, threshold: float = 1.0,
                             valid: Optional[np.ndarray] = None) -> float:
    """Share of pixels (in %) whose disparity error exceeds ``threshold`` pixels.

    Args:
        disp (ndarray): Predicted disparity, pixels.
        disp_gt (ndarray): Ground truth, same shape; non-finite values are ignored.
        threshold (float): Error tolerance in pixels. Default: 1.0.
        valid (ndarray | None): Optional boolean mask of the pixels to score.

    Returns:
        float: Bad-pixel rate in percent.
    """
    return float(100.0 * np.mean(_errors(disp, disp_gt, valid) > threshold))
