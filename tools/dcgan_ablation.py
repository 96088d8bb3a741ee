"""The DCGAN recipe, one factor at a time: the runs behind the DCGAN chapter's ablation table.

Each run trains ``gm.GAN(arch="dcgan")`` (64 feature maps, noise size 100) from the same seed on the same
data for the same number of epochs, changing one setting of the plain DCGAN of Radford et al. (2016), and
after every epoch measures the raw generator (and, where the run keeps one, its weight average) by the
Fréchet classifier distance of 10,000 samples from fixed noise to the 10,000 MNIST test digits, and the
classes the shipped classifier finds among them. A run also records the discriminator-won-outright events
of ``gm.train_gan``. Every run keeps a weight average (EMA 0.999) beside its generator: the average never
feeds back into training, so the raw generator's run is exactly the run without it, and the EMA column
costs one extra FCD per epoch.

Usage, from the repository root (``DIR`` holds the four MNIST IDX files)::

    python tools/dcgan_ablation.py run --data-dir DIR --out runs/ablation   # every factor (~4 min each on 2 CPU cores)
    python tools/dcgan_ablation.py run --only base sn --data-dir DIR --out runs/ablation
    python tools/dcgan_ablation.py table runs/ablation > code/genmodels/weights/results/dcgan-ablation.json

``run`` writes one ``NAME-sSEED.json`` per run (and ``NAME-sSEED-grids.pt``, the 64 samples from fixed noise
after every epoch); ``table`` gathers the JSON files into the file the chapter reads. The last two factors were
also run from seeds 1 and 2 (``--seed 1``), and ``sn_lr4_dfc`` (the recipe today) for 10 epochs from seed 0::

    python tools/dcgan_ablation.py run --only sn_lr4_dfc --epochs 10 --seed 0 --data-dir DIR --out runs/ablation

The recipe trained longer from seeds 0, 1 and 2, the DCGAN chapter's ``dcgan-long-recipe.json``: seed 0 for 40 epochs
(alone, two threads), seeds 1 and 2 for 30 (side by side, ``OMP_NUM_THREADS=1`` each; a session's time)::

    python tools/dcgan_ablation.py run --only recipe --epochs 40 --seed 0 --data-dir DIR --out runs/long
    python tools/dcgan_ablation.py run --only recipe --epochs 30 --seed 1 --data-dir DIR --out runs/long   # and 2
    python tools/dcgan_ablation.py table runs/long > code/genmodels/weights/results/dcgan-long-recipe.json

Those runs were made before the training loops ran their epoch callback outside the training's random stream
(the first FCD builds its classifier, which draws): run again today, the same commands draw other noise from the
second epoch on, and give the same curves up to the spread between seeds, not bit for bit.

A run writes its JSON after every epoch, with ``"finished": false`` until the last, and beside it a training
checkpoint (``NAME-sSEED.ckpt.pt``: weights, optimizers, data position, random state). Running the same command
again resumes from the checkpoint, exactly where the killed run stopped; with a larger ``--epochs`` it trains a
finished run on (the learning rate is constant, so 40 epochs and then 20 more are one 60-epoch run). ``--device
cuda`` trains on a GPU (the default, ``cpu``, made the files the book ships).

The file the chapter reads holds runs made when the recipe was ``sn_lr4``: they were run as ``recipe`` and are
filed under ``sn_lr4``, whose settings they have (each run's ``model`` and ``train`` fields say so, and
``renamed_from`` records the old name). The recipe's three seeds trained longer are the zoo's ``dcgan-s0`` ...
``dcgan-s2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

import genmodels as gm
from genmodels.core import eval_mode
from genmodels.engine.checkpoints import atomic_write

#: name -> (what changes, GAN keyword arguments, train_gan keyword arguments); "base" is Radford et al.'s DCGAN.
FACTORS = {
    "base": ("plain DCGAN: Adam 2e-4, betas (0.5, 0.999), BN in D", {}, {}),
    "ls": ("one-sided label smoothing 0.1", {}, {"label_smoothing": 0.1}),
    "sn": ("spectral norm in D (no batch norm)", {"spectral_norm": True}, {}),
    "ttur": ("TTUR: lr 1e-4 for G, 4e-4 for D", {}, {"lr": 1e-4, "lr_d": 4e-4}),
    "lr1e4": ("lr 1e-4 for both", {}, {"lr": 1e-4}),
    "beta09": ("betas (0.9, 0.999), Adam's default", {}, {"betas": (0.9, 0.999)}),
    "mbd": ("minibatch discrimination, 50 kernels", {"minibatch_kernels": 50}, {}),
    "sn_lrd4": ("spectral norm in D, and lr 4e-4 for D", {"spectral_norm": True}, {"lr_d": 4e-4}),
    "sn_lr4": ("spectral norm in D, and lr 4e-4 for both", {"spectral_norm": True}, {"lr": 4e-4}),
    "sn_lr4_dfc": (
        "SN, lr 4e-4, hidden layer of 512 before D's logit",
        {"spectral_norm": True, "discriminator_hidden": 512},
        {"lr": 4e-4},
    ),
    "recipe": (
        "the book's recipe, gm.gan.DCGAN_RECIPE",
        {k: v for k, v in gm.gan.DCGAN_RECIPE["model"].items() if k != "ema"},
        dict(gm.gan.DCGAN_RECIPE["train"]),
    ),
}
N_EVAL = 10_000
NOISE_SEED = 123


def _resumed_log(path: Path, log: dict, checkpoint: Path) -> dict:
    """The log of the run that ``checkpoint`` continues, cut to the epochs the checkpoint holds (the JSON is
    written before the checkpoint, so it may hold one epoch more), or ``log`` when there is nothing to resume.
    A checkpoint from other settings is refused: a resumed run must be the same run."""
    if not checkpoint.exists():
        return log
    from genmodels.engine.checkpoints import read_checkpoint

    done = int(read_checkpoint(checkpoint).get("epoch") or 0)
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(
            f"{checkpoint} has no readable log beside it ({path}: {err}); delete both to start afresh"
        ) from err
    same = ("name", "model", "train", "seed", "train_data", "test_data", "n_eval")
    if any(old.get(k) != log[k] for k in same):
        raise SystemExit(
            f"{checkpoint} is from a run with other settings than {path.name}'s; delete both to start afresh"
        )
    for key in ("fcd", "fcd_ema", "classes", "seconds"):
        log[key] = old[key][:done]
    for key in ("device", "threads"):  # a run begun on one device (or thread count) and trained on on another says so
        before, now = old.get(key, log[key]), log[key]
        trains_on = done < log["epochs"]
        log[key] = (
            f"{before} to epoch {done}, then {now}"
            if trains_on and str(before).rsplit("then ", 1)[-1] != str(now)
            else before
        )
    print(f"{path.stem}: resuming after epoch {done} of {log['epochs']}", flush=True)
    return log


def run(name: str, *, epochs: int, seed: int, data_dir: str, out: Path, device: str = "cpu") -> dict:
    what, model_kw, train_kw = FACTORS[name]
    torch.manual_seed(seed)
    train = gm.load_mnist("train", data_dir=data_dir, download=False, verbose=False)
    test = gm.load_mnist("test", data_dir=data_dir, download=False, verbose=False)
    model = gm.GAN(ema=0.999, **model_kw)
    reference = test.images[:N_EVAL]
    z = torch.randn(N_EVAL, model.latent_dim, generator=torch.Generator().manual_seed(NOISE_SEED))
    log = {
        "name": name,
        "what": what,
        "model": model_kw,
        "train": train_kw,
        "seed": seed,
        "epochs": epochs,
        "train_data": train.origin,
        "test_data": test.origin,
        "n_eval": N_EVAL,
        "fcd": [],
        "fcd_ema": [],
        "classes": [],
        "seconds": [],
        "device": device,
        "threads": torch.get_num_threads(),
    }
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / f"{name}-s{seed}.ckpt.pt"
    log = _resumed_log(out / f"{name}-s{seed}.json", log, checkpoint)

    def write_log(finished: bool) -> None:  # atomically: a run killed mid-write keeps the previous epoch's file
        data = json.dumps({**log, "finished": finished}).encode()
        atomic_write(out / f"{name}-s{seed}.json", lambda f: f.write(data))

    def measure(epoch, history):
        with torch.no_grad(), eval_mode(model.generator):
            x = model.generator(z.to(model.device)).cpu()
        log["fcd"].append(gm.frechet_classifier_distance(x, reference))
        log["classes"].append(gm.classes_covered(gm.class_histogram(x)))
        log["fcd_ema"].append(gm.frechet_classifier_distance(model.sample(z=z.to(model.device)).cpu(), reference))
        log["seconds"].append(sum(history.epochs["seconds"]))
        log["events"], log["saturated_steps"] = list(history.events), history.epochs["saturated_steps"]
        # after every epoch, so that a run stopped early (a lost session) keeps the curve of its finished epochs;
        # "finished" stays false until the last epoch (len(log["fcd"]) says how many of "epochs" it has)
        write_log(False)
        print(
            f"{name} seed {seed} epoch {epoch + 1}: FCD {log['fcd'][-1]:.1f} (EMA {log['fcd_ema'][-1]:.1f}), "
            f"{log['classes'][-1]} classes, {log['seconds'][-1]:.0f} s",
            flush=True,
        )

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the events are kept in the log
        history = gm.train_gan(
            model,
            train.images,
            num_epochs=epochs,
            seed=seed,
            device=device,
            progress=False,
            callback=measure,
            checkpoint=checkpoint,
            resume=True,
            **train_kw,
        )
    log["events"] = list(history.events)
    log["saturated_steps"] = history.epochs["saturated_steps"]
    log["wall_seconds"] = time.perf_counter() - start  # this process's (a resumed run's earlier ones not counted)
    # the 64 samples from the loop's fixed noise after every epoch (the weight average's), uint8
    torch.save(torch.stack(history.samples), out / f"{name}-s{seed}-grids.pt")
    write_log(True)
    return log


def table(folder: Path) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*-s*.json"))]
    order = list(FACTORS)
    runs.sort(key=lambda r: (order.index(r["name"]) if r["name"] in order else len(order), r["seed"]))
    return {
        "command": "python tools/dcgan_ablation.py run ...; python tools/dcgan_ablation.py table ...",
        "torch": torch.__version__.split("+")[0],
        "genmodels": gm.__version__,
        "runs": runs,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--only", nargs="+", choices=list(FACTORS), default=list(FACTORS))
    r.add_argument("--epochs", type=int, default=3)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--data-dir", required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--device", default="cpu", help="cpu (the default, which made the shipped files), cuda, mps")
    t = sub.add_parser("table")
    t.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        for name in args.only:
            run(name, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir, out=args.out, device=args.device)
    else:
        json.dump(table(args.folder), sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
