"""infusion: video inpainting and object removal by internal diffusion.

Quick start::

    import infusion
    video, fps = infusion.load_video("clip.mp4")
    mask = infusion.load_mask("mask.png", dilate=4)      # 255 = fill
    result = infusion.inpaint(video, mask, seed=0)       # uint8 (T, H, W, 3)
    infusion.save_video("out.mp4", result, fps)

See :func:`infusion.inpaint`, :func:`infusion.run` (samples, stats, config)
and :func:`infusion.inpaint_file` (files in, files out, as the CLI does).
"""

from ._version import __version__
from .api import inpaint, inpaint_file
from .config import INFUSION_PRESETS, InfusionConfig, OpenCVConfig
from .errors import InfusionError, InputError, ResumeError
from .masks import dilate_mask, load_mask
from .methods import available as available_methods
from .pipeline import InpaintResult, run
from .video_io import VideoData, load_video, probe, save_video

__all__ = [
    "__version__", "inpaint", "inpaint_file", "run", "InpaintResult",
    "load_video", "load_mask", "save_video", "probe", "dilate_mask", "VideoData",
    "InfusionConfig", "OpenCVConfig", "INFUSION_PRESETS", "available_methods",
    "InfusionError", "InputError", "ResumeError",
]
