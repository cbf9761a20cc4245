"""`python -m hub` with a memory probe, for bench/memory.py: on SIGUSR1 the process writes, to the file
named by MEMHUB_OUT plus `.N` for the Nth signal, its RSS, the live objects per type (count and
shallow bytes, from the garbage collector) and, when tracemalloc runs (`python -X tracemalloc=1 -m
bench.memhub`), the allocated bytes per source line. Nothing else differs from `python -m hub`."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from types import CoroutineType, FrameType
from typing import Any


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def probe() -> dict[str, Any]:
    gc.collect()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    coroutines: Counter[str] = Counter()
    coroutine_sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
        if isinstance(obj, CoroutineType):  # which coroutines: the frames a connection holds
            where = f"{obj.cr_code.co_filename}:{obj.cr_code.co_qualname}"
            coroutines[where] += 1
            coroutine_sizes[where] += sys.getsizeof(obj)
    result: dict[str, Any] = {
        "rss_kb": _rss_kb(),
        "types": {n: [counts[n], sizes[n]] for n in counts},
        "coroutines": {n: [coroutines[n], coroutine_sizes[n]] for n in coroutines},
    }
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        lines = snapshot.statistics("lineno")
        result["traced_bytes"] = sum(stat.size for stat in lines)
        result["lines"] = {f"{s.traceback[0].filename}:{s.traceback[0].lineno}": [s.count, s.size] for s in lines}
    return result


_probes = 0


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _probes  # noqa: PLW0603 - one counter for the process's signal handler
    _probes += 1
    path = f"{os.environ['MEMHUB_OUT']}.{_probes}"
    with open(path + ".tmp", "w") as out:
        json.dump(probe(), out)
    os.replace(path + ".tmp", path)  # whole, or not there yet


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _on_signal)
    from hub.__main__ import main

    sys.exit(main())
