"""The ``infusion`` command: inpaint, info, methods, demo, and its error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from infusion.cli import main
from infusion.video_io import load_video, save_video

TINY_SETTINGS = ["--set", "width=8", "--set", "levels=2", "--set", "num_intervals=2", "--set",
                 "steps_per_interval=2", "--set", "sample_steps_per_interval=1", "--set", "num_timesteps=50",
                 "--set", "start_timestep=25"]  # the fast preset starts at t=300: within 50 steps


@pytest.fixture
def clip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    video = save_video(tmp_path / "in.mkv", frames, fps=15)
    mask = np.zeros((24, 32), np.uint8)
    mask[8:16, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return frames, video, tmp_path / "mask.png", mask > 0


def test_inpaint_writes_result_and_settings(clip, tmp_path, capsys):
    frames, video, mask_path, mask = clip
    out = tmp_path / "out.mkv"
    assert main(["inpaint", str(video), str(mask_path), "-o", str(out), "--method", "telea", "-q"]) == 0
    result, fps = load_video(out)
    assert fps == pytest.approx(15)
    assert np.array_equal(result[:, ~mask], frames[:, ~mask])
    summary = json.loads((tmp_path / "out.mkv.json").read_text())
    assert summary["method"] == "telea" and summary["config"] == {"radius": 3}
    assert summary["outputs"]["result"] == str(out) and summary["inputs"]["frames"] == 5


def test_inpaint_with_infusion_samples_average_and_frames_folder(clip, tmp_path):
    frames, video, mask_path, mask = clip
    out = tmp_path / "res"
    code = main(["inpaint", str(video), str(mask_path), "-o", str(out), "--samples", "2", "--average",
                 "--seed", "3", "-q", "--keyframes", "on", "--resample-jump", "1", "--resample-count", "2",
                 *TINY_SETTINGS])
    assert code == 0
    for path in (out, tmp_path / "res_sample2", tmp_path / "res_average"):
        result, _ = load_video(path)
        assert result.shape == frames.shape and np.array_equal(result[:, ~mask], frames[:, ~mask])
    summary = json.loads((tmp_path / "res.json").read_text())
    assert summary["config"]["width"] == 8 and summary["seed"] == 3 and summary["samples"] == 2
    assert (summary["config"]["keyframes"], summary["config"]["resample_jump"],
            summary["config"]["resample_count"]) == ("on", 1, 2)
    assert not (tmp_path / "res.work").exists()


@pytest.mark.parametrize("args, message", [
    (["inpaint", "{d}/missing.mp4", "{d}/mask.png", "-o", "{d}/o.mp4"], "missing.mp4: no such file"),
    (["inpaint", "{d}/in.mkv", "{d}/small.png", "-o", "{d}/o.mp4"], "small.png is 8x8 but {d}/in.mkv is 32x24"),
    (["inpaint", "{d}/in.mkv", "{d}/full.png", "-o", "{d}/o.mp4", "--method", "telea"], "covers every pixel"),
    (["inpaint", "{d}/in.mkv", "{d}/mask.png", "-o", "{d}/in.mkv"], "overwrite the input"),
    (["inpaint", "{d}/in.mkv", "{d}/mask.png", "-o", "{d}/o.mp4", "--set", "width=-3"], "width must be >= 1"),
    (["inpaint", "{d}/in.mkv", "{d}/mask.png", "-o", "{d}/nodir/o.mp4"], "does not exist"),
    (["info", "{d}/mask.txt"], "cannot open as a video"),
    (["inpaint", "{d}/in.mkv", "{d}/mask.png", "-o", "{d}/o.mp4", "--method", "telea", "--keyframes", "on"],
     "apply to --method infusion, not telea"),
])
def test_errors_are_one_clear_line(clip, tmp_path, capsys, args, message):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.full((24, 32), 255, np.uint8)).save(tmp_path / "full.png")
    (tmp_path / "mask.txt").write_text("not a video")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([a.format(d=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and err.startswith("infusion: error: ")
    assert message.format(d=tmp_path) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written


def test_empty_mask_copies_the_input_and_says_so(clip, tmp_path, capsys):
    frames, video, _, _ = clip
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(tmp_path / "none.png")
    assert main(["inpaint", str(video), str(tmp_path / "none.png"), "-o", str(tmp_path / "o.mkv")]) == 0
    assert "nothing to fill" in capsys.readouterr().err
    assert np.array_equal(load_video(tmp_path / "o.mkv").frames, frames)


def test_info_and_methods(clip, capsys):
    _, video, _, _ = clip
    assert main(["info", str(video), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (5, 32, 24, "ffv1")
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "infusion:" in out and "preset paper" in out and "telea:" in out


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit):
        main(["inpaint", "--help"])
    text = capsys.readouterr().out
    for word in ("--method", "--preset", "--seed", "--device", "--resume", "--samples", "--dilate"):
        assert word in text


def test_demo_runs_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--size", "24", "--frames", "6", "-q", *TINY_SETTINGS]) == 0
    for name in ("input.mp4", "result.mp4", "ground_truth.mp4", "comparison.mp4", "result.mp4.json"):
        assert (out / name).exists(), name
    comparison, _ = load_video(out / "comparison.mp4")
    assert comparison.shape[0] == 6 and comparison.shape[2] > 3 * comparison.shape[1] // 2
    assert json.loads((out / "result.mp4.json").read_text())["method"] == "infusion"
