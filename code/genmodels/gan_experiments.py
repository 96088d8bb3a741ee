r"""The GAN chapters' two costliest experiments, run once and stored, so that a chapter's full budget can read
them instead of training for an hour.

* The **mode table** of the mode-collapse chapter: the jobs of
  :func:`genmodels.gan_mixtures.mode_table_jobs` (six methods on the ring and the grid, three seeds,
  20,000 or 40,000 generator steps), kept as what the chapter reads from them: the histogram of
  high-quality samples over the modes at the end and at every snapshot, the first seed's final samples and
  the seconds per run (:class:`MixtureTableEntry`, :func:`summarize_mixture_runs`). Every score of
  :func:`~genmodels.metrics.score_mixture_runs` is a function of the histograms
  (:func:`~genmodels.metrics.score_counts`), so a stored table scores exactly as its samples.
* The **saturation runs** of the saturation chapter (:func:`saturation_runs`): Radford et al.'s plain DCGAN
  trained with the saturating and the non-saturating generator loss from the same seeds, and the saturating
  loss again with three discriminator steps per generator step; per generator step the gradient reaching
  the generator and the discriminator's mean output on fakes, per run the FCD and the last grid of samples.

``tools/stored_runs.py`` makes both files (:data:`MODE_TABLE_FILE`, :data:`SATURATION_FILE`, shipped with
the package); :func:`save_stored` writes atomically and :func:`load_stored` refuses a missing or unreadable
file, or one made with other settings than the chapter asks for, with the command that remakes it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from .core import WEIGHTS_DIR, UserError
from .engine.checkpoints import atomic_torch_save
from .engine.loops import History, train_gan
from .gan import GAN
from .gan_mixtures import MixtureRuns
from .metrics import frechet_classifier_distance, mode_coverage, score_counts

__all__ = [
    "RESULTS_DIR",
    "MODE_TABLE_FILE",
    "SATURATION_FILE",
    "save_stored",
    "load_stored",
    "MixtureTableEntry",
    "summarize_mixture_runs",
    "save_mode_table",
    "load_mode_table",
    "reusable_mode_entries",
    "saturation_runs",
    "save_saturation_runs",
    "load_saturation_runs",
]

RESULTS_DIR = WEIGHTS_DIR / "results"
MODE_TABLE_FILE = RESULTS_DIR / "mode-table.pt"
SATURATION_FILE = RESULTS_DIR / "saturation.pt"
_COMMANDS = {
    "mode-table": ("python tools/stored_runs.py mode-table", "about an hour and a half on 2 CPU cores"),
    "saturation": ("python tools/stored_runs.py saturation --data-dir DIR", "under an hour on 2 CPU cores"),
}


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: what a stored file gives back, so settings compare equal after a round trip."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_stored(kind: str, payload: Dict[str, Any], path, *, settings: Dict[str, Any], about: Dict[str, Any]) -> None:
    """Write ``payload`` with the ``settings`` that made it and ``about`` (machine, date, seconds) to ``path``,
    atomically: a temporary file renamed over it, so an interrupted write never leaves half a file."""
    if kind not in _COMMANDS:
        raise UserError(f"kind must be one of {sorted(_COMMANDS)}, got {kind!r}")
    # plain values only (torch.__version__ is a str subclass that weights_only loading refuses)
    about = {k: v if type(v) in (str, int, float, bool, type(None)) else str(v) for k, v in about.items()}
    atomic_torch_save({"format": f"genmodels-{kind}", "settings": _plain(settings), "about": about, **payload}, path)


def _remake(kind: str) -> str:
    command, cost = _COMMANDS[kind]
    return f"Remake it with `{command}` ({cost}) from the repository root, or train it live in the chapter."


def _read_stored(kind: str, path) -> Dict[str, Any]:
    """The payload of the stored ``kind`` file at ``path``, whatever settings made it, or a
    :class:`~genmodels.core.UserError` that says what is wrong and names the command that remakes the file."""
    path, remake = Path(path), _remake(kind)
    if not path.is_file():
        raise UserError(f"the stored {kind} file {path} is missing. {remake}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise UserError(
            f"the stored {kind} file {path} cannot be read ({type(err).__name__}: {err}). {remake}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != f"genmodels-{kind}":
        raise UserError(f"{path} is not a stored {kind} file. {remake}")
    return payload


def load_stored(kind: str, path, *, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The stored payload of ``kind`` at ``path``, if it was made with exactly ``settings``; otherwise a
    :class:`~genmodels.core.UserError` that says what is wrong and names the command that remakes the file."""
    payload, remake = _read_stored(kind, path), _remake(kind)
    wanted = _plain(settings)
    if payload["settings"] != wanted:
        differ = sorted(
            k for k in set(wanted) | set(payload["settings"]) if wanted.get(k) != payload["settings"].get(k)
        )
        raise UserError(
            f"{path} was made with other settings ({', '.join(differ)} differ): the chapter asks for "
            f"{ {k: wanted.get(k) for k in differ} }, the file holds { {k: payload['settings'].get(k) for k in differ} }. "
            f"{remake}"
        )
    return payload


