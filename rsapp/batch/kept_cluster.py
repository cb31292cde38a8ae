"""The default cluster of `batch`: a local Dask scheduler and workers, started detached and kept after the run until
they have been idle for `keep` seconds (the scheduler's own --idle-timeout; its workers leave with it).

Starting worker processes and loading the model in them costs ~5 s; a 512 px tile costs ~0.2 s. A cluster made
for one run and closed with it makes every run pay the start-up again: a rerun after an interruption, the next
prompt over the same scenes. Kept workers keep their model (rsapp.batch.worker loads it once per process), so the
next run pays only its tiles.

The scheduler file and a note of what the cluster runs live in RSAPP_CACHE/batch-cluster/. A kept cluster is
reused only when it has the asked number of workers and idle time, runs the same rsapp code (a fingerprint of the
package's files and the Python interpreter), and while the processes it started live; otherwise it is shut down
(through Dask, then by terminating the process groups it started) and a new one started. A lock keeps two
batches from starting two clusters at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rsapp.cache import cache_dir
from rsapp.errors import RsappError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KEEP_S = 300.0
# The scheduler counts idle time from its start, before any worker has connected and any task is queued: a shorter
# keep could close it while its workers still start (2-10 s on a busy machine).
MIN_KEEP_S = 30.0
START_TIMEOUT_S = 120.0


def folder() -> Path:
    return cache_dir() / "batch-cluster"


def fingerprint() -> str:
    """Changes when rsapp's code or the interpreter does: a kept worker would still run the old code."""
    h = hashlib.sha256(sys.executable.encode())
    for path in sorted((ROOT / "rsapp").rglob("*.py")):
        st = path.stat()
        h.update(f"{path.relative_to(ROOT)}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()[:16]


@contextmanager
def _locked(where: Path):
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def connect(workers: int, keep_s: float = DEFAULT_KEEP_S):
    """A Client of the kept cluster with `workers` workers: the running one when it fits, else a new one."""
    from distributed import Client

    if keep_s < MIN_KEEP_S:
        raise RsappError(f"local workers are kept at least {MIN_KEEP_S:g} s (or 0: closed with the run)")

    where = folder()
    with _locked(where):
        client = _running(where, workers, keep_s)
        if client is not None:
            return client
        _shutdown(where)
        _start(where, workers, keep_s)
        try:
            client = Client(scheduler_file=str(where / "scheduler.json"), timeout="30s")
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            raise RsappError(f"the local Dask cluster did not start ({e}); its log: {where / 'cluster.log'}") from None
        return client


def stop() -> bool:
    """Shut the kept cluster down now; whether one was running."""
    where = folder()
    with _locked(where):
        return _shutdown(where)


def _note(where: Path) -> dict:
    try:
        return json.loads((where / "cluster.json").read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running(where: Path, workers: int, keep_s: float):
    """A Client of the kept cluster when its processes live and it runs what is asked, else None."""
    from distributed import Client

    note = _note(where)
    pids = note.pop("pids", [])
    if note != {"workers": workers, "fingerprint": fingerprint(), "keep_s": keep_s}:
        return None
    if not pids or not all(_alive(pid) for pid in pids) or not (where / "scheduler.json").exists():
        return None
    try:  # the processes live: a slow answer is a busy machine, not a dead scheduler
        client = Client(scheduler_file=str(where / "scheduler.json"), timeout="30s")
    except (OSError, TimeoutError, ValueError):
        return None
    if len(client.scheduler_info(n_workers=-1)["workers"]) < workers:
        client.close()
        return None
    return client


def _shutdown(where: Path) -> bool:
    """Stop the kept cluster: asked through Dask, and its process groups terminated if they are still there."""
    from distributed import Client

    pids = [pid for pid in _note(where).get("pids", []) if _alive(pid)]
    if pids and (where / "scheduler.json").exists():
        try:
            with Client(scheduler_file=str(where / "scheduler.json"), timeout="10s") as client:
                client.shutdown()  # the scheduler and its workers
        except (OSError, TimeoutError, ValueError):
            pass
    deadline = time.time() + 10
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)  # each was started as the leader of its own group
            except (ProcessLookupError, PermissionError):
                pass
    for name in ("scheduler.json", "cluster.json"):
        (where / name).unlink(missing_ok=True)
    return bool(pids)


def _start(where: Path, workers: int, keep_s: float) -> None:
    sched = where / "scheduler.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    log = open(where / "cluster.log", "ab")
    common = dict(cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                  start_new_session=True)  # detached: the run's Ctrl-C does not reach them
    scheduler = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--idle-timeout", f"{keep_s:g}s", "--scheduler-file", str(sched)],
                                 **common)
    deadline = time.time() + START_TIMEOUT_S
    while not sched.exists():
        if time.time() > deadline or scheduler.poll() is not None:
            raise RsappError(f"the local Dask scheduler did not start; its log: {where / 'cluster.log'}")
        time.sleep(0.05)
    worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", "--scheduler-file", str(sched),
                               "--nworkers", str(workers), "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1",
                               "--death-timeout", "30"], **common)
    (where / "cluster.json").write_text(json.dumps({"workers": workers, "fingerprint": fingerprint(),
                                                    "keep_s": keep_s, "pids": [scheduler.pid, worker.pid]}))
