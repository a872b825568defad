"""The loop's batches, in the order its generator gives them, drawn where they keep a GPU busy.

On the CPU, a batch is drawn in the training process when it is needed. On a GPU, a sampler
that draws from host memory alone (``worker_safe``, as :class:`~litesr.train.patches.
PatchSampler`) draws ahead in a DataLoader worker into pinned memory, copied to the card
without blocking; a sampler with a ``to(device)`` (a pre-extracted patch set) is moved to the
card once and draws there. One worker continues the one generator, so the batches and the
checkpointed generator state are those of the in-process path: resuming stays exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset

from litesr.train.patches import Sampler

PREFETCH = 4  # batches drawn ahead by the worker


class _Draws(IterableDataset):
    """Endless batches of ``sampler`` from a generator started at ``state``, each followed
    by the generator's state after it."""

    def __init__(self, sampler: Sampler, batch_size: int, state: torch.Tensor) -> None:
        super().__init__()
        self.sampler, self.batch_size, self.state = sampler, batch_size, state

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        gen = torch.Generator()
        gen.set_state(self.state)
        while True:
            batch = self.sampler.sample(self.batch_size, gen)
            yield (*batch, gen.get_state())


class Batches:
    """The run's batches of ``batch_size`` on ``device``, drawn with ``gen``.

    ``worker`` forces drawing in a DataLoader worker (``True``) or in this process
    (``False``); by default a worker draws on GPUs when the sampler allows it.
    :meth:`state` is the generator state after the batches handed out so far: what a
    checkpoint keeps. Use it as a context manager, so that the worker stops with the run.
    """

    def __init__(
        self,
        sampler: Sampler,
        batch_size: int,
        gen: torch.Generator,
        device: torch.device,
        worker: bool | None = None,
    ) -> None:
        cuda = device.type == "cuda"
        if cuda and hasattr(sampler, "to"):
            sampler = sampler.to(device)
        if worker is None:
            worker = cuda and getattr(sampler, "worker_safe", False)
        self.sampler, self.batch_size, self.gen, self.device = sampler, batch_size, gen, device
        self._state: torch.Tensor | None = None
        self._stream: Iterator[tuple[torch.Tensor, ...]] | None = None
        if worker:
            loader = DataLoader(
                _Draws(sampler, batch_size, gen.get_state()),
                batch_size=None,
                num_workers=1,
                prefetch_factor=PREFETCH,
                pin_memory=cuda,
            )
            self._stream = iter(loader)
            self._state = gen.get_state()

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream = None  # the DataLoader's iterator stops its worker when dropped

    def __next__(self) -> list[torch.Tensor]:
        if self._stream is None:
            batch = self.sampler.sample(self.batch_size, self.gen)
        else:
            *batch, self._state = next(self._stream)
        return [t.to(self.device, non_blocking=True) for t in batch]

    def state(self) -> torch.Tensor:
        """The generator state after the last batch handed out."""
        return self.gen.get_state() if self._state is None else self._state
