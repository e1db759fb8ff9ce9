"""VIS/NIR pairs for the registration tests: textured scenes whose NIR shares the VIS edges, and a known smooth
displacement field to move a NIR by."""
import cv2
import numpy as np

from cspsr_arch.prep import registration

H, W = 384, 512


def textured(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour noise with rectangles: structure on every tile, float32 (h, w, 3) in [0, 1]."""
    canvas = cv2.resize(rng.random((h // 8, w // 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(h * w // 2000):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        canvas[y:y + rng.integers(5, 25), x:x + rng.integers(5, 25)] = rng.random(3)
    return np.clip(canvas, 0, 1)


def u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def scene(seed: int = 0, h: int = H, w: int = W):
    """A VIS image and its registered NIR (another mix of the channels: edges shared, levels not)."""
    canvas = textured(np.random.default_rng(seed), h, w)
    return u8(canvas), u8(0.6 * canvas[..., 2] + 0.4 * canvas[..., 1] ** 2)


def truth(h: int, w: int):
    """A smooth displacement: a global shift, a slow wave and a local bump of 4 pixels."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    gx = 1.7 + 1.0 * np.sin(2 * np.pi * xs / 300) + 4 * np.exp(-((xs - 0.6 * w) ** 2 + (ys - 0.4 * h) ** 2) / 2 / 60 ** 2)
    gy = -0.8 + 0.8 * np.cos(2 * np.pi * ys / 250) - 3 * np.exp(-((xs - 0.3 * w) ** 2 + (ys - 0.6 * h) ** 2) / 2 / 50 ** 2)
    return np.stack([gx, gy], -1).astype(np.float32)


def moved(nir: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``moved(p) = nir(p - truth(p))``: the NIR displaced by ``truth``."""
    return registration.resample(nir, -truth)
