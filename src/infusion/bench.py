"""``infusion bench``: methods over benchmark cases, quality and cost tables.

A *case* is a folder in the shared format (see ``shared/bench/README.md``)::

    <case>/frames/00000.png ...        RGB frames (the ground truth when the case has one)
    <case>/masks/<variant>/00000.png   255 = region to fill
    <case>/case.json                   kind, tier, ground_truth, fps, ...

A *run* is one (case, mask variant, method, seed); ``--seed 0 1 2`` repeats
the stochastic methods per seed, and the summary then reports how much the
tier's mean ``lpips_hole`` moves between seeds (``lpips_hole_sd``). Each
run goes through :func:`infusion.pipeline.run` in a fresh Python process (``python -m
infusion.bench JOB.json``), so that its peak memory and CPU time are its own;
a run that fails or crashes is recorded and the bench goes on. The pixels
under the mask are erased before the method sees them (by the pipeline).

Written into the output folder:

- ``results.csv``: one row per run (settings, scores, cost, status),
  rewritten atomically after every run; runs already there with status
  ``ok`` and the same settings are not recomputed (unless ``--rerun``);
- ``results.md``: every run, and the mean per tier and method (with the
  seed spread);
- ``quality_vs_time.png``: lpips_hole against wall time, per method;
- ``runs/<case>/<mask>/<method>/`` (``<method>-seed<N>/`` for seeds other
  than 0): ``result.mkv`` (lossless, for exact
  re-scoring), ``result.mp4``, ``side_by_side.mp4`` (input with the mask
  tinted | result | ground truth), ``run.json`` and the worker's ``log.txt``.

``--frames N`` plays every case forwards and backwards until it is ``N``
frames long (:func:`pingpong_frames`), masks and truth alike, and names
its runs ``<case>@<N>``: the benchmark's own footage as a long clip, to
check the memory and time a long video takes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import subprocess
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .errors import InputError

DEFAULT_CASES = Path(__file__).resolve().parents[3] / "shared" / "bench" / "cases"
CASES_ENV = "INFUSION_BENCH_CASES"
TIERS = ("tiny", "medium", "standard", "removal", "long")
METRICS = ("psnr", "ssim", "psnr_hole", "lpips", "lpips_hole", "motion_ratio", "temporal_std", "temporal_std_truth",
           "drift", "drift_truth", "diversity")
COST = ("wall_s", "cpu_s", "peak_rss_mb")
# Where a method reports them (infusion does): seconds spent training and
# sampling and the achieved GFLOP/s of each, to compare with the machine's peak.
SPEED = ("train_s", "sample_s", "train_gflops", "sample_gflops")
FIGURES = (*METRICS, *COST, *SPEED)  # every numeric column, averaged in the summary
COLUMNS = ("case", "tier", "mask", "method", "preset", "seed", "samples", *FIGURES,
           "threads", "settings", "status", "error")
STATUS_OK = "ok"
STATUS_CHANGED = "known_pixels_changed"
RUN_FILE = "run.json"


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", default=None,
                   help=f"folder of cases (default: ${CASES_ENV}, else ../shared/bench/cases)")
    p.add_argument("--methods", nargs="+", default=["infusion"], help="methods to run")
    p.add_argument("--tier", nargs="+", default=None, help="only these tiers (tiny, medium, standard, removal, long)")
    p.add_argument("--case", nargs="+", default=None, help="only cases whose name contains one of these")
    p.add_argument("--mask", nargs="+", default=None, help="only these mask variants")
    p.add_argument("--preset", default=None, help="preset of every method that has presets")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting of every method that has it, or of one method with "
                        "METHOD.KEY=VALUE (repeatable)")
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="one or more seeds; stochastic methods run once per seed and the summary gives "
                        "lpips_hole_sd, the spread of the tier's mean over seeds (default 0)")
    p.add_argument("--samples", type=int, default=1, help="samples per run (diversity when > 1)")
    p.add_argument("-o", "--output", default="bench-out", help="results folder (default bench-out)")
    p.add_argument("--rerun", action="store_true", help="recompute runs already in results.csv")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--frames", type=int, default=0, metavar="N",
                   help="play each case forwards and backwards to N frames (a long-clip check of memory "
                        "and time; runs are named CASE@N)")


# --------------------------------------------------------------------------
# Cases and jobs
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One benchmark case folder and its ``case.json``."""

    name: str
    path: Path
    tier: str
    kind: str
    ground_truth: bool
    fps: float
    masks: tuple[str, ...]


