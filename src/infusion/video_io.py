"""Reading and writing videos, frame folders, arrays and images.

Every reader returns frames as ``uint8`` arrays of shape ``(T, H, W, 3)``
(RGB) plus a frame rate. Every writer is atomic: it writes a temporary file or
folder beside the target and renames it into place only once everything is
written, so an error or Ctrl-C never leaves a half-written result, and it
refuses to write over one of the job's inputs.

Formats, chosen by the path:

==========================  ===================================  ========
path                        read                                 write
==========================  ===================================  ========
``.mp4 .m4v .mov``          any codec PyAV decodes               H.264 (CRF 12, lossy, high quality)
``.mkv .avi``               any codec                            FFV1, RGB, lossless
``.webm``                   any codec                            VP9 lossless (RGB)
``.gif``                    yes                                  GIF (256 colours, lossy)
``.npy``                    uint8/uint16/bool/float arrays       uint8 array, lossless
folder                      PNG/JPG/BMP/TIFF/WebP frames,        PNG frames ``00000.png ...``,
                            natural order (2 before 10)          lossless
``.png .jpg ...`` (1 file)  a single frame                       a single frame (PNG lossless)
==========================  ===================================  ========
"""

from __future__ import annotations

import fractions
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from .errors import InputError

DEFAULT_FPS = 25.0
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
LOSSLESS_SUFFIXES = {".mkv", ".avi", ".webm", ".npy", ".png"}
# Refuse inputs whose decoded frames would not fit comfortably in memory.
MAX_DECODED_BYTES = 12 * 1024**3
MAX_SIDE = 16384
_CONTAINER_FORMATS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov",
    ".mkv": "matroska", ".avi": "avi", ".webm": "webm",
}
_FRAME_NAME = re.compile(r"^\d{5,}\.png$")


class VideoData(NamedTuple):
    """Frames of a video and its frame rate.

    ``frames`` is ``uint8 (T, H, W, 3)`` RGB; ``fps`` is frames per second
    (``DEFAULT_FPS`` for frame folders, arrays and images, which carry none).
    """

    frames: np.ndarray
    fps: float


@dataclass(frozen=True)
class RawFrames:
    """Frames as stored, before conversion to RGB or to a mask.

    ``frames``: ``(T, H, W, C)`` with C in {1, 2, 3, 4} (grey, grey+alpha,
    RGB, RGBA), dtype uint8, uint16, bool or float. ``indexed`` is True when
    the values are palette indices (palette PNG/GIF read for a mask), so that
    any non-zero index means "object".
    """

    frames: np.ndarray
    fps: float
    indexed: bool = False


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value ("f2" before "f10")."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _as_path(path) -> Path:
    return Path(os.fspath(path)).expanduser()


def describe_kind(path) -> str:
    """Name the kind of media a path is read or written as: 'video', 'frames', 'array' or 'image'."""
    p = _as_path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        return "frames"
    if suffix == ".npy":
        return "array"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if not p.exists():
        return "frames"  # an output path with no known extension: a frame folder
    return "video"  # let the container probe decide


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

def _check_size(path: Path, t: int, h: int, w: int, c: int = 3) -> None:
    if t == 0:
        raise InputError(f"{path}: holds no frames")
    if h < 1 or w < 1:
        raise InputError(f"{path}: frames have an empty size ({w}x{h})")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise InputError(f"{path}: frame size {w}x{h} is too large (at most {MAX_SIDE} px a side)")
    nbytes = t * h * w * c
    if nbytes > MAX_DECODED_BYTES:
        raise InputError(
            f"{path}: {t} frames of {w}x{h} need {nbytes / 1024**3:.1f} GiB decoded, more than the "
            f"{MAX_DECODED_BYTES / 1024**3:.0f} GiB limit: trim or downscale the clip first"
        )


