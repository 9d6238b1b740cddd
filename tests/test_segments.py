"""Long clips in overlapping segments: the plan, the continuation from the
previous segment, resume, and the options' errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infusion.cli import main
from infusion.errors import InputError, ResumeError
from infusion.pipeline import run
from infusion.segments import (MIN_SEGMENT_FRAMES, NATIVE_SEGMENT_VOXELS, SEGMENT_OVERLAP, SEGMENT_VOXELS, plan_segments,
                               segment_length)
from infusion.video_io import load_video, save_video

from test_infusion_method import Interrupt, fill, texture


@pytest.mark.parametrize("frames, length, overlap", [
    (1000, 462, 16), (50, 30, 16), (40, 24, 16), (17, 2, 1), (100, 99, 16), (101, 100, 0), (33, 20, 19)])
def test_segments_cover_the_clip_with_exact_overlaps(frames, length, overlap):
    spans = plan_segments(frames, length, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == frames
    for a, b in zip(spans, spans[1:]):
        assert a[1] - b[0] == overlap
    sizes = [b - a for a, b in spans]
    assert max(sizes) <= length and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # the first is the longest (run's log line relies on it)
    # as few segments as the length allows: one fewer could not cover the clip
    assert overlap + (len(spans) - 1) * (length - overlap) < frames


def test_segment_plan_closed_form():
    assert plan_segments(1000, 462, 16) == [(0, 344), (328, 672), (656, 1000)]
    assert plan_segments(50, 30, 16) == [(0, 28), (12, 39), (23, 50)]
    assert plan_segments(200, 200) == [(0, 200)] == plan_segments(200, 500)
    with pytest.raises(ValueError):
        plan_segments(100, 16, 16)


def test_segment_length_rules():
    assert segment_length(1000, 240, 432) == SEGMENT_VOXELS // (240 * 432) == 462
    assert segment_length(400, 240, 432) == 400  # fits: not split
    assert segment_length(5000, 1080, 1920) == MIN_SEGMENT_FRAMES
    # worked smaller: bounded at both sizes
    assert segment_length(1000, 240, 432, work=(240, 432)) == 462  # the same size: as above
    assert segment_length(1000, 1080, 1920, work=(259, 460)) == NATIVE_SEGMENT_VOXELS // (1080 * 1920) == 185
    assert segment_length(1000, 480, 864, work=(240, 432)) == 462  # 8 x 48M native voxels allow 925 frames
    assert segment_length(5000, 2160, 3840, work=(240, 432)) == MIN_SEGMENT_FRAMES  # 4K: 46, at least 64
    assert segment_length(1000, 240, 432, 0) == 1000
    assert segment_length(1000, 240, 432, 100) == segment_length(1000, 240, 432, np.int64(100)) == 100
    for bad in (-1, SEGMENT_OVERLAP, 2.5, True):
        with pytest.raises(InputError, match="segment_frames"):
            segment_length(1000, 240, 432, bad)


def _segment_inputs(video, out, mask, spans, k):
    """Segment ``k`` as it is given to the method: its frames shared with
    segment ``k - 1`` taken from ``out`` and known."""
    a, b = spans[k]
    seg, hole = video[a:b].copy(), mask[a:b].copy()
    if k:
        shared = spans[k - 1][1] - a
        seg[:shared], hole[:shared] = out[a:a + shared], False
    return seg, hole


def test_each_segment_continues_from_the_previous_result():
    """A deterministic method's segmented fill equals, segment by segment, the
    method run directly on that segment with the previous result's frames known."""
    video, mask = texture(t=50)
    res = run(video, mask, method="harmonic", segment_frames=30)
    out = res.samples[0]
    spans = plan_segments(50, 30)
    assert res.stats["segments"] == [list(s) for s in spans] and len(spans) == 3
    assert np.array_equal(out[:, ~mask[0]], video[:, ~mask[0]])
    for k in range(len(spans)):
        seg, hole = _segment_inputs(video, out, mask, spans, k)
        direct = run(seg, hole, method="harmonic", segment_frames=0).samples[0]
        assert np.array_equal(direct, out[spans[k][0]:spans[k][1]])
    whole = run(video, mask, method="harmonic", segment_frames=0)
    assert "segments" not in whole.stats
    # as far from the truth as the unsplit fill, and on average within a grey level of it
    split_err = np.abs(out.astype(float) - video)[mask].mean()
    whole_err = np.abs(whole.samples[0].astype(float) - video)[mask].mean()
    assert split_err <= 1.01 * whole_err
    assert np.abs(out.astype(float) - whole.samples[0])[mask].mean() < 1.0


