"""Benchmarks behind the performance claims of the book.

:func:`compare_loaders` times one epoch over a set of images with :class:`~genmodels.data.DeviceBatches`
against the usual PyTorch pipeline (a map-style dataset that makes a PIL image per example, runs
``torchvision.transforms.ToTensor`` and lets ``DataLoader`` collate the batch). Both loops touch
the data through the same trivial consumer, so the figures compare the cost of *delivering*
batches, which is all a small MNIST model waits for.
"""

from __future__ import annotations

import statistics
import time
from typing import Sequence, Union

import numpy as np
import torch

from ..engine.batches import DeviceBatches

__all__ = ["compare_loaders", "format_loader_table"]


class _PILImages(torch.utils.data.Dataset):
    """The torchvision MNIST way: uint8 array -> PIL image -> ``ToTensor`` per example."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        from torchvision import transforms  # lazy: optional dependency

        self.images = images
        self.labels = labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_epochs(run_epoch, epochs: int, device: torch.device) -> list[float]:
    """One untimed warm-up epoch, then ``epochs`` timed ones (seconds each)."""
    run_epoch()
    _sync(device)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def compare_loaders(
    images: torch.Tensor,
    *,
    batch_size: int = 128,
    epochs: int = 3,
    device: Union[str, torch.device] = "cpu",
    workers: Sequence[int] = (0, 2),
) -> dict:
    """Time an epoch of :class:`DeviceBatches` against a PIL + ``ToTensor`` + ``DataLoader`` pipeline.

    Each method runs one warm-up epoch, then ``epochs`` timed epochs (``time.perf_counter``, with
    ``torch.cuda.synchronize`` on CUDA). The consumer is ``x.sum()`` accumulated on the device, so
    every batch is materialized; the DataLoader batches are moved to ``device`` as a training loop
    would (``non_blocking`` from pinned memory on CUDA).

    Parameters
    ----------
    images : torch.Tensor
        uint8 ``[N, 28, 28]``.
    batch_size : int, default 128
        Batch size for both.
    epochs : int, default 3
        Timed epochs per method (the median is reported).
    device : str or torch.device, default "cpu"
        Where the batches are wanted.
    workers : sequence of int, default (0, 2)
        ``num_workers`` settings of the DataLoader to time.

    Returns
    -------
    dict
        ``{"num_images", "batch_size", "epochs", "device", "methods": {name: {"median_epoch_s",
        "images_per_s", "epoch_s", "ratio"}}, "ratio"}``, where each method's ``ratio`` is its
        median epoch time over that of DeviceBatches and the top-level ``ratio`` is the one of the
        first DataLoader setting (how many times faster DeviceBatches is).
    """
    device = torch.device(device)
    images = torch.as_tensor(images)
    n = int(images.shape[0])
    labels = torch.zeros(n, dtype=torch.int64)
    methods: dict[str, dict] = {}

    batches = DeviceBatches(images, labels, batch_size=batch_size, pixels="continuous", device=device)

    def device_epoch():
        total = torch.zeros((), device=device)
        for x, _ in batches:
            total += x.sum()
        return total

    methods["DeviceBatches"] = {"epoch_s": _time_epochs(device_epoch, epochs, device)}

    dataset = _PILImages(images.numpy(), labels.numpy())
    for num_workers in workers:
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )

        def loader_epoch(loader=loader):
            total = torch.zeros((), device=device)
            for x, _ in loader:
                total += x.to(device, non_blocking=True).sum()
            return total

        name = f"DataLoader(PIL + ToTensor, num_workers={num_workers})"
        methods[name] = {"epoch_s": _time_epochs(loader_epoch, epochs, device)}

    base = statistics.median(methods["DeviceBatches"]["epoch_s"])
    for entry in methods.values():
        median = statistics.median(entry["epoch_s"])
        entry["median_epoch_s"] = median
        entry["images_per_s"] = n / median
        entry["ratio"] = median / base
    first_loader = [name for name in methods if name != "DeviceBatches"]
    return {
        "num_images": n,
        "batch_size": batch_size,
        "epochs": epochs,
        "device": str(device),
        "methods": methods,
        "ratio": methods[first_loader[0]]["ratio"] if first_loader else 1.0,
    }


def format_loader_table(result: dict) -> str:
    """A plain-text table of :func:`compare_loaders` results.

    Parameters
    ----------
    result : dict
        As returned by :func:`compare_loaders`.

    Returns
    -------
    str
        One header line, then one line per method: median epoch seconds, images per second, and
        the time relative to DeviceBatches.
    """
    head = (
        f"{result['num_images']:,} images, batch size {result['batch_size']}, device {result['device']}, "
        f"median of {result['epochs']} epochs after one warm-up"
    )
    width = max(len(name) for name in result["methods"])
    lines = [head, f"{'method':<{width}}  {'epoch (s)':>10}  {'images/s':>12}  {'time / DeviceBatches':>20}"]
    for name, entry in result["methods"].items():
        lines.append(
            f"{name:<{width}}  {entry['median_epoch_s']:>10.4f}  {entry['images_per_s']:>12,.0f}  "
            f"{entry['ratio']:>19.1f}x"
        )
    return "\n".join(lines)


# --- training: the package's engine against the loop everyone writes ---------------------------------


def _write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (big-endian header: 0, 0, type 0x08, ndim, then the dims)."""
    import struct

    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def _torchvision_dataset(images: torch.Tensor, root) -> "torch.utils.data.Dataset":
    """The same images served the pytorch/examples way: ``torchvision.datasets.MNIST`` (reading IDX files
    written to ``root``) with ``transforms.ToTensor()``, one PIL image per example."""
    import os

    from torchvision import datasets, transforms

    raw = os.path.join(root, "MNIST", "raw")
    os.makedirs(raw, exist_ok=True)
    labels = np.zeros(len(images), dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(os.path.join(raw, f"{prefix}-images-idx3-ubyte"), images.numpy())
        _write_idx(os.path.join(raw, f"{prefix}-labels-idx1-ubyte"), labels)
    return datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())