def _image_to_array(img, path: Path, for_mask: bool) -> tuple[np.ndarray, bool]:
    """PIL image -> (H, W, C) array and whether it holds palette indices."""
    mode = img.mode
    if mode == "P" and for_mask:
        return np.asarray(img)[..., None], True
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=bool)[..., None], False
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(img)
        return (arr[..., None] if arr.ndim == 2 else arr), False
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img)
        if arr.dtype != np.uint16:
            if arr.min() < 0 or arr.max() > 65535:
                raise InputError(f"{path}: 32-bit integer image with values outside 0..65535")
            arr = arr.astype(np.uint16)
        return arr[..., None], False
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None], False
    # CMYK, YCbCr, LAB, HSV...
    return np.asarray(img.convert("RGB")), False


def _read_image(path: Path, for_mask: bool) -> tuple[np.ndarray, bool]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return _image_to_array(img, path, for_mask)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (hidden files skipped)."""
    files = [
        f for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda f: natural_key(f.name))


def _read_folder(folder: Path, for_mask: bool) -> RawFrames:
    files = list_frame_files(folder)
    if not files:
        raise InputError(
            f"{folder}: folder holds no frames (expected image files: {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    frames, indexed = [], []
    for f in files:
        arr, idx = _read_image(f, for_mask)
        if not frames:
            _check_size(folder, len(files), arr.shape[0], arr.shape[1])
        elif arr.shape[:2] != frames[0].shape[:2]:
            raise InputError(
                f"{folder}: frame {f.name} is {arr.shape[1]}x{arr.shape[0]} but {files[0].name} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}: all frames must have the same size"
            )
        frames.append(arr)
        indexed.append(idx)
    indexed_all = all(indexed)
    if any(indexed) and not indexed_all:  # palette and plain frames mixed: read all as colours
        frames = [_read_image(f, False)[0] for f in files]
    if len({a.shape[-1] for a in frames}) > 1:
        frames = [_to_rgb_any(a, folder) for a in frames]
    if len({a.dtype for a in frames}) > 1:
        frames = [_to_uint8(a, folder) for a in frames]
    return RawFrames(np.stack(frames), DEFAULT_FPS, indexed=indexed_all)


def _read_npy(path: Path) -> RawFrames:
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read .npy array ({exc})") from None
    if arr.ndim == 2:
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        # (T, H, W) grey stack, unless the last axis looks like colour channels of one image.
        arr = arr[None] if arr.shape[-1] in (3, 4) and arr.shape[0] > 4 else arr[..., None]
    elif arr.ndim != 4:
        raise InputError(f"{path}: array of shape {arr.shape} is not a video (expected (T, H, W[, C]))")
    if arr.shape[-1] not in (1, 2, 3, 4):
        raise InputError(f"{path}: array of shape {arr.shape} has {arr.shape[-1]} channels (expected 1, 3 or 4)")
    if not (arr.dtype == bool or arr.dtype == np.uint8 or arr.dtype == np.uint16 or arr.dtype.kind == "f"):
        raise InputError(f"{path}: array dtype {arr.dtype} is not supported (use uint8, uint16, bool or float in [0, 1])")
    _check_size(path, arr.shape[0], arr.shape[1], arr.shape[2], c=arr.shape[3])
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{path}: array holds NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(f"{path}: float array has values in [{lo:g}, {hi:g}]; expected [0, 1]")
    return RawFrames(arr, DEFAULT_FPS)


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot open as a video ({exc})") from None


def _read_container(path: Path) -> RawFrames:
    import av

    container = _open_container(path)
    try:
        if not container.streams.video:
            raise InputError(f"{path}: holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        h, w = stream.codec_context.height, stream.codec_context.width
        if stream.frames:
            _check_size(path, stream.frames, h, w)
        fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
        frames = []
        try:
            for frame in container.decode(stream):
                arr = frame.to_ndarray(format="rgb24")
                if frames and arr.shape != frames[0].shape:
                    raise InputError(f"{path}: frame {len(frames)} changes size mid-stream")
                frames.append(arr)
                if len(frames) * arr.nbytes > MAX_DECODED_BYTES:
                    _check_size(path, len(frames), arr.shape[0], arr.shape[1])
        except av.FFmpegError as exc:
            raise InputError(f"{path}: video is corrupt: decoding failed after {len(frames)} frames ({exc})") from None
    finally:
        container.close()
    if not frames:
        raise InputError(f"{path}: holds no frames (the video stream decoded to nothing)")
    return RawFrames(np.stack(frames), fps)


def read_raw(path, *, for_mask: bool = False) -> RawFrames:
    """Read frames as stored (see :class:`RawFrames`), from any supported path.

    Raises :class:`InputError` naming the file for a missing, unreadable,
    corrupt or empty input.
    """
    p = _as_path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_folder(p, for_mask)
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        return _read_npy(p)
    if suffix in IMAGE_SUFFIXES:
        arr, indexed = _read_image(p, for_mask)
        _check_size(p, 1, arr.shape[0], arr.shape[1])
        return RawFrames(arr[None], DEFAULT_FPS, indexed=indexed)
    if suffix == ".gif" and for_mask:
        # Palette GIF masks: PyAV would expand the palette; PIL keeps indices.
        return _read_gif_frames(p)
    return _read_container(p)


def _read_gif_frames(path: Path) -> RawFrames:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as img:
            duration = img.info.get("duration") or 0
            frames = [np.asarray(f.convert("L"))[..., None] for f in ImageSequence.Iterator(img)]
    except OSError as exc:
        raise InputError(f"{path}: cannot read GIF ({exc})") from None
    _check_size(path, len(frames), *frames[0].shape[:2]) if frames else _check_size(path, 0, 1, 1)
    fps = 1000.0 / duration if duration else DEFAULT_FPS
    return RawFrames(np.stack(frames), fps)


def _to_uint8(arr: np.ndarray, path) -> np.ndarray:
    """Scale any supported dtype to uint8 with rounding."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.dtype.kind == "f":
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    raise InputError(f"{path}: unsupported sample type {arr.dtype}")