# ----------------------------------------------------------------------------------------------
# The mode table
# ----------------------------------------------------------------------------------------------


@dataclass
class MixtureTableEntry:
    """One job of the mode table, kept as what the chapter reads: the ``job`` it ran, the mixture's ``centres``
    and ``std``, ``num_eval`` samples per seed and snapshot, the histograms of high-quality samples over the
    modes at the end (``counts`` ``[S, K]``) and at each of ``snapshot_steps`` (``snapshot_counts``
    ``[T, S, K]``), the first seed's final ``samples`` (``[num_eval, 2]``, for the scatter plots) and the
    ``seconds`` the run took."""

    job: Dict
    centres: torch.Tensor
    std: float
    num_eval: int
    counts: torch.Tensor
    snapshot_steps: List[int]
    snapshot_counts: torch.Tensor
    samples: torch.Tensor
    seconds: float

    def scores(self, snapshot: Optional[int] = None) -> List[Dict]:
        """Each seed's scores (:func:`~genmodels.metrics.score_counts`) at the end, or at snapshot number
        ``snapshot``."""
        return score_counts(self.counts if snapshot is None else self.snapshot_counts[snapshot], self.num_eval)


def summarize_mixture_runs(runs: MixtureRuns, job: Dict) -> MixtureTableEntry:
    """Reduce ``runs``, the result of ``job``, to a :class:`MixtureTableEntry`."""

    def histograms(samples):  # [S, N, 2] -> [S, K]
        return torch.stack([mode_coverage(s, runs.centres, runs.std, min_count=1)["counts"] for s in samples])

    snapshot_counts = (
        torch.stack([histograms(s["samples"]) for s in runs.snapshots])
        if runs.snapshots
        else torch.zeros(0, len(runs.seeds), len(runs.centres), dtype=torch.long)
    )
    return MixtureTableEntry(
        job=_plain({k: v for k, v in job.items() if k != "threads"}),
        centres=runs.centres.float(),
        std=float(runs.std),
        num_eval=int(runs.samples.shape[1]),
        counts=histograms(runs.samples),
        snapshot_steps=[int(s["step"]) for s in runs.snapshots],
        snapshot_counts=snapshot_counts,
        samples=runs.samples[0].float().clone(),
        seconds=float(runs.seconds),
    )


def _table_settings(jobs: Sequence[Dict]) -> Dict[str, Any]:
    return {"jobs": [{k: v for k, v in job.items() if k != "threads"} for job in jobs]}


def save_mode_table(
    entries: Sequence[MixtureTableEntry], jobs: Sequence[Dict], path=MODE_TABLE_FILE, *, about: Dict
) -> None:
    """Store the table of ``jobs`` (``entries`` in their order) at ``path``."""
    if [e.job for e in entries] != _plain(_table_settings(jobs)["jobs"]):
        raise UserError("entries must be the summaries of jobs, in the same order")
    payload = {"entries": [dataclasses.asdict(e) for e in entries]}
    save_stored("mode-table", payload, path, settings=_table_settings(jobs), about=about)


def load_mode_table(jobs: Sequence[Dict], path=MODE_TABLE_FILE) -> Tuple[List[MixtureTableEntry], Dict]:
    """The stored entries of ``jobs``, in their order, and the file's ``about``."""
    payload = load_stored("mode-table", path, settings=_table_settings(jobs))
    return [MixtureTableEntry(**e) for e in payload["entries"]], payload["about"]


def reusable_mode_entries(jobs: Sequence[Dict], path=MODE_TABLE_FILE) -> Tuple[List[Optional[MixtureTableEntry]], Dict]:
    """For each of ``jobs``, the entry of the stored table at ``path`` that ran exactly that job, or ``None``;
    and the file's ``about`` (``{}`` when there is no file). Every seed's weights, data and noise come from its
    seed and the runs are on the CPU, so with the same torch a stored job is the run that the job would make again
    (one job re-run on another machine gave its stored samples bit for bit): a table whose recipe changed for some
    jobs needs only those re-run. A file that is there but unreadable or foreign is refused, as by
    :func:`load_mode_table`."""
    if not Path(path).is_file():
        return [None] * len(jobs), {}
    payload = _read_stored("mode-table", path)
    key = lambda job: json.dumps(_plain(job), sort_keys=True)  # noqa: E731
    stored = {key(e["job"]): MixtureTableEntry(**e) for e in payload["entries"]}
    return [stored.get(key(job)) for job in _table_settings(jobs)["jobs"]], payload["about"]