@dataclass
class Job:
    """One run: what the worker process needs, JSON-ready."""

    case: str
    case_dir: str
    tier: str
    ground_truth: bool
    fps: float
    mask: str
    method: str
    preset: Optional[str]
    overrides: dict
    settings: str  # canonical JSON of preset, config, seed, samples: the resume key
    seed: int = 0
    samples: int = 1
    threads: Optional[int] = None
    run_dir: str = ""
    frames: int = 0  # > 0: the case played forwards and backwards to this many frames

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Which row of ``results.csv`` holds this run (see :func:`row_key`)."""
        return (self.case, self.mask, self.method, str(self.seed))


def row_key(row: dict) -> tuple[str, str, str, str]:
    """``(case, mask, method, seed)`` of a ``results.csv`` row, all text."""
    return (row["case"], row["mask"], row["method"], row.get("seed") or "0")


def cases_root(arg: Optional[str] = None) -> Path:
    """The cases folder: ``arg``, else ``$INFUSION_BENCH_CASES``, else :data:`DEFAULT_CASES`."""
    root = Path(arg or os.environ.get(CASES_ENV) or DEFAULT_CASES)
    if not root.is_dir():
        raise InputError(f"{root}: no such cases folder (give --cases DIR or set {CASES_ENV})")
    return root


def read_case(folder: Path) -> Case:
    """Read one case folder; :class:`InputError` naming the file when it is malformed."""
    meta_path = folder / "case.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: cannot read case description ({exc})") from None
    masks = tuple(sorted(p.name for p in (folder / "masks").iterdir() if p.is_dir())) \
        if (folder / "masks").is_dir() else ()
    if not (folder / "frames").is_dir() or not masks:
        raise InputError(f"{folder}: a case needs frames/ and masks/<variant>/ folders")
    return Case(folder.name, folder, str(meta.get("tier", "other")), str(meta.get("kind", "texture")),
                bool(meta.get("ground_truth", True)), float(meta.get("fps", 25)), masks)


def find_cases(root: Path) -> list[Case]:
    """Every case under ``root`` (folders holding a ``case.json``), by name."""
    cases = [read_case(p) for p in sorted(root.iterdir()) if (p / "case.json").is_file()]
    if not cases:
        raise InputError(f"{root}: holds no cases (folders with case.json, frames/ and masks/)")
    return cases


def select_cases(cases: list[Case], tiers=None, names=None) -> list[Case]:
    """Cases of the given tiers whose names contain one of ``names`` (None: no filter)."""
    return [c for c in cases
            if (not tiers or c.tier in tiers) and (not names or any(n in c.name for n in names))]


def split_overrides(overrides: dict, methods: list[str]) -> dict[str, dict]:
    """Dispatch ``--set`` assignments to methods.

    ``key=value`` goes to every method whose config has ``key``;
    ``method.key=value`` to that method only. A key that no chosen method
    has raises :class:`InputError`.
    """
    from dataclasses import fields

    from .methods import get_method

    names = {m: {f.name for f in fields(get_method(m).config_cls)} for m in methods}
    out: dict[str, dict] = {m: {} for m in methods}
    for key, value in overrides.items():
        target, _, field_name = key.rpartition(".")
        field_name = field_name.replace("-", "_")
        chosen = [target] if target else [m for m in methods if field_name in names[m]]
        if target and target not in methods:
            raise InputError(f"--set {key}: method {target!r} is not among --methods {' '.join(methods)}")
        if not chosen:
            raise InputError(f"--set {key}: none of the methods {', '.join(methods)} has a setting {field_name!r}")
        for m in chosen:
            out[m][field_name] = value
    return out


def job_settings(method: str, preset: Optional[str], overrides: dict, seed: int, samples: int) -> dict:
    """What a run of ``method`` is run with: ``preset`` used, resolved ``config``, ``seed``, ``samples``.

    ``preset`` applies only to methods that have presets; deterministic
    methods draw one sample. Bad presets or overrides raise
    :class:`InputError` before anything runs.
    """
    from .config import config_to_dict
    from .methods import get_method

    m = get_method(method)
    used = preset if m.presets else None
    config = m.resolve_config(used, None, overrides)
    return {"preset": used or m.default_preset, "config": config_to_dict(config), "seed": seed,
            "samples": samples if m.stochastic else 1}


def plan_jobs(cases: list[Case], methods: list[str], *, masks=None, preset=None, overrides=None,
              seed: Union[int, Sequence[int]] = 0, samples: int = 1, threads=None,
              out_dir: Path = Path("."), frames: int = 0) -> list[Job]:
    """Every (case, mask variant, method, seed) run, in case order; ``masks`` keeps only those variants.

    ``seed``: one seed or several. Deterministic methods run with the first
    only (more seeds would repeat the same result). Runs with a seed other
    than 0 go to ``runs/CASE/MASK/METHOD-seedN``, beside seed 0's folder.
    ``frames`` > 0: every case played to that length (:func:`pingpong_frames`),
    its runs named ``CASE@frames``.
    """
    if samples < 1:
        raise InputError(f"--samples must be >= 1; got {samples}")
    if frames < 0:
        raise InputError(f"--frames must be >= 0; got {frames}")
    seeds = list(dict.fromkeys([seed] if isinstance(seed, (int, np.integer)) else seed))
    if not seeds or any(not isinstance(sd, (int, np.integer)) or sd < 0 for sd in seeds):
        raise InputError(f"--seed needs one or more non-negative integers; got {seeds}")
    seeds = [int(sd) for sd in seeds]
    per_method = split_overrides(overrides or {}, methods)
    from .methods import get_method

    seeds_of = {m: seeds if get_method(m).stochastic else seeds[:1] for m in methods}
    settings = {(m, sd): job_settings(m, preset, per_method[m], sd, samples) for m in methods for sd in seeds_of[m]}
    jobs = []
    for case in cases:
        name = f"{case.name}@{frames}" if frames else case.name
        for variant in (v for v in case.masks if not masks or v in masks):
            for m in methods:
                for sd in seeds_of[m]:
                    s = settings[(m, sd)]
                    run_dir = out_dir / "runs" / name / variant / (m if sd == 0 else f"{m}-seed{sd}")
                    jobs.append(Job(
                        case=name, case_dir=str(case.path), tier=case.tier, ground_truth=case.ground_truth,
                        fps=case.fps, mask=variant, method=m, preset=s["preset"], overrides=per_method[m],
                        settings=json.dumps(s, sort_keys=True, default=str), seed=sd, samples=s["samples"],
                        threads=threads, run_dir=str(run_dir.resolve()), frames=frames))
    return jobs


def pingpong_frames(frames: int, length: int) -> np.ndarray:
    """Frame indices that play a ``frames``-frame clip forwards, backwards, forwards... for ``length`` frames.

    ``0, 1, ..., frames - 1, frames - 2, ..., 1, 0, 1, ...``: no frame is
    repeated at a turn, so the motion stays continuous. A one-frame clip
    repeats its frame.
    """
    if frames < 1 or length < 1:
        raise ValueError(f"need frames >= 1 and length >= 1; got {frames}, {length}")
    cycle = np.concatenate([np.arange(frames), np.arange(frames - 2, 0, -1)]) if frames > 1 else np.zeros(1, int)
    return np.resize(cycle, length)


# --------------------------------------------------------------------------
# One run (inside the worker process)
# --------------------------------------------------------------------------

def known_pixels_changed(samples: np.ndarray, video: np.ndarray, mask: np.ndarray) -> int:
    """Number of known (unmasked) pixel values that differ between any sample and the input."""
    keep = ~mask[..., None]
    return int(sum(np.count_nonzero((s != video) & keep) for s in samples))


def write_run_videos(run_dir: Path, video: np.ndarray, mask: np.ndarray, result: np.ndarray,
                     job: Job) -> None:
    """``result.mkv`` (lossless), ``result.mp4`` and ``side_by_side.mp4`` of one run."""
    from .video_io import save_video
    from .visualize import overlay_mask, side_by_side

    inputs = [job.case_dir]
    save_video(run_dir / "result.mkv", result, job.fps, inputs=inputs)
    save_video(run_dir / "result.mp4", result, job.fps, inputs=inputs)
    panels = [overlay_mask(video, mask), result] + ([video] if job.ground_truth else [])
    labels = ["input + mask", job.method] + (["truth"] if job.ground_truth else [])
    save_video(run_dir / "side_by_side.mp4", side_by_side(panels, labels), job.fps, inputs=inputs)


def execute_job(job: Job) -> dict:
    """Run one job through :func:`infusion.pipeline.run`, write its videos and score it.

    Returns the run's record: metrics, cost (the pipeline's ``wall_s``,
    ``cpu_s`` and ``peak_rss_mb``, measured before scoring), the number of
    ``segments`` the clip was filled in (:mod:`infusion.segments`) and status.
    """
    from .masks import load_mask, match_mask
    from .metrics.report import evaluate_arrays
    from .pipeline import run
    from .video_io import load_video

    case_dir, run_dir = Path(job.case_dir), Path(job.run_dir)
    video = load_video(case_dir / "frames").frames
    mask_dir = case_dir / "masks" / job.mask
    mask = match_mask(load_mask(mask_dir), video.shape, mask_name=str(mask_dir), video_name=str(case_dir))
    if job.frames:
        order = pingpong_frames(len(video), job.frames)
        video, mask = video[order], mask[order]
    res = run(video, mask, method=job.method, preset=job.preset, overrides=job.overrides, seed=job.seed,
              device="auto", threads=job.threads, samples=job.samples)
    record = {k: res.stats.get(k) for k in (*COST, *SPEED)}
    record["segments"] = len(res.stats.get("segments") or [None])  # a long clip is filled in several
    changed = known_pixels_changed(res.samples, video, mask)
    write_run_videos(run_dir, video, mask, res.video, job)
    samples = res.samples if res.samples.shape[0] > 1 else None
    record.update(evaluate_arrays(res.video, video if job.ground_truth else None, mask, samples=samples))
    record["status"] = STATUS_CHANGED if changed else STATUS_OK
    record["error"] = f"{changed} known pixel values differ from the input" if changed else ""
    return record


def worker_main(job_path: str) -> int:
    """Entry of the worker process: run the job in ``job_path`` and write ``run.json`` beside it.

    Any exception becomes a record with status ``error`` (its traceback goes
    to stderr, i.e. the run's ``log.txt``).
    """
    from .metrics.report import json_ready

    job = Job(**json.loads(Path(job_path).read_text()))
    try:
        record = execute_job(job)
    except Exception as exc:  # a failing method must not stop the bench
        traceback.print_exc()
        record = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
    _write_atomic(Path(job.run_dir) / RUN_FILE, json.dumps(json_ready(record), default=_json_default))
    return 0


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --------------------------------------------------------------------------
# The bench (parent process)
# --------------------------------------------------------------------------

def run_job_subprocess(job: Job) -> dict:
    """Run a job in a fresh ``python -m infusion.bench`` process; return its record.

    A process that dies without writing ``run.json`` (killed, out of
    memory, crashed) gives status ``crashed`` with its exit code.
    """
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_FILE).unlink(missing_ok=True)
    job_file = run_dir / "job.json"
    job_file.write_text(json.dumps(asdict(job), indent=1))
    env = dict(os.environ)
    if job.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            env[var] = str(job.threads)
    with open(run_dir / "log.txt", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "infusion.bench", str(job_file)],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        return json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "crashed", "error": f"worker exited with status {proc.returncode} "
                                               f"(see {run_dir / 'log.txt'})"}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def read_results(path: Path) -> list[dict]:
    """Rows of an existing ``results.csv`` (empty list when absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_results(path: Path, rows: list[dict]) -> None:
    """Write ``results.csv`` atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    _write_atomic(path, buf.getvalue())


def make_row(job: Job, record: dict) -> dict:
    """One CSV row from a job and its record (all values as text)."""
    row = {"case": job.case, "tier": job.tier, "mask": job.mask, "method": job.method, "preset": job.preset,
           "seed": job.seed, "samples": job.samples, "threads": job.threads, "settings": job.settings}
    row.update({k: record.get(k) for k in (*FIGURES, "status", "error")})
    return {k: _cell(row.get(k)) for k in COLUMNS}


def is_done(row: Optional[dict], job: Job) -> bool:
    """True when ``row`` holds a successful run of ``job`` with the same settings."""
    return row is not None and row.get("status") == STATUS_OK and row.get("settings") == job.settings


def progress_line(i: int, n: int, job: Job, row: dict) -> str:
    """One line per run: status and key figures."""
    figures = [f"{k} {float(row[k]):.4g}" for k in ("lpips_hole", "psnr_hole", "motion_ratio", "wall_s",
                                                    "cpu_s", "peak_rss_mb") if row.get(k)]
    status = row["status"] + (f" ({row['error']})" if row.get("error") else "")
    return f"[{i}/{n}] {job_label(job)}: {status}  " + "  ".join(figures)


def job_label(job: Job) -> str:
    """``case/mask method seed N``: how progress lines name a run."""
    return f"{job.case}/{job.mask} {job.method} seed {job.seed}"


def run_bench(jobs: list[Job], out_dir: Path, *, rerun: bool = False,
              runner: Callable[[Job], dict] = run_job_subprocess,
              log: Callable[[str], None] = print) -> list[dict]:
    """Run the jobs not already done, updating ``results.csv`` after each; return all rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    rows = read_results(csv_path)
    index = {row_key(r): i for i, r in enumerate(rows)}
    for i, job in enumerate(jobs, 1):
        old = rows[index[job.key]] if job.key in index else None
        if not rerun and is_done(old, job):
            log(f"[{i}/{len(jobs)}] {job_label(job)}: done before, skipped")
            continue
        row = make_row(job, runner(job))
        if job.key in index:
            rows[index[job.key]] = row
        else:
            index[job.key] = len(rows)
            rows.append(row)
        write_results(csv_path, rows)
        log(progress_line(i, len(jobs), job, row))
    return rows


# --------------------------------------------------------------------------
# Tables and plot
# --------------------------------------------------------------------------

def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _markdown(header: list[str], lines: Iterable[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def _tier_order(tier: str) -> tuple:
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), tier)


def seed_spread(members: list[dict], key: str = "lpips_hole") -> Optional[float]:
    """Sample standard deviation (ddof 1) over seeds of the mean of ``key``.

    Each seed's mean is taken over the (case, mask) pairs that every seed
    ran, so that the means compare like with like. None with fewer than two
    seeds or no common pair with a value.
    """
    by_seed: dict[str, dict[tuple[str, str], float]] = {}
    for r in members:
        value = _number(r.get(key))
        if value is not None:
            by_seed.setdefault(row_key(r)[3], {})[(r["case"], r["mask"])] = value
    if len(by_seed) < 2:
        return None
    common = set.intersection(*(set(v) for v in by_seed.values()))
    if not common:
        return None
    means = [np.mean([values[p] for p in sorted(common)]) for values in by_seed.values()]
    return float(np.std(means, ddof=1))


def summary_rows(rows: list[dict]) -> list[dict]:
    """Mean of every metric and cost per (tier, method), over the runs with status ok.

    Also ``seeds`` (how many) and ``lpips_hole_sd`` (:func:`seed_spread`,
    empty with a single seed).
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("status") == STATUS_OK:
            groups.setdefault((r["tier"], r["method"]), []).append(r)
    out = []
    for (tier, method), members in sorted(groups.items(), key=lambda kv: (_tier_order(kv[0][0]), kv[0][1])):
        spread = seed_spread(members)
        mean = {"tier": tier, "method": method, "runs": str(len(members)),
                "seeds": str(len({row_key(m)[3] for m in members})),
                "lpips_hole_sd": "" if spread is None else f"{spread:.2g}"}
        for k in FIGURES:
            values = [v for v in (_number(m.get(k)) for m in members) if v is not None]
            mean[k] = f"{np.mean(values):.4g}" if values else ""
        out.append(mean)
    return out


_AFTER_LPIPS_HOLE = FIGURES.index("lpips_hole") + 1
# Columns of the summary: the spread over seeds sits next to the mean it is about.
SUMMARY_KEYS = ["tier", "method", "runs", "seeds", *FIGURES[:_AFTER_LPIPS_HOLE], "lpips_hole_sd",
                *FIGURES[_AFTER_LPIPS_HOLE:]]


def summary_table(rows: list[dict]) -> str:
    """Markdown table of :func:`summary_rows`."""
    keys = SUMMARY_KEYS
    return _markdown(keys, ([s[k] for k in keys] for s in summary_rows(rows)))


def runs_table(rows: list[dict]) -> str:
    """Markdown table of every run."""
    keys = ["case", "mask", "method", "preset", "seed", "status", *FIGURES]
    ordered = sorted(rows, key=lambda r: (_tier_order(r["tier"]), r["case"], r["mask"], r["method"],
                                          int(row_key(r)[3])))
    return _markdown(keys, ([r.get(k, "") for k in keys] for r in ordered))


def write_markdown(path: Path, rows: list[dict]) -> None:
    """``results.md``: mean per tier and method, then every run."""
    text = ("# infusion bench\n\n## Mean per tier and method (runs with status ok)\n\n"
            f"{summary_table(rows)}\n\n## Every run\n\n{runs_table(rows)}\n")
    _write_atomic(path, text)


def plot_quality_vs_time(path: Path, rows: list[dict]) -> None:
    """``quality_vs_time.png``: lpips_hole (lower is better) against wall seconds (log), one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    methods = sorted({r["method"] for r in rows})
    times = []
    for i, method in enumerate(methods):
        pts = [(_number(r.get("wall_s")), _number(r.get("lpips_hole"))) for r in rows
               if r["method"] == method and r.get("status") == STATUS_OK]
        pts = [(max(t, 1e-3), q) for t, q in pts if t is not None and q is not None]
        if pts:
            t, q = zip(*pts)
            times += t
            ax.scatter(t, q, s=18, color=f"C{i % 10}", label=method, alpha=0.8)
    ax.set_xscale("log")
    if times:  # whole decades, so that the axis always has labelled major ticks
        ax.set_xlim(10 ** math.floor(math.log10(min(times))), 10 ** math.ceil(math.log10(max(times)) + 1e-9))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("wall time per run (s, log scale)")
    ax.set_ylabel("lpips_hole (lower is better)")
    ax.set_title("infusion bench: quality vs time")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def write_reports(out_dir: Path, rows: list[dict]) -> None:
    """``results.md`` and ``quality_vs_time.png`` from the rows of ``results.csv``."""
    write_markdown(out_dir / "results.md", rows)
    plot_quality_vs_time(out_dir / "quality_vs_time.png", rows)


# --------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------

def run_bench_command(args) -> int:
    """``infusion bench``: plan the runs, run the missing ones, write and print the tables."""
    from .config import parse_assignments
    from .methods import get_method

    for m in args.methods:
        get_method(m)  # unknown methods fail before anything runs
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1; got {args.threads}")
    root = cases_root(args.cases)
    cases = select_cases(find_cases(root), args.tier, args.case)
    out_dir = Path(args.output)
    jobs = plan_jobs(cases, list(dict.fromkeys(args.methods)), masks=args.mask, preset=args.preset,
                     overrides=parse_assignments(args.overrides), seed=args.seed, samples=args.samples,
                     threads=args.threads, out_dir=out_dir, frames=args.frames)
    if not jobs:
        raise InputError(f"{root}: no case matches the filters (tier {args.tier}, case {args.case}, "
                         f"mask {args.mask})")
    if any(job.ground_truth for job in jobs):
        from .metrics.lpips import weights_path

        weights_path()  # scoring needs the LPIPS weights: say so before running anything
    print(f"infusion bench: {len(jobs)} runs ({len(cases)} cases from {root}), results in {out_dir}/",
          flush=True)
    rows = run_bench(jobs, out_dir, rerun=args.rerun, log=lambda s: print(s, flush=True))
    write_reports(out_dir, rows)
    print(f"\n{summary_table(rows)}\n\nwrote {out_dir / 'results.csv'}, {out_dir / 'results.md'}, "
          f"{out_dir / 'quality_vs_time.png'}")
    planned = {job.key for job in jobs}
    failed = [r for r in rows if row_key(r) in planned and r.get("status") != STATUS_OK]
    return 1 if failed else 0


if __name__ == "__main__":  # the worker: python -m infusion.bench JOB.json
    raise SystemExit(worker_main(sys.argv[1]))