def _to_rgb_any(arr: np.ndarray, path) -> np.ndarray:
    """(…, C) with C in 1..4 -> (…, 3); alpha is dropped, grey replicated."""
    c = arr.shape[-1]
    if c == 3:
        return arr
    if c == 4:
        return arr[..., :3]
    if c in (1, 2):
        return np.repeat(arr[..., :1], 3, axis=-1)
    raise InputError(f"{path}: {c} channels cannot be read as RGB")


def load_video(path) -> VideoData:
    """Read a video, frame folder, ``.npy`` array or image as RGB frames.

    Parameters
    ----------
    path : str or Path
        Video file (mp4/avi/mov/mkv/webm/gif...), folder of image frames
        (natural order), ``.npy`` array ``(T, H, W[, C])`` or single image.

    Returns
    -------
    VideoData
        ``frames``: ``uint8 (T, H, W, 3)`` RGB; grey is replicated, alpha
        dropped, 16-bit and float samples scaled to 8 bits. ``fps``: float.
    """
    raw = read_raw(path)
    frames = _to_uint8(_to_rgb_any(raw.frames, path), path)
    return VideoData(np.ascontiguousarray(frames), raw.fps)


def probe(path) -> dict:
    """Describe a media path without decoding all of it: frames, size, fps, codec...

    Frame counts of containers come from the stream header when present,
    otherwise from a count of decoded packets.
    """
    p = _as_path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    kind = describe_kind(p)
    if kind in ("frames", "array", "image"):
        raw = read_raw(p)
        t, h, w, c = raw.frames.shape
        info = {"path": str(p), "kind": kind, "frames": t, "width": w, "height": h,
                "fps": raw.fps, "channels": c, "dtype": str(raw.frames.dtype)}
        if kind == "frames":
            info["files"] = [f.name for f in list_frame_files(p)[:1]] + (["..."] if t > 1 else [])
        return info
    container = _open_container(p)
    try:
        if not container.streams.video:
            raise InputError(f"{p}: holds no video stream")
        s = container.streams.video[0]
        frames = s.frames
        if not frames:
            frames = sum(1 for pkt in container.demux(s) if pkt.size)
        cc = s.codec_context
        return {
            "path": str(p), "kind": "video", "container": container.format.name,
            "codec": cc.name, "pix_fmt": cc.pix_fmt, "frames": int(frames),
            "width": cc.width, "height": cc.height,
            "fps": float(s.average_rate) if s.average_rate else None,
            "duration_s": float(container.duration / 1e6) if container.duration else None,
        }
    finally:
        container.close()


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------