# ----------------------------------------------------------------------------------------------
# The saturation runs
# ----------------------------------------------------------------------------------------------

_KEPT_STEPS = ("g_grad_norm", "d_fake")


def _kept(history: History, fcd: float, seconds: float) -> Dict[str, Any]:
    """What the chapter reads of a run: the per-step gradient norms and D(G(z)), the per-epoch saturated steps,
    the events, the last grid of samples, the FCD and the seconds."""
    return {
        "steps": {k: [float(v) for v in history.steps[k]] for k in _KEPT_STEPS},
        "saturated_steps": [int(v) for v in history.epochs["saturated_steps"]],
        "events": list(history.events),
        "samples": history.samples[-1].clone(),
        "fcd": float(fcd),
        "seconds": float(seconds),
    }


def _saturation_run(
    kind: str, seed: int, d_steps: int, epochs: int, train_data, reference, device, threads
) -> Dict[str, Any]:
    from .core import seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    gan = GAN(arch="dcgan")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the events are kept in the history
        history = train_gan(
            gan,
            train_data,
            num_epochs=epochs,
            loss=kind,
            d_steps=d_steps,
            seed=seed,
            progress=False,
            device=str(device),
        )
    seconds = time.perf_counter() - t0
    z_fcd = torch.randn(len(reference), 100, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        dev = next(gan.parameters()).device
        samples = torch.cat([gan.sample(z=z.to(dev)).cpu() for z in z_fcd.split(1000)])
    return _kept(history, frechet_classifier_distance(samples, reference), seconds)


def saturation_runs(
    train_data,
    reference: torch.Tensor,
    *,
    epochs: int,
    seeds: Sequence[int],
    device: str = "auto",
    d_steps_run: int = 3,
    processes: int = 1,
) -> Dict[str, Dict[str, Any]]:
    """The saturation chapter's runs: for each seed, Radford et al.'s plain DCGAN (``GAN(arch="dcgan")``,
    Adam 2e-4, betas (0.5, 0.999), batch 128) trained for ``epochs`` with the ``"saturating"`` and the
    ``"non_saturating"`` generator loss from the same initial weights, then, from the first seed, the
    saturating loss with ``d_steps_run`` discriminator steps per generator step. Each run's FCD compares
    ``len(reference)`` samples from fixed noise (seed 123) with ``reference``. ``processes`` > 1 runs them in
    that many worker processes (a run's result does not depend on where it ran).

    Returns ``{"saturating-0": run, "non_saturating-0": run, ..., "saturating-k3": run}``, each run a dict of
    ``steps`` (``g_grad_norm`` and ``d_fake`` per generator step), ``saturated_steps`` per epoch,
    ``events``, ``samples`` (the last grid, uint8), ``fcd`` and ``seconds``."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise UserError("saturation_runs needs at least one seed")
    plan = {f"{kind}-{seed}": (kind, seed, 1) for seed in seeds for kind in ("saturating", "non_saturating")}
    plan[f"saturating-k{d_steps_run}"] = ("saturating", seeds[0], d_steps_run)
    if processes <= 1:
        return {name: _saturation_run(*p, epochs, train_data, reference, device, None) for name, p in plan.items()}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // processes)
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {
            name: pool.submit(_saturation_run, *p, epochs, train_data, reference, device, threads)
            for name, p in sorted(plan.items(), key=lambda item: -item[1][2])  # the costly k-step run first
        }
        return {name: futures[name].result() for name in plan}


def _saturation_settings(epochs: int, seeds: Sequence[int], n_fcd: int, d_steps_run: int) -> Dict[str, Any]:
    return {
        "epochs": int(epochs),
        "seeds": [int(s) for s in seeds],
        "n_fcd": int(n_fcd),
        "d_steps_run": int(d_steps_run),
    }


def save_saturation_runs(runs: Dict, path=SATURATION_FILE, *, epochs, seeds, n_fcd, d_steps_run=3, about: Dict) -> None:
    """Store :func:`saturation_runs`'s result, made with these settings, at ``path``."""
    save_stored(
        "saturation",
        {"runs": runs},
        path,
        settings=_saturation_settings(epochs, seeds, n_fcd, d_steps_run),
        about=about,
    )


def load_saturation_runs(path=SATURATION_FILE, *, epochs, seeds, n_fcd, d_steps_run=3) -> Tuple[Dict, Dict]:
    """The stored runs made with these settings, and the file's ``about``."""
    payload = load_stored("saturation", path, settings=_saturation_settings(epochs, seeds, n_fcd, d_steps_run))
    return payload["runs"], payload["about"]
