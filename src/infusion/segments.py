"""Long clips in overlapping segments of bounded memory.

A method holds several float copies of the clip it fills (the infusion
sampler about 85 bytes per voxel at its peak: 8.8 GB for 1000 frames of
240x432), so a clip longer than a budget is filled one segment of frames
at a time (:func:`plan_segments`). Each segment after the first starts with
the last ``overlap`` frames of the previous one's result, given as known
pixels: the fill continues from what is already written instead of being
blended with another fill. The method then never holds more than one
segment, whatever the length; the clip's own bytes (the input and the
result, in their dtype) remain. When the method works on smaller frames
(:mod:`infusion.resolution`), both sizes bound a segment.
"""

from __future__ import annotations

import numbers
from typing import Optional

from .errors import InputError

# Voxels (frames x height x width) per segment when the length is chosen
# automatically: about 4 GB at the infusion sampler's peak.
SEGMENT_VOXELS = 48_000_000
# The same at the clip's own size when the method works on smaller frames
# (infusion.resolution): the pipeline holds about 7 bytes per such voxel of a
# segment (its 8-bit frames, mask and result), 2.7 GB for this many.
NATIVE_SEGMENT_VOXELS = 8 * SEGMENT_VOXELS
# Frames of the previous segment's result a segment starts from.
SEGMENT_OVERLAP = 16
# Shortest automatic segment: whatever the frame size, a segment moves on
# by at least 3 overlaps.
MIN_SEGMENT_FRAMES = 4 * SEGMENT_OVERLAP


def segment_length(frames: int, height: int, width: int, segment_frames: Optional[int] = None,
                   work: Optional[tuple[int, int]] = None) -> int:
    """Frames per segment for a clip: ``segment_frames`` if given (0: the whole clip),
    else ``SEGMENT_VOXELS`` worth of frames, at least ``MIN_SEGMENT_FRAMES``.

    ``work`` ``(h, w)``: the smaller frame size the method works at, if any;
    the segment then holds ``SEGMENT_VOXELS`` at that size and
    ``NATIVE_SEGMENT_VOXELS`` at ``height x width``, whichever is fewer
    frames. The result is ``frames`` when the clip is not to be split.
    """
    if segment_frames is None:
        fit = SEGMENT_VOXELS // max(1, height * width)
        if work is not None:
            fit = min(SEGMENT_VOXELS // max(1, work[0] * work[1]), NATIVE_SEGMENT_VOXELS // max(1, height * width))
        segment_frames = max(MIN_SEGMENT_FRAMES, fit)
    elif isinstance(segment_frames, bool) or not isinstance(segment_frames, numbers.Integral) or segment_frames < 0:
        raise InputError(f"segment_frames must be a non-negative integer (0: never split); got {segment_frames!r}")
    segment_frames = int(segment_frames)
    if 0 < segment_frames <= SEGMENT_OVERLAP:
        raise InputError(f"segment_frames must be 0 or more than the {SEGMENT_OVERLAP} frames segments "
                         f"overlap by; got {segment_frames}")
    if segment_frames == 0 or segment_frames >= frames:
        return frames
    return segment_frames


def plan_segments(frames: int, length: int, overlap: int = SEGMENT_OVERLAP) -> list[tuple[int, int]]:
    """Spans ``(start, stop)`` of at most ``length`` frames covering ``0 .. frames - 1``.

    Consecutive spans share exactly ``overlap`` frames and have the same
    length to within one frame, the first ones the longer (so the first is
    the longest); one span ``(0, frames)`` when ``length >=
    frames``. ``length`` must exceed ``overlap``.
    """
    if length >= frames:
        return [(0, frames)]
    if length <= overlap:
        raise ValueError("a segment must be longer than the overlap")
    count = -(-(frames - overlap) // (length - overlap))
    step, extra = divmod(frames - overlap, count)  # new frames per segment: step, +1 for the first `extra`
    spans, start = [], 0
    for k in range(count):
        stop = start + overlap + step + (1 if k < extra else 0)
        spans.append((start, stop))
        start = stop - overlap
    return spans
