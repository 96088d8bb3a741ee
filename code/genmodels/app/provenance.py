"""A chapter's run record: one short line at the end of the chapter, the details in the book's appendix.

Every chapter starts a :class:`RunRecord` in its setup cell and finishes it in its last code cell::

    run_record = gm.RunRecord(BUDGET, device)        # setup: the clock and the machine's load start here
    ...
    run_record.finish(data=[train, test], settings="10 epochs, batch 128", details=[...])

:meth:`RunRecord.finish` shows one line (budget, data, device, time) and stores the whole record in the
cell output's metadata under :data:`RECORD_KEY`, so the notebook itself carries the provenance of its
stored outputs. ``python tools/run_records.py`` collects the records of every chapter into the appendix
(``book/appendix/_run-records.md``), and the tests check that each chapter's stored outputs come from the
full budget on the full data.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from .. import __version__

RECORD_KEY = "genmodels_run_record"
BUDGETS = ("quick", "full")


def describe_data(data: Union[str, Any]) -> str:
    """A data set in one phrase without file paths: an :class:`~genmodels.engine.sources.ImageSet`'s ``origin``
    ("MNIST train, 60,000 images (IDX files from a data directory)"), or a string as given."""
    if isinstance(data, str):
        return data
    origin = getattr(data, "origin", None)
    if origin is None:
        raise TypeError(f"data must be a string or an ImageSet from gm.load_mnist, got {type(data).__name__}")
    return origin


def describe_device(device: Union[str, torch.device]) -> str:
    """``"cpu, 2 cores, 2 threads"``, ``"cuda (NVIDIA H100 80GB HBM3)"``, ``"mps"``: what ran the chapter."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu, {os.cpu_count()} cores, {threads} thread{'s' if threads > 1 else ''}"
    return device.type


def _load_average() -> Optional[float]:
    return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None


class RunRecord:
    """The provenance of one run of a chapter: budget, data, device, time, versions, and the details.

    Parameters
    ----------
    budget : ``"quick"`` or ``"full"`` (the chapter's switch).
    device : the device the chapter computes on.
    """

    def __init__(self, budget: str, device: Union[str, torch.device]):
        if budget not in BUDGETS:
            raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
        self.budget = budget
        self.device = describe_device(device)
        self.started = time.perf_counter()
        self.load_start = _load_average()
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")

    def finish(
        self,
        *,
        data: Sequence[Union[str, Any]],
        settings: str,
        details: Sequence[str] = (),
        show: bool = True,
    ) -> Dict[str, Any]:
        """Stop the clock, show the one-line record and return the whole record.

        Parameters
        ----------
        data : what the chapter computed on: ImageSets (their ``origin``) or phrases ("1-D Gaussians sampled
            on the fly").
        settings : the budget's settings in a phrase ("10 epochs, batch 128").
        details : further lines for the appendix (which zoo models, with their hashes; sample sizes).
        show : display the line, with the record in the output's metadata (off: just return the record).
        """
        if not data:
            raise ValueError("data must name at least one data set (or say that none is used)")
        seconds = time.perf_counter() - self.started
        record: Dict[str, Any] = {
            "budget": self.budget,
            "settings": str(settings),
            "data": [describe_data(d) for d in data],
            "device": self.device,
            "seconds": round(seconds, 1),
            "load_average": [self.load_start, _load_average()],
            "date": self.date,
            "torch": torch.__version__.split("+")[0],
            "genmodels": __version__,
            "details": [str(d) for d in details],
        }
        if show:
            from IPython.display import display

            display({"text/plain": one_line(record)}, raw=True, metadata={RECORD_KEY: record})
        return record


def one_line(record: Dict[str, Any]) -> str:
    """The line a chapter ends with: budget (settings) · data · device · time; details in the appendix."""
    return (
        f"Run record: {record['budget']} budget ({record['settings']}); data: {'; '.join(record['data'])}; "
        f"{record['device']}; {_duration(record['seconds'])}; {record['date']}, genmodels {record['genmodels']}, "
        f"torch {record['torch']}. Details: the appendix 'Run records'."
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def records_in(notebook: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The run records stored in a notebook's outputs (a parsed .ipynb), in cell order."""
    found = []
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            record = output.get("metadata", {}).get(RECORD_KEY)
            if record is not None:
                found.append(record)
    return found
