"""A serving process imports the engine with the collector paused, and leaves it working; it
hashes its model files meanwhile, and a hash taken ahead serves one check of the same file."""

import os
import threading
from pathlib import Path

from inference.checksums import hash_ahead, sha256_file
from tests.fresh_python import run_fresh_python

# Run in a fresh interpreter: the test process has imported TensorFlow long before.
CHILD = """
import gc, json, weakref
import django
django.setup()
import threading
before = gc.isenabled()
from inference.startup import import_engine
helpers = []

def alongside():
    helpers.append(threading.current_thread().name)
    raise RuntimeError("the model files are not there")  # logged; the import goes on

engine = import_engine(alongside=alongside)

class Cycle:
    pass

# What a version switch frees: an object made after the import, in a reference cycle.
later = Cycle()
later.me = later
freed = weakref.ref(later)
del later
gc.collect()
print(json.dumps({
    "before": before,
    "tensorflow": "tensorflow" in __import__("sys").modules,
    "engine": hasattr(engine, "EnsembleEngine"),
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "later_freed": freed() is None,
    "helpers": helpers,
}))
"""


def test_the_engine_import_is_frozen_and_the_collector_runs_again_for_what_comes_after():
    state = run_fresh_python(CHILD, timeout=300, TF_CPP_MIN_LOG_LEVEL="3")
    assert state["before"] and state["tensorflow"] and state["engine"]
    # TensorFlow's and Keras' objects are out of every later collection...
    assert state["frozen"] > 100_000
    # ...and the collector is on again: garbage made afterwards (an old model) is freed.
    assert state["enabled"] and state["later_freed"]
    # The work alongside ran in a thread of its own, was waited for, and its error did not stop
    # the import.
    assert state["helpers"] == ["engine-import-alongside"]


def test_a_hash_taken_ahead_answers_the_next_check_of_that_same_file_once(tmp_path):
    path = tmp_path / "serving.keras"
    path.write_bytes(b"a" * 1000)
    stat = path.stat()
    hash_ahead(path)
    # Changed in place without a trace in its inode, size or time (no real file does this in
    # the seconds of a start): the first check still answers from the hash taken ahead...
    path.write_bytes(b"b" * 1000)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ahead = sha256_file(path)
    # ...and only the first: the next one reads the file again.
    assert sha256_file(path) != ahead


def test_a_file_replaced_after_its_hash_was_taken_ahead_is_read_again(tmp_path):
    path = tmp_path / "serving.keras"
    path.write_bytes(b"a" * 1000)
    first = sha256_file(path)
    hash_ahead(path)
    other = tmp_path / "other"
    other.write_bytes(b"b" * 1000)
    os.replace(other, path)  # as a new upload or a download lands: another inode
    assert sha256_file(path) != first


def test_a_starting_worker_reads_its_model_files_once_for_their_check(
    ood_demo_version, monkeypatch
):
    from inference import checksums
    from inference.artifacts import hash_files_ahead, ood_local_path

    reads = []
    digest = checksums._digest
    monkeypatch.setattr(
        checksums, "_digest", lambda path: reads.append(Path(path).name) or digest(path)
    )
    # In a thread of its own, as during the import (it closes that thread's connection).
    helper = threading.Thread(target=hash_files_ahead, args=(ood_demo_version,))
    helper.start()
    helper.join()
    name = Path(ood_demo_version.ood["artifact"]).name
    assert reads == [name]
    ood_local_path(ood_demo_version)  # the load's check: answered by the hash taken ahead
    assert reads == [name]
    ood_local_path(ood_demo_version)  # any later check reads the file again
    assert reads == [name, name]