class ReferenceVAE(torch.nn.Module):
    """The VAE as pytorch/examples writes it: 784-400-20, a sigmoid output and summed BCE.

    Same shapes as ``genmodels.VAE(latent_dim=20, arch="mlp")``, so its weights can be copied into one
    (:func:`reference_to_genmodels`) and both evaluated by the same code.
    """

    def __init__(self, latent_dim: int = 20, hidden_dim: int = 400):
        super().__init__()
        self.fc1 = torch.nn.Linear(784, hidden_dim)
        self.fc21 = torch.nn.Linear(hidden_dim, latent_dim)
        self.fc22 = torch.nn.Linear(hidden_dim, latent_dim)
        self.fc3 = torch.nn.Linear(latent_dim, hidden_dim)
        self.fc4 = torch.nn.Linear(hidden_dim, 784)

    def forward(self, x):
        h = torch.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))), mu, logvar

    @staticmethod
    def loss(recon, x, mu, logvar):
        bce = torch.nn.functional.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def reference_to_genmodels(ref: ReferenceVAE):
    """A ``genmodels.VAE`` holding the reference model's weights (the encoder's last layer stacks fc21 on fc22)."""
    from ..vae import VAE

    vae = VAE(latent_dim=ref.fc21.out_features, arch="mlp", hidden_dim=ref.fc1.out_features)
    with torch.no_grad():
        enc, dec = vae.encoder.net, vae.decoder.net
        enc[1].weight.copy_(ref.fc1.weight), enc[1].bias.copy_(ref.fc1.bias)
        enc[3].weight.copy_(torch.cat([ref.fc21.weight, ref.fc22.weight]))
        enc[3].bias.copy_(torch.cat([ref.fc21.bias, ref.fc22.bias]))
        dec[0].weight.copy_(ref.fc3.weight), dec[0].bias.copy_(ref.fc3.bias)
        dec[2].weight.copy_(ref.fc4.weight), dec[2].bias.copy_(ref.fc4.bias)
    return vae.to(ref.fc1.weight.device)


