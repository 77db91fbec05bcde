"""Intra-op threading of the envs' small tensor ops."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def serial_on_cpu(device: torch.device) -> Iterator[None]:
    """Run the enclosed torch ops on one intra-op thread when ``device`` is a CPU.

    An env step works on tensors of a few thousand elements, where spreading an op over
    threads gains nothing, but some kernels (the CPU ``exp`` of the likelihood heads among
    them) open a parallel region even for a few hundred elements. On a busy machine every
    such region waits for a second core to be scheduled: on the shared 2-core benchmark
    machine a step at 256 sub-envs took 13 ms with two threads and 0.2 ms with one.
    Switching to one thread costs about 0.3 us and changes no result (the kernels are
    elementwise or gathers); the previous thread count is restored on exit, so the caller's
    own work keeps its threads.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
