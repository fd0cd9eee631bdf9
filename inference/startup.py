"""How a serving process imports the engine: with Python's garbage collector paused.

Importing ``inference.engine`` imports TensorFlow and Keras: about 700,000 Python objects, nearly
all of them alive for as long as the process. While they are created, the collector runs again
and again, and each run of its oldest generation walks every object created so far; none of it
is garbage. So a serving process (a Celery worker's pool process, and the fresh process
``bench_inference`` times as a worker start) imports the engine with the collector paused, then
freezes what the import left (``gc.freeze``: those objects are never walked again, as Python's
documentation advises for start-up state that lives as long as the process) and turns the
collector back on. Models loaded later are not frozen, so a version switch still frees the old
one. Measured on 2 cores (machine G of the README's Performance section, three fresh processes
each way, one-off script): the import took 2.97-3.28 s instead of 3.70-3.98 s.

The import keeps one core busy running Python; the worker gives the other one the reading and
hashing of its model files meanwhile (``alongside``: ``artifacts.hash_files_ahead``), which
the load would otherwise do after the import.

Imports nothing heavy itself: the worker calls it before TensorFlow is loaded.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType

logger = logging.getLogger(__name__)


def import_engine(*, alongside: Callable[[], None] | None = None) -> ModuleType:
    """``inference.engine``, imported with the collector paused (see the module docstring); in a
    process that has already imported it, simply that module. ``alongside`` runs in a thread
    during the import and is waited for; its errors are logged, not raised (what it prepares,
    the load does itself when it is missing, and reports)."""
    if "inference.engine" in sys.modules:
        return sys.modules["inference.engine"]
    helper = None
    if alongside is not None:
        helper = threading.Thread(target=_logged(alongside), name="engine-import-alongside")
        helper.start()
    enabled = gc.isenabled()
    gc.disable()
    try:
        from inference import engine
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
        if helper is not None:
            helper.join()
    return engine


def _logged(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - the load does the same work again and reports it
            logger.warning(
                "preparing the model files during the engine import failed", exc_info=True
            )

    return run
