"""VMAF per frame, computed by libvmaf itself: streamed in ``lpips compare``, or through FFmpeg's filter.

Two ways in, one library:

- :class:`VmafStream` (what ``lpips compare -m vmaf`` uses) calls libvmaf's C API through ``ctypes``: the
  decoded planes of each frame pair go straight into ``vmaf_read_pictures`` and each frame's score is read
  with ``vmaf_score_at_index`` as soon as libvmaf has it. A frame's score needs the next reference frame
  (the ``motion2`` feature is the smaller of the motion to the previous and to the next frame), so scores
  arrive one frame late, and the last frame's at :meth:`VmafStream.flush`. The library is the one PyAV's
  wheels bundle (``av.libs/libvmaf-*.so``; Python >= 3.12 wheels from av 19 on), else a system libvmaf 3.x.
- :func:`vmaf_frames` / :class:`VmafScorer` push ``av.VideoFrame`` pairs through FFmpeg's ``libvmaf`` filter
  in a PyAV graph and read its JSON log at the end: the path FFmpeg users know, used by the tests as the
  reference for :class:`VmafStream` (they agree exactly: same library, model and settings).

Settings equal FFmpeg's filter defaults: model ``vmaf_v0.6.1`` (built into libvmaf), flags 0,
``n_subsample`` 1, pictures at the stream's bit depth. Without libvmaf, asking for ``vmaf`` is a
:class:`lpipscli.errors.UsageError` saying what to install.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import glob
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lpipscli.errors import UsageError
from lpipscli.metrics.lavfi import CompareFilter, filter_available

__all__ = [
    "VMAF_DEFAULTS", "VMAF_PIX_FMTS", "VmafScorer", "VmafSequences", "VmafStream", "libvmaf_version",
    "require_vmaf", "vmaf_available", "vmaf_frames", "vmaf_planes",
]

VMAF_DEFAULTS = {"reference": "libvmaf (C API; equal to FFmpeg's libvmaf filter)",
                 "model": "vmaf_v0.6.1 (libvmaf built-in, FFmpeg's default)",
                 "pictures": "decoded YUV planes at the stream's bit depth, no conversion",
                 "pooling": "per frame (summaries: harmonic mean is the VMAF convention)"}

#: pixel formats libvmaf accepts
VMAF_PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                 "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le", "yuv444p16le")


def vmaf_available() -> bool:
    """Whether libvmaf 3.x can be loaded (PyAV's bundled copy or a system one)."""
    return _library() is not None


def libvmaf_version() -> str | None:
    """The loaded libvmaf's version string, or None without libvmaf."""
    lib = _library()
    return lib.vmaf_version().decode() if lib is not None else None


def require_vmaf() -> None:
    """Raise a UsageError naming what to install when libvmaf is missing; return otherwise."""
    if vmaf_available():
        return
    try:
        import av

        have = f"av {av.__version__}"
    except ImportError:
        have = "no PyAV"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    raise UsageError(
        f"vmaf needs libvmaf, which this installation lacks (Python {python}, {have}): "
        "PyAV's wheels bundle libvmaf for Python >= 3.12 from av 19 on; use Python 3.12 or newer and "
        "`pip install 'av>=19'`"
    )


class VmafScorer:
    """Streaming VMAF: push ``av.VideoFrame`` pairs, then :meth:`finish` for the per-frame scores.

    Args:
        model: libvmaf ``model`` option (``None``: libvmaf's default, ``version=vmaf_v0.6.1``).
        threads: libvmaf worker threads (``n_threads``; 0: libvmaf's default).

    Raises:
        UsageError: libvmaf is not available (see :func:`require_vmaf`).
    """

    def __init__(self, *, model: str | None = None, threads: int = 0):
        if not filter_available("libvmaf"):
            require_vmaf()
            raise UsageError("vmaf: libvmaf is installed but PyAV's FFmpeg has no libvmaf filter")
        handle, self._log = tempfile.mkstemp(prefix="lpipscli-vmaf-", suffix=".json")
        os.close(handle)
        args = [f"log_path={_escape(self._log)}", "log_fmt=json"]
        if model:
            args.append(f"model={_escape(model)}")
        if threads:
            args.append(f"n_threads={int(threads)}")
        self._filter = CompareFilter("libvmaf", ":".join(args), collect=True)
        self._count = 0

    def push(self, ref, dist) -> None:
        """Add one pair (``av.VideoFrame``, same size and a :data:`VMAF_PIX_FMTS` format)."""
        if ref.format.name not in VMAF_PIX_FMTS:
            raise UsageError(f"vmaf: pixel format {ref.format.name} is not one libvmaf reads "
                             f"({', '.join(VMAF_PIX_FMTS)})")
        self._filter.push(ref, dist)
        self._count += 1

    def finish(self) -> np.ndarray:
        """Flush libvmaf and return float64 ``(N,)`` VMAF scores, one per pushed pair, in order."""
        try:
            self._filter.close()
            if not self._count:
                return np.zeros(0, dtype=np.float64)
            with open(self._log, encoding="utf-8") as file:
                log = json.load(file)
            frames = sorted(log["frames"], key=lambda f: f["frameNum"])
            scores = np.array([f["metrics"]["vmaf"] for f in frames], dtype=np.float64)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self._log)
        if scores.shape[0] != self._count:
            raise RuntimeError(f"libvmaf scored {scores.shape[0]} frames, {self._count} were pushed")
        return scores