def _same_or_inside(a: Path, b: Path) -> bool:
    """True if path ``a`` is ``b`` or lies inside folder ``b`` (resolved)."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def check_output_path(out, inputs: Sequence = ()) -> Path:
    """Refuse an output path that would overwrite or sit inside one of ``inputs``."""
    o = _as_path(out)
    for inp in inputs:
        if inp is None:
            continue
        i = _as_path(inp)
        if not i.exists():
            continue
        if _same_or_inside(o, i) or (o.exists() and o.is_dir() and _same_or_inside(i, o)):
            raise InputError(f"{o}: output would overwrite the input {i}; choose another output path")
    if o.exists() and o.is_dir() and describe_kind(o) == "frames" and o.suffix.lower() in VIDEO_SUFFIXES:
        raise InputError(f"{o}: is a folder, cannot write a video file there")
    parent = o.parent
    if not parent.exists():
        raise InputError(f"{o}: output folder {parent} does not exist")
    return o


@contextmanager
def atomic_path(target: Path, *, is_dir: bool) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place on success.

    On any exception (KeyboardInterrupt included) the temporary file or
    folder is removed and ``target`` is left as it was.
    """
    tmp = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        if is_dir:
            tmp.mkdir()
        yield tmp
        if is_dir and target.exists():
            _replace_frame_folder(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def _replace_frame_folder(new: Path, target: Path) -> None:
    if not target.is_dir():
        raise InputError(f"{target}: exists and is not a folder; cannot write frames there")
    foreign = [f.name for f in target.iterdir() if not _FRAME_NAME.match(f.name)]
    if foreign:
        raise InputError(
            f"{target}: folder exists and holds other files ({', '.join(sorted(foreign)[:3])}...); "
            "refusing to replace it: choose an empty or new output folder"
        )
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def check_video_array(video, name: str = "video") -> np.ndarray:
    """Validate a video array: uint8 or float in [0, 1], shape ``(T, H, W, 3)`` or ``(H, W, 3)``."""
    video = np.asarray(video)
    if video.ndim == 3 and video.shape[-1] == 3:
        video = video[None]
    if video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(f"{name}: expected frames of shape (T, H, W, 3); got {video.shape}")
    if video.shape[0] == 0 or video.shape[1] == 0 or video.shape[2] == 0:
        raise InputError(f"{name}: has no pixels (shape {video.shape})")
    if video.dtype == np.uint8:
        return video
    if video.dtype.kind == "f":
        if not np.isfinite(video).all():
            raise InputError(f"{name}: holds NaN or infinite values")
        if video.min() < 0 or video.max() > 1:
            raise InputError(f"{name}: float frames must lie in [0, 1]; got [{video.min():g}, {video.max():g}]")
        return video
    raise InputError(f"{name}: frames must be uint8 or float in [0, 1]; got dtype {video.dtype}")


def to_float(video: np.ndarray) -> np.ndarray:
    """uint8 or float frames -> float32 in [0, 1]."""
    if video.dtype == np.uint8:
        out = video.astype(np.float32)
        out /= 255.0  # in place: no second clip-sized temporary
        return out
    return video.astype(np.float32, copy=False)


def _validate_frames(frames: np.ndarray) -> np.ndarray:
    """Frames to write -> contiguous uint8 ``(T, H, W, 3)``; floats are clipped to [0, 1] first."""
    frames = np.asarray(frames)
    if frames.dtype.kind == "f":
        frames = np.clip(np.nan_to_num(frames), 0.0, 1.0)
    frames = check_video_array(frames, "frames to write")
    return np.ascontiguousarray(_to_uint8(frames, "frames to write"))


def _write_container(tmp: Path, suffix: str, frames: np.ndarray, fps: float, crf: int) -> None:
    import av

    t, h, w, _ = frames.shape
    rate = fractions.Fraction(fps).limit_denominator(1001)
    container = av.open(str(tmp), "w", format=_CONTAINER_FORMATS[suffix])
    try:
        if suffix in (".mkv", ".avi"):
            stream = container.add_stream("ffv1", rate=rate)
            stream.pix_fmt = "bgr0"
        elif suffix == ".webm":
            stream = container.add_stream("libvpx-vp9", rate=rate, options={"lossless": "1", "row-mt": "1"})
            stream.pix_fmt = "gbrp"
        else:
            # H.264: 4:2:0 needs even sizes; odd sizes keep their size with 4:4:4.
            even = h % 2 == 0 and w % 2 == 0
            stream = container.add_stream(
                "libx264", rate=rate, options={"crf": str(crf), "preset": "medium"}
            )
            stream.pix_fmt = "yuv420p" if even else "yuv444p"
        stream.width, stream.height = w, h
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()


def _write_gif(tmp: Path, frames: np.ndarray, fps: float) -> None:
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                 duration=max(1, round(1000.0 / fps)), loop=0)


