"""lpipscli: compare images and video against their references (LPIPS, SSIM, PSNR, MS-SSIM, MMD, LASI).

The functional API takes ``ref, dist`` float tensors ``(N, C, H, W)`` in ``[0, 1]`` and returns one score
per image, shape ``(N,)``::

    from lpipscli import lpips, ssim, psnr
    d = lpips(ref, dist, net="alex")      # differentiable; the network is built once and cached
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lpipscli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"


def __getattr__(name: str):
    # Lazy re-export: `import lpipscli` stays light (the CLI's --help does not import torch).
    import importlib

    if name.startswith("__") or name not in __all__:
        # `from lpipscli import weights` asks here before importing the submodule: never import torch for it
        raise AttributeError(f"module 'lpipscli' has no attribute {name!r}")
    metrics = importlib.import_module("lpipscli.metrics")
    if name in metrics.__all__:
        return getattr(metrics, name)
    raise AttributeError(f"module 'lpipscli' has no attribute {name!r}")


__all__ = [
    "__version__", "lpips", "LPIPS", "psnr", "psnr_y", "mse", "l1", "ssim", "ssim_y", "ssim_matlab", "ms_ssim",
    "mmd", "mmd_rff", "mmd_pp", "lasi",
]
