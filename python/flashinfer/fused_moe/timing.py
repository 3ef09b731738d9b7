"""GPU time of a call as a CUDA graph replays it, shared by the benchmark, the profiler script and
the autotuner: a serving engine replays graphs, and eager calls at decode sizes are bound by the
host's launches, which would hide the device time being compared."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch


def capture_graph(fn: Callable[[], object], warmups: int = 3) -> torch.cuda.CUDAGraph:
    """A CUDA graph of one ``fn()`` call, after ``warmups`` eager calls on a side stream (the
    allocator and lazy initialization settle outside the capture; an error raises there, before
    anything is captured). The graph has been replayed once and the device synchronized."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmups):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def replay_ms(graph: torch.cuda.CUDAGraph, batches: int = 7, per_batch: int = 20) -> float:
    """Median milliseconds of one replay, over ``batches`` batches of back-to-back replays."""
    per_replay = []
    for _ in range(batches):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(per_batch):
            graph.replay()
        end.record()
        end.synchronize()
        per_replay.append(start.elapsed_time(end) / per_batch)
    return statistics.median(per_replay)
