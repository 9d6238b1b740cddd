"""Reading and writing media: round trips, formats, ordering, atomicity, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from infusion import video_io
from infusion.errors import InputError
from infusion.video_io import load_video, natural_key, probe, save_video


def random_video(t=5, h=17, w=23, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["clip.mkv", "clip.avi", "clip.webm", "clip.npy", "frames", "frames_dir.d"])
def test_lossless_round_trip_is_bit_exact(tmp_path, name):
    frames = random_video()
    out = save_video(tmp_path / name, frames, fps=12.5)
    back, fps = load_video(out)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    assert np.array_equal(back, frames)
    if name.endswith((".mkv", ".avi", ".webm")):
        assert fps == pytest.approx(12.5)


def test_single_png_image_round_trip(tmp_path):
    frame = random_video(t=1)
    save_video(tmp_path / "one.png", frame)
    back, _ = load_video(tmp_path / "one.png")
    assert np.array_equal(back, frame)


def test_image_path_with_many_frames_is_refused(tmp_path):
    with pytest.raises(InputError, match="one frame but there are 5"):
        save_video(tmp_path / "one.png", random_video())


@pytest.mark.parametrize("size", [(16, 24), (17, 23)])
def test_mp4_writes_even_and_odd_sizes_with_high_quality(tmp_path, size):
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(x * 9 + i * 7) % 256, (y * 11) % 256, (x + y) * 4 % 256], -1)
                       for i in range(6)]).astype(np.uint8)
    save_video(tmp_path / "c.mp4", frames, fps=24)
    back, fps = load_video(tmp_path / "c.mp4")
    assert back.shape == frames.shape and fps == pytest.approx(24)
    mse = np.mean((back.astype(float) - frames) ** 2)
    assert 10 * np.log10(255**2 / mse) > 30
    info = probe(tmp_path / "c.mp4")
    assert info["codec"] == "h264" and info["frames"] == 6 and (info["width"], info["height"]) == (w, h)


def test_gif_round_trip_keeps_shape(tmp_path):
    frames = np.repeat(random_video(t=3, h=8, w=8)[:, :, :, :1], 3, axis=-1)
    save_video(tmp_path / "a.gif", frames, fps=10)
    back, _ = load_video(tmp_path / "a.gif")
    assert back.shape == frames.shape


def test_natural_sort_orders_numbers_by_value(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in (10, 2, 1):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(folder / f"frame{i}.png")
    (folder / ".hidden.png").write_bytes(b"junk")
    (folder / "notes.txt").write_text("ignored")
    frames, _ = load_video(folder)
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]


def test_grey_rgba_and_16bit_frames_are_converted(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 16
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    frames, _ = load_video(tmp_path / "g.png")
    assert frames.shape == (1, 4, 4, 3) and np.array_equal(frames[0, ..., 1], grey)

    rgba = np.dstack([random_video(t=1, h=4, w=4)[0], np.full((4, 4), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    frames, _ = load_video(tmp_path / "a.png")
    assert np.array_equal(frames[0], rgba[..., :3])

    deep = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369)  # 0 .. 65535
    Image.fromarray(deep).save(tmp_path / "d.png")
    frames, _ = load_video(tmp_path / "d.png")
    assert np.array_equal(frames[0, ..., 0], (np.arange(16).reshape(4, 4) * 17).astype(np.uint8))


def test_npy_float_and_grey_arrays(tmp_path):
    arr = np.linspace(0, 1, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "g.npy", arr)
    frames, fps = load_video(tmp_path / "g.npy")
    assert frames.shape == (2, 3, 4, 3) and fps == video_io.DEFAULT_FPS
    assert np.array_equal(frames[..., 0], np.rint(arr * 255).astype(np.uint8))


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_bytes(b"\x00\x01garbage" * 100), "cannot open as a video"),
])
def test_unreadable_videos_name_the_file(tmp_path, make, message):
    path = tmp_path / "broken.mp4"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        load_video(path)
    assert str(path) in str(info.value)


def test_empty_folder_and_bad_arrays(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no frames"):
        load_video(tmp_path / "empty")
    np.save(tmp_path / "zero.npy", np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(InputError, match="holds no frames"):
        load_video(tmp_path / "zero.npy")
    np.save(tmp_path / "range.npy", np.full((1, 4, 4, 3), 2.0))
    with pytest.raises(InputError, match=r"expected \[0, 1\]"):
        load_video(tmp_path / "range.npy")
    np.save(tmp_path / "obj.npy", np.zeros((1, 4, 4, 3), np.int64))
    with pytest.raises(InputError, match="dtype int64"):
        load_video(tmp_path / "obj.npy")


def test_absurd_sizes_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(3000, 2000, 1000, 3))  # sparse
    with pytest.raises(InputError, match="GiB"):
        load_video(path)


def test_frames_of_different_sizes_are_refused(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "0.png")
    Image.fromarray(np.zeros((5, 4, 3), np.uint8)).save(folder / "1.png")
    with pytest.raises(InputError, match="1.png is 4x5"):
        load_video(folder)


def test_truncated_video_is_reported_as_corrupt_or_short(tmp_path):
    frames = random_video(t=30, h=32, w=32)
    save_video(tmp_path / "ok.mkv", frames)
    data = (tmp_path / "ok.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    try:
        back, _ = load_video(tmp_path / "cut.mkv")
    except InputError as exc:
        assert "cut.mkv" in str(exc)
    else:  # a cut container may decode its first frames cleanly
        assert 0 < len(back) < 30 and np.array_equal(back, frames[: len(back)])


def test_writes_are_atomic_on_error_and_interrupt(tmp_path, monkeypatch):
    frames = random_video()
    out = tmp_path / "frames"
    save_video(out, frames)
    original = sorted(p.name for p in out.iterdir())
    calls = {"n": 0}
    real = video_io.write_png

    def failing(path, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(path, frame)

    monkeypatch.setattr(video_io, "write_png", failing)
    with pytest.raises(KeyboardInterrupt):
        save_video(out, frames[::-1])
    assert sorted(p.name for p in out.iterdir()) == original
    assert np.array_equal(load_video(out).frames, frames)  # old result untouched
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]  # no temporary left

    monkeypatch.setattr(video_io, "_write_container", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_video(tmp_path / "x.mp4", frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]


def test_never_writes_over_an_input(tmp_path):
    frames = random_video()
    src = save_video(tmp_path / "in.mkv", frames)
    with pytest.raises(InputError, match="overwrite the input"):
        save_video(src, frames, inputs=[src])
    folder = save_video(tmp_path / "masks", frames)
    with pytest.raises(InputError, match="overwrite the input"):
        save_video(folder, frames, inputs=[folder])
    assert np.array_equal(load_video(src).frames, frames)


def test_refuses_to_replace_a_folder_holding_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds other files"):
        save_video(out, random_video())
    assert (out / "precious.txt").read_text() == "keep me"


def test_probe_reports_frames_size_fps_codec(tmp_path):
    save_video(tmp_path / "c.mkv", random_video(t=7, h=16, w=20), fps=30)
    info = probe(tmp_path / "c.mkv")
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (7, 20, 16, "ffv1")
    assert info["fps"] == pytest.approx(30)