def _reference_vae_epoch(model, loader, optimizer, device):
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        data = data.to(device)
        optimizer.zero_grad()
        recon, mu, logvar = model(data)
        loss = ReferenceVAE.loss(recon, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss


def _reference_gan_epoch(netG, netD, loader, opt_g, opt_d, latent_dim, device):
    """pytorch/examples' DCGAN step: BCELoss on a sigmoid discriminator, the generator step reusing the fakes."""
    criterion = torch.nn.BCELoss()
    for data, _ in loader:
        real = data.to(device)
        b = real.size(0)
        netD.zero_grad()
        label = torch.full((b,), 1.0, device=device)
        err_real = criterion(netD(real).view(-1), label)
        err_real.backward()
        fake = netG(torch.randn(b, latent_dim, device=device))
        label.fill_(0.0)
        err_fake = criterion(netD(fake.detach()).view(-1), label)
        err_fake.backward()
        opt_d.step()
        netG.zero_grad()
        label.fill_(1.0)
        err_g = criterion(netD(fake).view(-1), label)
        err_g.backward()
        opt_g.step()
        _ = (err_real + err_fake).item(), err_g.item()  # the per-step logging every example does


def _step_flops(fn) -> float:
    """FLOPs of one call of ``fn`` (forward and backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device, *, size: int = 0, repeats: int = 5) -> tuple:
    """A measured dense-matmul throughput (FLOP/s) as the device's practical peak: bf16 on CUDA, fp32 elsewhere."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(3):  # the best of three trials: the device's capability, not its momentary load
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best, str(dtype).replace("torch.", "")


def _peak_memory(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux: the process's peak RSS


def compare_training(
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    *,
    models: Sequence[str] = ("vae", "dcgan"),
    repeats: int = 3,
    batch_size: int = 128,
    device: Union[str, torch.device] = "cpu",
    seed: int = 0,
    compile: bool = False,
) -> dict:
    """Time one epoch of training with the package's engine and with the reference loop, alternating.

    For each model and each of ``repeats + 1`` rounds (the first is a warm-up and not counted), both
    loops train a freshly initialised model (same seed) for one epoch on the same images, in the order
    engine, reference in even rounds and reference, engine in odd ones. The engine uses
    ``genmodels.train_vae`` / ``train_gan`` with continuous pixels (as the reference); the reference is
    :class:`ReferenceVAE` or the package's DCGAN networks driven by :func:`_reference_gan_epoch`, fed
    by ``DataLoader(torchvision MNIST reader, ToTensor, shuffle=True)``.

    Returns a dict with, per model and loop, the epoch seconds of every counted round, images per
    second, peak memory, FLOPs per epoch; the per-round ratios reference/engine; and, for the VAE, the
    test negative ELBO (continuous pixels, nats) after the last round's epoch, from the same code.
    """
    import tempfile

    from .. import core as C
    from ..engine import loops as T
    from ..gan import GAN
    from ..vae import VAE

    device = torch.device(device)
    n = len(train_images)
    peak, peak_dtype = matmul_peak(device)
    result = {
        "num_images": n,
        "batch_size": batch_size,
        "device": str(device),
        "repeats": repeats,
        "matmul_peak_flops": peak,
        "matmul_peak_dtype": peak_dtype,
        "models": {},
    }
    tmp = tempfile.TemporaryDirectory(prefix="genmodels-bench-")
    loader = torch.utils.data.DataLoader(
        _torchvision_dataset(train_images, tmp.name),
        batch_size=batch_size,
        shuffle=True,
        pin_memory=device.type == "cuda",
    )
    steps = len(loader)
    x_probe = (train_images[:batch_size].float() / 255).unsqueeze(1).to(device)

    for name in models:
        times = {"genmodels": [], "reference": []}
        memory = {"genmodels": 0.0, "reference": 0.0}
        last = {}
        for rnd in range(repeats + 1):
            order = ("genmodels", "reference") if rnd % 2 == 0 else ("reference", "genmodels")
            for loop in order:
                C.seed_everything(seed)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                if name == "vae":
                    if loop == "genmodels":
                        model = VAE(latent_dim=20, arch="mlp")
                        h = T.train_vae(
                            model,
                            train_images,
                            num_epochs=1,
                            batch_size=batch_size,
                            pixels="continuous",
                            device=str(device),
                            seed=seed,
                            progress=False,
                            compile=compile,
                        )
                        seconds = h.epochs["seconds"][0]
                    else:
                        model = ReferenceVAE().to(device)
                        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                        start = time.perf_counter()
                        _reference_vae_epoch(model, loader, opt, device)
                        _sync(device)
                        seconds = time.perf_counter() - start
                else:
                    if loop == "genmodels":
                        model = GAN(latent_dim=100, arch="dcgan")
                        h = T.train_gan(
                            model,
                            train_images,
                            num_epochs=1,
                            batch_size=batch_size,
                            pixels="continuous",
                            device=str(device),
                            seed=seed,
                            progress=False,
                            compile=compile,
                        )
                        seconds = h.epochs["seconds"][0]
                    else:
                        model = GAN(latent_dim=100, arch="dcgan").to(device)
                        netD = torch.nn.Sequential(model.discriminator, torch.nn.Sigmoid())
                        opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
                        opt_g = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
                        start = time.perf_counter()
                        _reference_gan_epoch(
                            model.generator, netD, loader, opt_d=opt_d, opt_g=opt_g, latent_dim=100, device=device
                        )
                        _sync(device)
                        seconds = time.perf_counter() - start
                memory[loop] = max(memory[loop], _peak_memory(device))
                if rnd > 0:
                    times[loop].append(seconds)
                last[loop] = model

        # FLOPs of one training step's forward and backward, times the steps of an epoch
        if name == "vae":
            probe = last["genmodels"]
            step_flops = _step_flops(lambda: (-probe.elbo(x_probe).mean()).backward())
            flops = {"genmodels": step_flops, "reference": step_flops}
        else:
            g, d = last["genmodels"].generator, last["genmodels"].discriminator
            z = torch.randn(batch_size, 100, device=device)

            def engine_step():  # fakes without gradient for D, then fresh noise for G (Algorithm 1)
                with torch.no_grad():
                    fake = g(z)
                d(x_probe).sum().backward()
                d(fake).sum().backward()
                d(g(z)).sum().backward()

            def reference_step():  # pytorch/examples: one generator pass, its fakes reused for G's step
                fake = g(z)
                d(x_probe).sum().backward()
                d(fake.detach()).sum().backward()
                d(fake).sum().backward()

            flops = {"genmodels": _step_flops(engine_step), "reference": _step_flops(reference_step)}
        entry = {"flops_per_epoch": flops["genmodels"] * steps, "num_images": n, "loops": {}}
        for loop in ("genmodels", "reference"):
            median = statistics.median(times[loop])
            entry["loops"][loop] = {
                "epoch_s": times[loop],
                "median_epoch_s": median,
                "images_per_s": n / median,
                "peak_memory_mib": memory[loop],
                "flops_per_s": flops[loop] * steps / median,
            }
        entry["ratios"] = [r / e for r, e in zip(times["reference"], times["genmodels"])]
        if name == "vae":
            test = test_images
            entry["test_nelbo"] = {
                "genmodels": T.evaluate_vae(last["genmodels"], test, pixels="continuous")["nelbo"],
                "reference": T.evaluate_vae(reference_to_genmodels(last["reference"]), test, pixels="continuous")[
                    "nelbo"
                ],
            }
        result["models"][name] = entry
    tmp.cleanup()
    return result


MODEL_TITLES = {"vae": "MLP VAE 784-400-20", "dcgan": "DCGAN 28×28"}


def format_training_report(result: dict, *, data: str, markdown: bool = False) -> str:
    """The side-by-side table of :func:`compare_training` (plain text, or a Markdown table)."""
    peak = result["matmul_peak_flops"]
    rows = []
    for name, entry in result["models"].items():
        ratios = entry["ratios"]
        for loop in ("genmodels", "reference"):
            e = entry["loops"][loop]
            nelbo = entry.get("test_nelbo", {}).get(loop)
            rows.append(
                [
                    MODEL_TITLES.get(name, name),
                    "genmodels engine" if loop == "genmodels" else "reference loop",
                    f"{entry.get('num_images', result['num_images']):,}",
                    f"{e['median_epoch_s']:.3f} [{min(e['epoch_s']):.3f}–{max(e['epoch_s']):.3f}]",
                    f"{e['images_per_s']:,.0f}",
                    f"{e['peak_memory_mib']:,.0f}",
                    f"{e['flops_per_s'] / 1e9:,.1f} ({100 * e['flops_per_s'] / peak:.1f}%)",
                    f"{nelbo:.2f}" if nelbo is not None else "—",
                    f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"
                    if loop == "genmodels"
                    else "",
                ]
            )
    head = [
        "model",
        "loop",
        "images",
        "epoch s, median [min–max]",
        "images/s",
        "peak mem MiB",
        "GFLOP/s (% of peak)",
        "test −ELBO",
        "speed-up",
    ]
    mem = "peak GPU memory allocated" if result["device"].startswith("cuda") else "peak resident memory of the process"
    notes = [
        f"data: {data}; an epoch is one pass over the first 'images' training images; batch size "
        f"{result['batch_size']}; device: {result['device']}",
        f"{result['repeats']} counted repetitions after one warm-up, the two loops alternating; speed-up = "
        "reference epoch time / engine epoch time, per repetition (median [min–max])",
        f"peak = measured {result['matmul_peak_dtype']} dense matmul, {peak / 1e9:,.0f} GFLOP/s; memory: {mem}; "
        "test −ELBO: nats per image on the test set (continuous pixels), after one epoch",
    ]
    if not result["device"].startswith("cuda"):
        notes.append(
            "on a CPU the matmul figure is a practical reference, not the hardware's peak: convolutions "
            "through oneDNN can run faster than torch's float32 matmul, hence shares above 100%"
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*r) for r in rows] + [""] + notes)


