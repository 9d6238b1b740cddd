"""The ``infusion`` command.

    infusion inpaint VIDEO MASK -o OUT [--method M] [--preset P] [--seed N] ...
    infusion info VIDEO
    infusion demo [-o FOLDER]
    infusion eval RESULT GROUND_TRUTH MASK [--json]
    infusion bench [--cases DIR] [--methods ...] [--tier ...] [-o FOLDER]
    infusion methods

Errors in the user's input are printed as one line naming the file and the
problem (exit status 2); Ctrl-C exits with status 130 and leaves a
resumable work folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._version import __version__
from .errors import InfusionError, InputError

EXAMPLES = """\
examples:
  infusion inpaint clip.mp4 mask.png -o clean.mp4            remove a static-masked object
  infusion inpaint clip.mp4 masks/ -o clean/ --dilate 4      per-frame masks, PNG frames out
  infusion inpaint clip.mp4 mask.mp4 -o out.mkv --samples 4 --average
  infusion inpaint clip.mp4 mask.png -o out.mp4 --resume     continue an interrupted run
  infusion inpaint clip.mp4 mask.png -o out.mp4 --method telea   quick classical fill
  infusion demo                                              try it on a generated clip
"""


def _add_job_options(p: argparse.ArgumentParser) -> None:
    from .methods import available

    p.add_argument("--method", default="infusion", choices=available(),
                   help="inpainting method (default: infusion; see 'infusion methods')")
    p.add_argument("--preset", default=None,
                   help="named settings of the method (infusion: fast [default], reference, paper)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one setting of the preset, e.g. --set steps_per_interval=200 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same output (default 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infusion",
        description="Remove objects from videos and repair damaged regions by training a small "
                    "diffusion model on the video itself.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"infusion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("inpaint", help="fill the masked region of a video",
                       description="Fill the region where MASK is white (255) in VIDEO and write OUT. "
                                   "VIDEO and MASK may be video files, folders of frames, .npy arrays or "
                                   "images; a single mask image applies to every frame.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", help="input video, frame folder, .npy or image")
    p.add_argument("mask", help="mask: white/255 (or 1) = fill; video, folder, .npy or one image")
    p.add_argument("-o", "--output", required=True,
                   help="result: .mp4/.mov (H.264), .mkv/.avi (FFV1 lossless), .webm (VP9 lossless), "
                        ".gif, .npy, or a folder of PNG frames")
    _add_job_options(p)
    p.add_argument("--dilate", type=int, default=0, metavar="PX", help="grow the mask by PX pixels")
    p.add_argument("--samples", type=int, default=1, help="draw N different fills (OUT, OUT_sample2, ...)")
    p.add_argument("--average", action="store_true", help="also write the mean of the samples (OUT_average)")
    p.add_argument("--work-dir", default=None,
                   help="checkpoint folder (default: OUT.work, removed after success)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its work folder")
    p.add_argument("--restart", action="store_true", help="discard an interrupted run and start over")
    p.add_argument("--keep-work", action="store_true", help="keep the work folder after success")
    p.add_argument("--segment-frames", type=int, default=None, metavar="N",
                   help="fill long clips in overlapping segments of at most N frames, each continuing the one "
                        "before (bounds memory; default: about 48 million voxels per segment, 0: never split)")
    p.add_argument("--crf", type=int, default=12, help="H.264 quality for .mp4/.mov (0 best, default 12)")
    p.add_argument("--fps", type=float, default=None, help="frame rate of the output (default: the input's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    g = p.add_argument_group("infusion sampling (shortcuts for --set)")
    g.add_argument("--keyframes", choices=("auto", "on", "off"), default=None,
                   help="fill far-apart keyframes first, then the frames between them: auto (when the "
                        "hole outlasts the network's temporal reach), on, off")
    g.add_argument("--resample-jump", type=int, default=None, metavar="J",
                   help="RePaint resampling: every J steps go back up J steps and come down again")
    g.add_argument("--resample-count", type=int, default=None, metavar="R",
                   help="RePaint resampling: pass over each jump R times in all (1 = no resampling)")

    p = sub.add_parser("info", help="frames, size, fps and codec of a video")
    p.add_argument("video", nargs="+")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("demo", help="inpaint a generated dynamic texture and write a comparison video")
    p.add_argument("-o", "--output", default="infusion-demo", help="folder for the demo files")
    p.add_argument("--method", default=None, help="method (default: the best available, infusion)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--frames", type=int, default=24, help="number of frames (default 24)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting of the method's default preset")
    p.add_argument("-q", "--quiet", action="store_true")

    p = sub.add_parser("methods", help="list methods, presets and their settings")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("eval", help="score a result against the ground truth (PSNR, SSIM, LPIPS, motion)")
    p.add_argument("result")
    p.add_argument("ground_truth")
    p.add_argument("mask")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--dilate", type=int, default=0, metavar="PX")

    p = sub.add_parser("bench", help="run methods over benchmark cases and tabulate quality and cost")
    from .bench import add_bench_arguments

    add_bench_arguments(p)
    return parser


def _cmd_inpaint(args) -> int:
    from .api import inpaint_file
    from .config import parse_assignments
    from .progress import Progress, TqdmProgress

    shortcuts = [f"{key}={value}" for key, value in (
        ("keyframes", args.keyframes), ("resample_jump", args.resample_jump),
        ("resample_count", args.resample_count)) if value is not None]
    if shortcuts and args.method != "infusion":
        raise InputError(f"--keyframes/--resample-jump/--resample-count apply to --method infusion, "
                         f"not {args.method}")
    inpaint_file(
        args.video, args.mask, args.output, method=args.method, preset=args.preset,
        overrides=parse_assignments(args.overrides + shortcuts), seed=args.seed, device=args.device,
        threads=args.threads, samples=args.samples, average=args.average, dilate=args.dilate,
        work_dir=args.work_dir, resume=args.resume, restart=args.restart, keep_work=args.keep_work,
        crf=args.crf, fps=args.fps, segment_frames=args.segment_frames,
        progress=Progress() if args.quiet else TqdmProgress())
    return 0


def _cmd_info(args) -> int:
    from .video_io import probe

    infos = [probe(v) for v in args.video]
    if args.json:
        print(json.dumps(infos if len(infos) > 1 else infos[0], indent=2))
        return 0
    for info in infos:
        print(info["path"])
        for k, v in info.items():
            if k != "path":
                print(f"  {k:>10}: {v:.3f}" if isinstance(v, float) else f"  {k:>10}: {v}")
    return 0


def _cmd_methods(args) -> int:
    from .config import config_to_dict
    from .methods import available, get_method

    rows = {}
    for name in available():
        m = get_method(name)
        presets = {p: config_to_dict(c) for p, c in m.presets.items()} or {"(default)": config_to_dict(m.config_cls())}
        rows[name] = {"summary": m.summary, "stochastic": m.stochastic, "default_preset": m.default_preset,
                      "presets": presets}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, row in rows.items():
        print(f"{name}: {row['summary']}")
        for preset, cfg in row["presets"].items():
            mark = " (default)" if preset == row["default_preset"] else ""
            print(f"  preset {preset}{mark}: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    return 0


def _cmd_demo(args) -> int:
    from .config import parse_assignments
    from .demo import run_demo
    from .progress import Progress, TqdmProgress

    run_demo(Path(args.output), method=args.method, size=args.size, frames=args.frames, seed=args.seed,
             overrides=parse_assignments(args.overrides), progress=Progress() if args.quiet else TqdmProgress())
    return 0


def _cmd_eval(args) -> int:
    from .metrics.report import evaluate_files, format_table, json_ready

    scores = evaluate_files(args.result, args.ground_truth, args.mask, dilate=args.dilate)
    print(json.dumps(json_ready(scores)) if args.json else format_table(scores))
    return 0


def _cmd_bench(args) -> int:
    from .bench import run_bench_command

    return run_bench_command(args)


COMMANDS = {"inpaint": _cmd_inpaint, "info": _cmd_info, "methods": _cmd_methods, "demo": _cmd_demo,
            "eval": _cmd_eval, "bench": _cmd_bench}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except InfusionError as exc:
        print(f"infusion: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = ""
        if getattr(args, "command", None) == "inpaint":
            hint = " (partial training is kept in the work folder: rerun with --resume to continue)"
        print(f"\ninfusion: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