def vmaf_frames(ref_frames: Iterable, dist_frames: Iterable, *, model: str | None = None,
                threads: int = 0) -> np.ndarray:
    """VMAF of each pair of ``av.VideoFrame`` (reference, distorted): float64 ``(N,)``.

    Raises:
        UsageError: libvmaf is not available (message says what to install) or a format it cannot read.
    """
    scorer = VmafScorer(model=model, threads=threads)
    for ref, dist in zip(ref_frames, dist_frames, strict=True):
        scorer.push(ref, dist)
    return scorer.finish()


def vmaf_planes(ref_planes: Iterable[Sequence[np.ndarray]], dist_planes: Iterable[Sequence[np.ndarray]],
                pix_fmt: str, **kwargs) -> np.ndarray:
    """VMAF of decoded planes (:attr:`lpipscli.io.av_video.Frame.planes`) in ``pix_fmt``: float64 ``(N,)``."""
    from lpipscli.io.av_video import planes_to_av_frame

    return vmaf_frames((planes_to_av_frame(p, pix_fmt) for p in ref_planes),
                       (planes_to_av_frame(p, pix_fmt) for p in dist_planes), **kwargs)


def _escape(value: str) -> str:
    """Quote a value for an FFmpeg filter option string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "'\\''") + "'"


# --- libvmaf's C API (libvmaf 3.x headers: libvmaf.h, model.h, picture.h) ----------------------------------

#: built-in models whose ``motion2`` is streamed (see :class:`VmafStream`): both use the motion defaults
STREAMED_MODELS = ("vmaf_v0.6.1", "vmaf_v0.6.1neg")

_PIX_FMTS = {"420": 1, "422": 2, "444": 3, "400": 4}  # enum VmafPixelFormat


class _Configuration(ctypes.Structure):
    _fields_ = [("log_level", ctypes.c_int), ("n_threads", ctypes.c_uint), ("n_subsample", ctypes.c_uint),
                ("cpumask", ctypes.c_uint64), ("gpumask", ctypes.c_uint64)]


class _ModelConfig(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("flags", ctypes.c_uint64)]


class _Picture(ctypes.Structure):
    # the 3.x prefix; ``_reserve`` leaves room for fields later versions append (libvmaf fills the struct)
    _fields_ = [("pix_fmt", ctypes.c_int), ("bpc", ctypes.c_uint), ("w", ctypes.c_uint * 3),
                ("h", ctypes.c_uint * 3), ("stride", ctypes.c_ssize_t * 3), ("data", ctypes.c_void_p * 3),
                ("ref", ctypes.c_void_p), ("priv", ctypes.c_void_p), ("_reserve", ctypes.c_uint8 * 128)]


def _candidates() -> list[str]:
    """Where libvmaf may be: next to PyAV's bundled FFmpeg first (the one its filter uses), then the system's."""
    found = []
    with contextlib.suppress(ImportError):
        import av

        root = Path(av.__file__).resolve().parent
        for folder in (root.parent / "av.libs", root / ".dylibs", root.parent / "av" / ".dylibs"):
            found.extend(sorted(glob.glob(str(folder / "libvmaf*"))))
    system = ctypes.util.find_library("vmaf")
    if system:
        found.append(system)
    return found


@functools.cache
def _library():
    """libvmaf with the prototypes used here, or None when no libvmaf 3.x loads."""
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.vmaf_version.restype = ctypes.c_char_p
            if not lib.vmaf_version().decode().lstrip("v").startswith("3."):
                continue
        except (OSError, AttributeError):
            continue
        lib.vmaf_init.argtypes = [ctypes.POINTER(ctypes.c_void_p), _Configuration]
        lib.vmaf_model_load.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_ModelConfig),
                                        ctypes.c_char_p]
        lib.vmaf_use_features_from_model.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.vmaf_picture_alloc.argtypes = [ctypes.POINTER(_Picture), ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                           ctypes.c_uint]
        lib.vmaf_picture_unref.argtypes = [ctypes.POINTER(_Picture)]
        lib.vmaf_read_pictures.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Picture), ctypes.POINTER(_Picture),
                                           ctypes.c_uint]
        lib.vmaf_score_at_index.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_double),
                                            ctypes.c_uint]
        lib.vmaf_feature_score_at_index.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                    ctypes.POINTER(ctypes.c_double), ctypes.c_uint]
        lib.vmaf_import_feature_score.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_uint]
        lib.vmaf_model_destroy.argtypes = [ctypes.c_void_p]
        lib.vmaf_model_destroy.restype = None
        lib.vmaf_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _layout(planes: Sequence[np.ndarray]) -> str:
    """libvmaf's chroma layout of planes ``(Y, U, V)`` or ``(Y,)``."""
    height, width = planes[0].shape
    if len(planes) == 1:
        return "400"
    if len(planes) != 3 or planes[1].shape != planes[2].shape:
        raise UsageError(f"vmaf: needs Y or Y, U, V planes, got {len(planes)} planes")
    ch, cw = planes[1].shape
    for name, (eh, ew) in {"444": (height, width), "422": (height, -(-width // 2)),
                           "420": (-(-height // 2), -(-width // 2))}.items():
        if (ch, cw) == (eh, ew):
            return name
    raise UsageError(f"vmaf: chroma planes {cw}x{ch} for a {width}x{height} frame are not 4:2:0, 4:2:2 or 4:4:4")


_SAD = b"VMAF_integer_feature_motion_sad_score"
_MOTION2 = b"VMAF_integer_feature_motion2_score"


class VmafStream:
    """One reference/distorted stream pair scored by libvmaf, frame by frame.

    Push frame pairs in stream order with :meth:`push`; it returns ``(index, score)`` for every frame whose
    score libvmaf has (a frame's arrives once the next frame is pushed). :meth:`flush` ends the stream
    and returns the rest. Index ``k`` is the ``k``-th pushed pair.

    Streaming: libvmaf 3.2 writes the ``motion2`` feature of every frame only when the stream is flushed
    (its ``integer_motion`` extractor keeps the per-frame SAD, ``VMAF_integer_feature_motion_sad_score``,
    and derives ``motion2[i] = min(sad[i], sad[i + 1])``, 0 for frame 0 and ``sad[i]`` for the last frame,
    in its ``flush``). So that scores need not wait for the end of the stream, each frame's ``motion2``
    is handed to libvmaf (``vmaf_import_feature_score``) by that same rule as soon as the next frame's SAD
    exists, and at the flush libvmaf adds the last frame's itself. The models this is done for
    (:data:`STREAMED_MODELS`) use the extractor's default options; any other model, and libvmaf versions
    that write ``motion2`` while extracting (3.0), get libvmaf's own values, at the end where need be.
    The tests compare every frame with FFmpeg's ``libvmaf`` filter, which only flushes.

    Args:
        model: a libvmaf built-in model version (FFmpeg's default ``vmaf_v0.6.1``; ``vmaf_v0.6.1neg``...).
        threads: libvmaf worker threads (0: extract in the calling thread, as FFmpeg's filter by default).

    Raises:
        UsageError: libvmaf is missing, or the model is unknown to it.
    """

    def __init__(self, *, model: str = "vmaf_v0.6.1", threads: int = 0):
        require_vmaf()
        self._lib = lib = _library()
        self._ctx = ctypes.c_void_p()
        self._model = ctypes.c_void_p()
        config = _Configuration(log_level=0, n_threads=int(threads), n_subsample=1, cpumask=0, gpumask=0)
        if lib.vmaf_init(ctypes.byref(self._ctx), config):
            raise RuntimeError("vmaf: libvmaf could not be initialised")
        model_config = _ModelConfig(name=b"vmaf", flags=0)
        if lib.vmaf_model_load(ctypes.byref(self._model), ctypes.byref(model_config), model.encode()):
            lib.vmaf_close(self._ctx)
            self._ctx = None
            raise UsageError(f"vmaf: libvmaf {libvmaf_version()} has no built-in model {model!r}")
        if lib.vmaf_use_features_from_model(self._ctx, self._model):
            self.close()
            raise RuntimeError(f"vmaf: libvmaf could not set up the features of model {model}")
        self.model = model
        self._stream_motion = model in STREAMED_MODELS
        self._pushed = 0
        self._next = 0  # first index without a score yet
        self._flushed = False
        self._shape = None

    def push(self, ref: Sequence[np.ndarray], dist: Sequence[np.ndarray], bit_depth: int) -> list[tuple[int, float]]:
        """Add one frame pair: planes ``(Y, U, V)`` (or ``(Y,)``), integer samples of ``bit_depth`` bits."""
        if self._flushed:
            raise RuntimeError("vmaf: stream already flushed")
        shape = (tuple(np.shape(p) for p in ref), bit_depth)
        if tuple(np.shape(p) for p in dist) != shape[0]:
            raise UsageError("vmaf: reference and distorted planes differ in size")
        if self._shape is None:
            if not 8 <= bit_depth <= 16:
                raise UsageError(f"vmaf: {bit_depth}-bit samples (libvmaf reads 8 to 16 bits)")
            self._format = _PIX_FMTS[_layout(ref)]
            self._shape = shape
        elif shape != self._shape:
            raise UsageError("vmaf: frame size, layout or bit depth changed within the stream")
        pictures = [self._picture(planes, bit_depth) for planes in (ref, dist)]
        status = self._lib.vmaf_read_pictures(self._ctx, ctypes.byref(pictures[0]), ctypes.byref(pictures[1]),
                                              self._pushed)
        if status:
            raise RuntimeError(f"vmaf: libvmaf could not read frame {self._pushed} (error {status})")
        self._pushed += 1
        if self._stream_motion:
            self._import_motion(self._pushed - 1)
        return self._ready()

    def _import_motion(self, index: int) -> None:
        """libvmaf's flush rule for ``motion2``, applied to frame ``index - 1`` once frame ``index`` has a SAD."""
        lib, value = self._lib, ctypes.c_double()
        if lib.vmaf_feature_score_at_index(self._ctx, _MOTION2, ctypes.byref(value), index) == 0:
            self._stream_motion = False  # this libvmaf writes motion2 itself while extracting (3.0)
            return
        if lib.vmaf_feature_score_at_index(self._ctx, _SAD, ctypes.byref(value), index):
            self._stream_motion = False  # no SAD feature: wait for libvmaf's flush
            return
        if index == 0:
            lib.vmaf_import_feature_score(self._ctx, _MOTION2, 0.0, 0)
            return
        now = value.value
        if index >= 2:
            if lib.vmaf_feature_score_at_index(self._ctx, _SAD, ctypes.byref(value), index - 1):
                self._stream_motion = False
                return
            lib.vmaf_import_feature_score(self._ctx, _MOTION2, min(value.value, now), index - 1)

    def flush(self) -> list[tuple[int, float]]:
        """End the stream: the scores of every frame not returned yet."""
        if not self._flushed and self._ctx:
            self._flushed = True
            if self._pushed:
                self._lib.vmaf_read_pictures(self._ctx, None, None, 0)
        scores = self._ready()
        if self._next < self._pushed:
            raise RuntimeError(f"vmaf: libvmaf gave no score for frame {self._next} of {self._pushed}")
        return scores

    def close(self) -> None:
        """Free libvmaf's context (scores not read are lost)."""
        if self._model:
            self._lib.vmaf_model_destroy(self._model)
            self._model = ctypes.c_void_p()
        if self._ctx:
            self._lib.vmaf_close(self._ctx)
            self._ctx = None

    def __enter__(self) -> VmafStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def _ready(self) -> list[tuple[int, float]]:
        out = []
        score = ctypes.c_double()
        while self._next < self._pushed:
            if self._lib.vmaf_score_at_index(self._ctx, self._model, ctypes.byref(score), self._next):
                break
            out.append((self._next, score.value))
            self._next += 1
        return out

    def _picture(self, planes: Sequence[np.ndarray], bit_depth: int) -> _Picture:
        picture = _Picture()
        height, width = np.shape(planes[0])
        if self._lib.vmaf_picture_alloc(ctypes.byref(picture), self._format, bit_depth, width, height):
            raise MemoryError("vmaf: libvmaf could not allocate a picture")
        dtype = np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")
        for k, plane in enumerate(planes):
            plane = np.asarray(plane)
            rows, cols = int(picture.h[k]), int(picture.w[k])
            stride = int(picture.stride[k])
            buffer = (ctypes.c_uint8 * (stride * rows)).from_address(picture.data[k])
            target = np.frombuffer(buffer, dtype=dtype).reshape(rows, stride // dtype.itemsize)[:, :cols]
            if plane.shape != (rows, cols):
                self._lib.vmaf_picture_unref(ctypes.byref(picture))
                raise UsageError(f"vmaf: plane {k} is {plane.shape[1]}x{plane.shape[0]}, libvmaf expects {cols}x{rows}")
            target[...] = plane
        return picture


class VmafSequences:
    """VMAF for every stream pair of a run (the engine's ``vmaf`` runner): one :class:`VmafStream` per pair.

    :meth:`push` takes one frame pair of a stream and returns a ticket; :meth:`collect` returns
    ``(ticket, score)`` for every ticket whose score is ready and ``(ticket, message)`` for the frames of a
    stream that failed; :meth:`finish` flushes every stream and returns the rest.
    """

    def __init__(self, *, model: str = "vmaf_v0.6.1", threads: int = 0):
        require_vmaf()
        self.model = model
        self.threads = threads
        self._streams: dict = {}
        self._tickets: dict = {}  # stream key -> ticket of each pushed frame, in order
        self._ready: list[tuple[int, float | str]] = []
        self._count = 0

    def push(self, stream, ref: Sequence[np.ndarray], dist: Sequence[np.ndarray], bit_depth: int) -> int:
        ticket = self._count
        self._count += 1
        tickets = self._tickets.setdefault(stream, [])
        if stream not in self._streams:
            self._streams[stream] = VmafStream(model=self.model, threads=self.threads)
        vmaf = self._streams[stream]
        tickets.append(ticket)
        if vmaf is None:  # the stream failed earlier
            self._ready.append((ticket, "an earlier frame of this stream failed"))
            return ticket
        try:
            self._resolve(stream, vmaf.push(ref, dist, bit_depth))
        except (UsageError, RuntimeError, MemoryError) as exc:
            self._fail(stream, str(exc).removeprefix("vmaf: "))
        return ticket

    def collect(self) -> list[tuple[int, float | str]]:
        ready, self._ready = self._ready, []
        return ready

    def finish(self) -> list[tuple[int, float | str]]:
        for stream, vmaf in list(self._streams.items()):
            if vmaf is None:
                continue
            try:
                self._resolve(stream, vmaf.flush())
            except RuntimeError as exc:
                self._fail(stream, str(exc).removeprefix("vmaf: "))
            finally:
                vmaf.close()
            self._streams[stream] = None
        return self.collect()

    def _resolve(self, stream, scores: list[tuple[int, float]]) -> None:
        tickets = self._tickets[stream]
        self._ready.extend((tickets[index], score) for index, score in scores)

    def _fail(self, stream, message: str) -> None:
        vmaf = self._streams.get(stream)
        done = vmaf._next if vmaf is not None else 0
        if vmaf is not None:
            vmaf.close()
        self._streams[stream] = None
        self._ready.extend((t, message) for t in self._tickets[stream][done:])