def compare_mixture_training(
    methods: Sequence[str] = ("non_saturating", "wgan_gp"),
    *,
    mixture: str = "ring",
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 500,
    hidden_dim: int = 128,
) -> dict:
    """Time the 2-D GANs of the mode-collapse chapter trained one seed at a time
    (``gan_mixtures.train_mixture_gan``, ``nn.Module`` networks) against all ``seeds`` at once
    (``gan_mixtures.train_mixture_gans``, stacked weights), for the same generator ``steps``.

    Returns, per method: the seconds of the one-seed runs (summed over seeds) and of the stacked run,
    milliseconds per generator step and seed for each, and the speed-up (one-seed / stacked). The largest
    difference between a seed's final samples in the two runs is returned too: float rounding, which a GAN
    amplifies over hundreds of steps (the tests compare the two over a few steps, where it is ~1e-6).
    """
    from .. import gan_mixtures as M

    result = {
        "mixture": mixture,
        "seeds": tuple(seeds),
        "steps": steps,
        "hidden_dim": hidden_dim,
        "threads": torch.get_num_threads(),
        "methods": {},
    }
    for method in methods:
        start = time.perf_counter()
        singles = [
            M.train_mixture_gan(mixture, method, steps=steps, hidden_dim=hidden_dim, seed=s).samples for s in seeds
        ]
        one_seed = time.perf_counter() - start
        start = time.perf_counter()
        runs = M.train_mixture_gans(mixture, method, seeds=seeds, steps=steps, hidden_dim=hidden_dim)
        stacked = time.perf_counter() - start
        per = 1000 / (steps * len(seeds))
        result["methods"][method] = {
            "one_seed_s": one_seed,
            "stacked_s": stacked,
            "one_seed_ms_per_step": one_seed * per,
            "stacked_ms_per_step": stacked * per,
            "speedup": one_seed / stacked,
            "max_sample_difference": max(float((runs.samples[i] - x).abs().max()) for i, x in enumerate(singles)),
        }
    return result


def format_mixture_report(result: dict) -> str:
    lines = [
        f"2-D GANs on the {result['mixture']}, {result['steps']} generator steps, seeds {list(result['seeds'])}, "
        f"hidden width {result['hidden_dim']}, {result['threads']} torch thread(s)",
        f"{'method':<16}{'one seed at a time':>20}{'stacked':>12}{'speed-up':>10}   ms per step and seed",
    ]
    for method, r in result["methods"].items():
        lines.append(
            f"{method:<16}{r['one_seed_ms_per_step']:>17.2f} ms{r['stacked_ms_per_step']:>9.2f} ms{r['speedup']:>9.2f}x"
        )
    return "\n".join(lines)
