"""Weight files: where they live, their pinned sha256, verified loading, download.

Backbones are torchvision's ImageNet checkpoints, found in torch.hub's standard cache
(``$TORCH_HOME/hub/checkpoints``, default ``~/.cache/torch/hub/checkpoints``) under torchvision's exact
file names. The calibrated LPIPS heads ship inside the official ``lpips`` distribution
(``lpips/weights/v0.1/{alex,vgg,squeeze}.pth``). Every file is checked against its pinned sha256 and
loaded with ``torch.load(weights_only=True)``, so a weight file can never run code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from lpipscli.errors import WeightsError

ENV_ALLOW_UNVERIFIED = "LPIPSCLI_ALLOW_UNVERIFIED_WEIGHTS"
WEIGHT_FREE_HINT = "ssim,psnr"


@dataclass(frozen=True)
class BackboneFile:
    """A torchvision ImageNet checkpoint."""

    net: str
    arch: str
    filename: str
    sha256: str
    size: int | None

    @property
    def url(self) -> str:
        return f"https://download.pytorch.org/models/{self.filename}"


#: torchvision's file names carry the first 8 hex digits of the sha256 (torchvision checks them on
#: download); the full digests are pinned here.
BACKBONES: dict[str, BackboneFile] = {
    "alex": BackboneFile(
        "alex", "alexnet", "alexnet-owt-7be5be79.pth",
        "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", 244_408_911,
    ),
    "vgg": BackboneFile(
        "vgg", "vgg16", "vgg16-397923af.pth",
        "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881,
    ),
    "squeeze": BackboneFile(
        "squeeze", "squeezenet1_1", "squeezenet1_1-b8a52dc0.pth",
        "b8a52dc049b60e4b6ab68ad0df457362afab8b6304b2febdc1650a5dab4d7e7b", None,
    ),
}

#: sha256 of the calibrated heads inside the ``lpips`` 0.1.4 distribution.
HEADS: dict[tuple[str, str], str] = {
    ("0.1", "alex"): "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    ("0.1", "vgg"): "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    ("0.1", "squeeze"): "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
    ("0.0", "alex"): "18720f55913d0af89042f13faa7e536a6ce1444a0914e6db9461355ece1e8cd5",
    ("0.0", "vgg"): "b9e4236260c3dd988fc79d2a48d645d885afcbb21f9fd595e6744cf7419b582c",
    ("0.0", "squeeze"): "c27abd3a0145541baa50990817df58d3759c3f8154949f42af3b59b4e042d0bf",
}

NETS = tuple(BACKBONES)
VERSIONS = ("0.1", "0.0")

#: Every torchvision classification backbone the feature distances (``lpipscli.features``) accept, keyed by
#: torchvision's architecture name. The first three are the LPIPS backbones above (full sha256 pinned). For
#: the others only the sha256 prefix that torchvision puts in the file name is known here: they are checked
#: the way torchvision's own ``check_hash`` checks a download (the digest must start with that prefix), and
#: the record says so (``expected_sha256`` is the prefix). ResNet-50 is IMAGENET1K_V1, the classic weights.
FEATURE_BACKBONES: dict[str, BackboneFile] = {
    "alexnet": BACKBONES["alex"],
    "vgg16": BACKBONES["vgg"],
    "squeezenet1_1": BACKBONES["squeeze"],
    "vgg19": BackboneFile("vgg19", "vgg19", "vgg19-dcbb9e9d.pth", "dcbb9e9d", None),
    "resnet50": BackboneFile("resnet50", "resnet50", "resnet50-0676ba61.pth", "0676ba61", None),
    "shufflenet_v2_x1_0": BackboneFile(
        "shufflenet_v2_x1_0", "shufflenet_v2_x1_0", "shufflenetv2_x1-5666bf0f80.pth", "5666bf0f80", None
    ),
    "googlenet": BackboneFile("googlenet", "googlenet", "googlenet-1378be20.pth", "1378be20", None),
}


@dataclass(frozen=True)
class WeightRecord:
    """Provenance of one loaded weight file."""

    role: str
    path: str
    sha256: str
    expected_sha256: str
    verified: bool

    def as_dict(self) -> dict:
        return asdict(self)


def allow_unverified_from_env() -> bool:
    return os.environ.get(ENV_ALLOW_UNVERIFIED, "").strip().lower() in {"1", "true", "yes", "on"}


def checkpoint_dir() -> Path:
    """torch.hub's checkpoint cache (honours ``$TORCH_HOME`` and ``$XDG_CACHE_HOME``).

    When torch is already imported, ``torch.hub.get_dir()`` decides (it also honours ``torch.hub.set_dir``);
    otherwise the same rule is applied here, so that ``lpips weights`` does not import torch for a path.
    """
    import sys

    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    return _hub_dir_from_env() / "checkpoints"


def _hub_dir_from_env() -> Path:
    """torch.hub's default folder (``torch.hub.get_dir()`` when ``set_dir`` was not called), without torch."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def heads_dir(version: str) -> Path:
    """The folder of calibrated heads inside the installed ``lpips`` distribution."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the LPIPS heads come from the 'lpips' package, which is not installed: pip install lpips==0.1.4"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / f"v{version}"


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) within the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def _verify(path: Path, expected: str, role: str, allow_unverified: bool) -> WeightRecord:
    actual = sha256_file(path)
    # a full digest must match; a file-name prefix (FEATURE_BACKBONES) is checked as torchvision does
    verified = actual == expected if len(expected) == 64 else actual.startswith(expected)
    if not verified and not allow_unverified:
        raise WeightsError(
            f"{role} weights {path} have sha256 {actual[:16]}..., expected {expected[:16]}...: refusing them "
            f"(delete the file and run `lpips weights download`, or pass --allow-unverified-weights / set "
            f"{ENV_ALLOW_UNVERIFIED}=1 to use custom weights on purpose)"
        )
    return WeightRecord(role=role, path=str(path), sha256=actual, expected_sha256=expected, verified=verified)


def _load(path: Path, role: str) -> dict:
    import torch

    try:
        # mmap: the classifier tensors LPIPS never uses are not read (zip checkpoints only)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # corrupt file, pickle with code, wrong format
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        raise WeightsError(f"{role} weights {path} cannot be loaded safely: {reason}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{role} weights {path} do not hold a state dict")
    return state


def backbone_path(net: str) -> Path:
    return checkpoint_dir() / BACKBONES[net].filename


def load_backbone(net: str, *, allow_unverified: bool = False) -> tuple[dict, WeightRecord]:
    """Load and verify the torchvision ImageNet checkpoint of ``net`` from the cache.

    Raises:
        WeightsError: missing file (one line naming the file, the folder, the URL and the weight-free
            metrics), a sha256 mismatch without ``allow_unverified``, or an unloadable file.
    """
    info = BACKBONES[net]
    path = backbone_path(net)
    allow_unverified = allow_unverified or allow_unverified_from_env()
    if not path.is_file():
        raise WeightsError(
            f"lpips_{net} needs {info.filename} in {path.parent}, and it is not there: run "
            f"`lpips weights download {net}`, or fetch {info.url} into that folder (TORCH_HOME moves the "
            f"cache), or use weight-free metrics: --metric {WEIGHT_FREE_HINT}"
        )
    record = _verify(path, info.sha256, f"{net} backbone", allow_unverified)
    return _load(path, f"{net} backbone"), record


def load_feature_backbone(arch: str, *, allow_unverified: bool = False) -> tuple[dict, WeightRecord]:
    """Load and verify the torchvision ImageNet checkpoint of architecture ``arch`` (``FEATURE_BACKBONES``).

    Raises:
        WeightsError: unknown architecture, missing file (one line naming the file and the folder),
            a sha256 mismatch without ``allow_unverified``, or an unloadable file.
    """
    if arch not in FEATURE_BACKBONES:
        raise WeightsError(f"no ImageNet weights known for {arch!r}; known: {', '.join(FEATURE_BACKBONES)}")
    info = FEATURE_BACKBONES[arch]
    path = checkpoint_dir() / info.filename
    allow_unverified = allow_unverified or allow_unverified_from_env()
    if not path.is_file():
        raise WeightsError(
            f"{arch} needs {info.filename} in {path.parent}, and it is not there: fetch {info.url} into that "
            f"folder (TORCH_HOME moves the cache), or use random weights (weights=random)"
        )
    record = _verify(path, info.sha256, f"{arch} backbone", allow_unverified)
    return _load(path, record.role), record


def load_head(net: str, version: str, *, allow_unverified: bool = False) -> tuple[dict, WeightRecord]:
    """Load and verify the calibrated LPIPS head of ``net`` (version '0.1' or '0.0')."""
    path = heads_dir(version) / f"{net}.pth"
    allow_unverified = allow_unverified or allow_unverified_from_env()
    if not path.is_file():
        raise WeightsError(
            f"the LPIPS v{version} {net} head {path} is missing: reinstall the 'lpips' package "
            "(pip install --force-reinstall lpips==0.1.4)"
        )
    record = _verify(path, HEADS[(version, net)], f"lpips v{version} {net} head", allow_unverified)
    return _load(path, record.role), record


def status() -> list[dict]:
    """One row per weight file: what needs it, where it is looked for, present, verified."""
    rows = []
    for net, info in BACKBONES.items():
        path = backbone_path(net)
        present = path.is_file()
        rows.append({
            "needed_by": f"lpips_{net}", "file": info.filename, "path": str(path), "present": present,
            "verified": present and sha256_file(path) == info.sha256, "source": info.url,
        })
    lpips_files = {info.filename for info in BACKBONES.values()}
    for arch, info in FEATURE_BACKBONES.items():
        if info.filename in lpips_files:
            continue
        path = checkpoint_dir() / info.filename
        present = path.is_file()
        verified = present and sha256_file(path).startswith(info.sha256)
        rows.append({
            "needed_by": f"--define net={arch}", "file": info.filename, "path": str(path), "present": present,
            "verified": verified, "source": info.url,
        })
    for (version, net), expected in HEADS.items():
        try:
            path = heads_dir(version) / f"{net}.pth"
        except WeightsError:
            path = Path(f"<lpips package missing>/weights/v{version}/{net}.pth")
        present = path.is_file()
        rows.append({
            "needed_by": f"lpips_{net} (v{version})", "file": f"v{version}/{net}.pth", "path": str(path),
            "present": present, "verified": present and sha256_file(path) == expected,
            "source": "the lpips package",
        })
    return rows


def download(net: str, *, progress: bool = True) -> Path:
    """Fetch the backbone of ``net`` (an LPIPS net or a ``FEATURE_BACKBONES`` architecture) into the cache,
    checking its sha256 (the full digest, or torchvision's file-name prefix where only that is known)."""
    import torch.hub

    info = BACKBONES[net] if net in BACKBONES else FEATURE_BACKBONES[net]
    path = checkpoint_dir() / info.filename
    if path.is_file() and sha256_file(path).startswith(info.sha256):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(info.url, str(path), hash_prefix=info.sha256, progress=progress)
    except Exception as exc:
        raise WeightsError(
            f"could not download {info.url} to {path}: {type(exc).__name__}: {exc} "
            f"(copy the file there by hand from a machine with internet access)"
        ) from None
    return path
