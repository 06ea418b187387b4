"""Work spread over forked worker processes (planning and Verilog emission of big designs)."""

import multiprocessing
import os

__all__ = ["fork_map", "cpu_jobs"]

_TASK: list = []  # (function, items) for the forked workers, which inherit it


def _run(k: int):
    func, items = _TASK[0]
    return func(items[k])


def fork_map(func, items, jobs: int = 1, progress=None) -> list:
    """``[func(x) for x in items]``, computed by ``jobs`` forked worker processes (so ``func``
    and ``items`` need not be picklable; results must be), in order. Runs in this process when
    ``jobs`` is 1, there is one item, or the platform cannot fork. ``progress(done, total)``
    is called as results arrive (in order)."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    items = list(items)
    report = progress or (lambda done, total: None)
    if jobs == 1 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        results = []
        for x in items:
            results.append(func(x))
            report(len(results), len(items))
        return results
    _TASK[:] = [(func, items)]
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(items))) as pool:
            results = []
            for r in pool.imap(_run, range(len(items)), chunksize=1):
                results.append(r)
                report(len(results), len(items))
            return results
    finally:
        _TASK.clear()


def cpu_jobs() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
