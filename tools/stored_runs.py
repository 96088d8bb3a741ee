"""The GAN chapters' two costliest experiments, run once and stored for their full budget
(``genmodels.gan_experiments``; the files are shipped with the package, in ``code/genmodels/weights/results/``).

``mode-table``: every job of ``gan_mixtures.mode_table_jobs(20000, [0, 1, 2])`` (six methods on the ring and the
grid, three seeds each, 20,000 or 40,000 generator steps), one worker process per core, kept as the mode
histograms at the end and at 21 snapshots per run, the first seed's final samples and the seconds per run
(under 1 MB, where the raw snapshots would take 15). About an hour and a half on 2 CPU cores. The jobs that the
file already holds with exactly the same settings are kept and only the others run (``--fresh`` runs all).

``saturation``: the saturation chapter's five DCGAN runs (the saturating and the non-saturating loss from seeds 0
and 1, and the saturating loss with three discriminator steps per generator step from seed 0), 4 epochs each on
the training digits of ``--data-dir``, FCD with 10,000 samples against the first 10,000 test digits. 54
minutes on 2 CPU cores with two worker processes (a run took ~1,200 s beside the other, ~350 s alone).

The chapters load them with ``gan_experiments.load_mode_table`` / ``load_saturation_runs``, which refuse a file
made with other settings than the chapter's full budget asks for. Usage, from the repository root::

    python tools/stored_runs.py mode-table
    python tools/stored_runs.py saturation --data-dir DIR      # DIR holds the four MNIST IDX files
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import torch

import genmodels as gm
from genmodels import gan_experiments, gan_mixtures


def _about(argv, seconds: float, processes: int, **more) -> dict:
    return {
        "made_by": "python tools/stored_runs.py " + " ".join(argv),
        "date": datetime.date.today().isoformat(),
        "machine": f"cpu ({platform.machine()}), {os.cpu_count()} cores, {processes} worker processes",
        "torch": str(torch.__version__),
        "genmodels": gm.__version__,
        "seconds": round(seconds, 1),
        **more,
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    table = sub.add_parser("mode-table", help="the mode-collapse chapter's 2-D table")
    table.add_argument("--steps", type=int, default=20_000, help="base generator steps per run (the chapter: 20000)")
    table.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per run (the chapter: 0 1 2)")
    table.add_argument("--out", default=str(gan_experiments.MODE_TABLE_FILE))
    table.add_argument(
        "--fresh",
        action="store_true",
        help="run every job; by default the jobs that the file at --out already holds with exactly these settings "
        "are kept (each run is fixed by its seeds) and only the others run",
    )
    sat = sub.add_parser("saturation", help="the saturation chapter's DCGAN runs")
    sat.add_argument(
        "--data-dir", default=None, help="the folder of the MNIST IDX files (default: what gm.load_mnist finds)"
    )
    sat.add_argument("--epochs", type=int, default=4)
    sat.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    sat.add_argument("--n-fcd", type=int, default=10_000)
    sat.add_argument("--processes", type=int, default=2)
    sat.add_argument("--out", default=str(gan_experiments.SATURATION_FILE))
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.what == "mode-table":
        jobs = gan_mixtures.mode_table_jobs(args.steps, args.seeds)
        kept, old = ([None] * len(jobs), {}) if args.fresh else gan_experiments.reusable_mode_entries(jobs, args.out)
        todo = [job for job, entry in zip(jobs, kept) if entry is None]
        print(f"mode-table: {len(jobs) - len(todo)} of {len(jobs)} jobs kept from {args.out}, {len(todo)} to run")
        runs = iter(gan_mixtures.train_mixture_table(todo) if todo else [])
        entries = [
            entry if entry is not None else gan_experiments.summarize_mixture_runs(next(runs), job)
            for job, entry in zip(jobs, kept)
        ]
        processes = min(os.cpu_count() or 1, max(1, len(todo)))
        more = {}
        if len(todo) < len(jobs):  # say which runs came from the earlier file, and when that file was made
            more["kept"] = (
                f"{len(jobs) - len(todo)} of the {len(jobs)} jobs kept from the file made on {old.get('date')} by "
                f"`{old.get('made_by')}` in {old.get('seconds', 0) / 60:.1f} min ({old.get('kept', 'all jobs run')}); "
                f"re-run here: " + ", ".join(f"{j['method']} on the {j['mixture']}" for j in todo)
            )
        gan_experiments.save_mode_table(
            entries, jobs, args.out, about=_about(argv, time.perf_counter() - t0, processes, **more)
        )
    else:
        train = gm.load_mnist("train", data_dir=args.data_dir, download=False, verbose=False)
        test = gm.load_mnist("test", data_dir=args.data_dir, download=False, verbose=False)
        reference = test.images[: args.n_fcd]
        runs = gan_experiments.saturation_runs(
            train, reference, epochs=args.epochs, seeds=args.seeds, device="cpu", processes=args.processes
        )
        about = _about(
            argv,
            time.perf_counter() - t0,
            args.processes,
            train_data=train.origin,
            reference=f"the first {len(reference):,} of {test.origin}",
        )
        gan_experiments.save_saturation_runs(
            runs, args.out, epochs=args.epochs, seeds=args.seeds, n_fcd=len(reference), about=about
        )
    print(f"{args.what}: {time.perf_counter() - t0:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