def test_segmented_infusion_never_sees_the_hidden_content_and_is_reproducible():
    video, mask = texture(t=40)
    other = video.copy()
    other[mask] = np.random.default_rng(5).integers(0, 256, other[mask].shape, dtype=np.uint8)
    a = fill(video, mask, seed=4, samples=2, segment_frames=24, average=True)
    b = fill(other, mask, seed=4, samples=2, segment_frames=24, average=True)
    assert len(a.stats["segments"]) == 3 and a.stats["train_s"] > 0
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.average, b.average)
    assert np.array_equal(a.samples[:, :, ~mask[0]], np.broadcast_to(video[:, ~mask[0]], (2,) + video[:, ~mask[0]].shape))
    assert not np.array_equal(a.samples[0], a.samples[1])
    # the average of a split clip is that of the written samples, rounded
    mean = np.rint(a.samples.astype(np.float64).mean(axis=0))
    assert np.abs(a.average[mask].astype(int) - mean[mask]).max() <= 1
    assert np.array_equal(a.average[~mask], video[~mask])
    # sample 1 of a split clip is drawn with seed + 1: the first sample of a run with that seed
    c = fill(video, mask, seed=5, segment_frames=24)
    assert np.array_equal(c.samples[0], a.samples[1])


def test_segmented_run_resumes_where_it_stopped(tmp_path):
    """Interrupted in the second segment: the first is read back from the work
    folder, the second continues from its checkpoint, and the result is the
    uninterrupted run's."""
    video, mask = texture(t=40)
    reference = fill(video, mask, seed=2, segment_frames=24).samples
    wd = tmp_path / "work"
    with pytest.raises(KeyboardInterrupt):
        fill(video, mask, seed=2, segment_frames=24, work_dir=wd, progress=Interrupt(26, "sigint"))
    assert (wd / "sample1-segment1.npy").exists() and not (wd / "sample1-segment1").exists()
    assert (wd / "sample1-segment2" / "checkpoint.pt").exists()
    with pytest.raises(ResumeError, match="differs in segments"):  # another split is another job
        fill(video, mask, seed=2, segment_frames=30, work_dir=wd, resume=True)
    resumed = fill(video, mask, seed=2, segment_frames=24, work_dir=wd, resume=True)
    assert np.array_equal(resumed.samples, reference)
    # the stats of the segment read back are kept
    assert [s["frames"] for s in resumed.stats["segment_stats"]] == [[0, 24], [8, 32], [16, 40]]
    assert resumed.stats["train_s"] == round(sum(s["train_s"] for s in resumed.stats["segment_stats"]), 2)
    assert not wd.exists()


def test_a_first_segment_with_nothing_known_is_not_split():
    video, mask = texture(t=40)
    mask[:24] = True
    res = run(video, mask, method="harmonic", segment_frames=24, progress=lambda e: None)
    assert "segments" not in res.stats
    assert np.array_equal(res.samples[0][~mask], video[~mask])


def test_cli_segment_frames(tmp_path):
    video, mask = texture(t=40)
    src = save_video(tmp_path / "in.mkv", video, fps=10)
    np.save(tmp_path / "mask.npy", mask)
    out = tmp_path / "out.mkv"
    assert main(["inpaint", str(src), str(tmp_path / "mask.npy"), "-o", str(out), "--method", "harmonic",
                 "--segment-frames", "24", "-q"]) == 0
    summary = json.loads((tmp_path / "out.mkv.json").read_text())
    assert summary["stats"]["segments"] == [[0, 24], [8, 32], [16, 40]]
    result, _ = load_video(out)
    frames, _ = load_video(src)
    assert np.array_equal(result[:, ~mask[0]], frames[:, ~mask[0]])
    assert main(["inpaint", str(src), str(tmp_path / "mask.npy"), "-o", str(tmp_path / "o2.mkv"),
                 "--method", "harmonic", "--segment-frames", "8", "-q"]) == 2