def write_png(path: Path, frame: np.ndarray) -> None:
    """Write one uint8 RGB frame as a lossless PNG."""
    import cv2

    ok = cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"{path}: cannot write PNG")


def save_video(path, frames: np.ndarray, fps: float = DEFAULT_FPS, *, crf: int = 12,
               inputs: Sequence = ()) -> Path:
    """Write frames to ``path``, the format following its extension (see module doc).

    Parameters
    ----------
    path : str or Path
        Output path. A video extension writes a video; ``.npy`` an array; an
        image extension a single frame; anything else a folder of
        ``00000.png ...`` frames.
    frames : ndarray
        ``uint8 (T, H, W, 3)`` (or float in [0, 1], rounded to 8 bits).
    fps : float
        Frame rate stored in video containers.
    crf : int
        H.264 quality for ``.mp4/.mov/.m4v`` (0 best ... 51 worst).
    inputs : paths
        The job's inputs: writing over (or inside) one of them is refused.

    The write is atomic: nothing appears at ``path`` unless it completes.
    """
    frames = _validate_frames(frames)
    if not (fps > 0 and np.isfinite(fps)):
        raise InputError(f"frame rate must be positive; got {fps}")
    out = check_output_path(path, inputs)
    suffix = out.suffix.lower()
    if suffix in _CONTAINER_FORMATS:
        with atomic_path(out, is_dir=False) as tmp:
            _write_container(tmp, suffix, frames, fps, crf)
    elif suffix == ".gif":
        with atomic_path(out, is_dir=False) as tmp:
            _write_gif(tmp, frames, fps)
    elif suffix == ".npy":
        with atomic_path(out, is_dir=False) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, frames)
    elif suffix in IMAGE_SUFFIXES:
        if frames.shape[0] != 1:
            raise InputError(
                f"{out}: an image path holds one frame but there are {frames.shape[0]}; "
                "give a folder path (frames are written as 00000.png ...) or a video path"
            )
        from PIL import Image

        with atomic_path(out, is_dir=False) as tmp:
            Image.fromarray(frames[0]).save(tmp, format=Image.registered_extensions()[suffix])
    else:
        with atomic_path(out, is_dir=True) as tmp:
            for i, f in enumerate(frames):
                write_png(tmp / f"{i:05d}.png", f)
    return out
