"""`python -m rsapp batch` with the shipped model: ponds on tile seams come out whole and counted, an interrupted
run resumes, the local workers are kept (model loaded) for the next run until idle or stopped, and a real Dask
scheduler with two workers (started here on 127.0.0.1) gives the same features."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import geopandas as gpd
import pytest
import shapely

from rsapp.batch.store import progress_path
from tests.batch.scenes import GSD_M, ORIGIN, pond_scene
from tests.conftest import ROOT

POND_M2 = 3.14159 * 45 * 60  # the ellipses pond_scene draws, at 1 m
PROMPT = "[SEG] segment the water"


def _batch(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsapp", "batch", *map(str, args), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", autouse=True)
def no_workers_left():
    yield
    subprocess.run([sys.executable, "-m", "rsapp", "batch", "--stop-workers"], cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return pond_scene(tmp_path_factory.mktemp("ponds") / "ponds.tif", side=1536)


@pytest.fixture(scope="module")
def local_run(scene, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ponds.gpkg"
    r = _batch(scene[0], "--prompt", PROMPT, "--out", out)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def _ponds_found(out, centres):
    """The water layer, and how many of its features meet each pond's middle (a 10 m disc: the model's water
    masks have small holes)."""
    water = gpd.read_file(out, layer="water")
    discs = [shapely.Point(ORIGIN[0] + c * GSD_M, ORIGIN[1] - r * GSD_M).buffer(10) for r, c in centres]
    return water, [int(water.intersects(d).sum()) for d in discs]


def test_ponds_on_seams_come_out_whole_and_counted(scene, local_run):
    out, report = local_run
    _, centres = scene
    water, hits = _ponds_found(out, centres)
    assert hits == [1] * len(centres)  # every pond is one feature, none split at a seam
    assert abs(len(water) - len(centres)) <= 0.1 * len(centres), len(water)
    assert all(0.8 * POND_M2 < a < 1.25 * POND_M2 for a in water["area_m2"])
    assert report["layers"]["water"]["count"] == len(water) and report["tiles"] == report["tiles_run"] == 16
    tiles = gpd.read_file(out, layer="tiles")
    assert len(tiles) == 16 and tiles["text"].str.contains("water").any()


def test_an_interrupted_run_resumes_where_it_stopped(scene, local_run, tmp_path):
    out = tmp_path / "ponds.geojson"
    proc = subprocess.Popen([sys.executable, "-m", "rsapp", "batch", str(scene[0]), "--prompt", PROMPT, "--out",
                             str(out), "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            # Ctrl-C reaches it as in a terminal, even when the tests run in the background
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        lines = progress_path(out).read_text().splitlines() if progress_path(out).exists() else []
        if len(lines) >= 1 + 2:  # the settings line and two finished tiles
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, to the command and its worker processes
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    done = len(progress_path(out).read_text().splitlines()) - 1
    assert 2 <= done < 16, done
    assert out.exists()  # the partial output is readable
    partial = json.loads(out.read_text())
    assert partial["type"] == "FeatureCollection"
    r = _batch(scene[0], "--prompt", PROMPT, "--out", out)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["tiles_resumed"] == done and report["tiles_run"] == 16 - done
    assert report["layers"]["water"]["count"] == local_run[1]["layers"]["water"]["count"]
    changed = _batch(scene[0], "--prompt", "[SEG] segment the roads", "--out", out)
    assert changed.returncode == 2 and "--fresh" in changed.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dask_scheduler_and_two_workers_give_the_same_features(scene, local_run, tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        time.sleep(3)
        procs += [subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nworkers", "1", "--nthreads",
                                    "1", "--no-dashboard", "--host", "127.0.0.1"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        out = tmp_path / "ponds.gpkg"
        r = _batch(scene[0], "--prompt", PROMPT, "--out", out, "--scheduler", address)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["scheduler"] == address and report["tiles_run"] == 16
        mine = gpd.read_file(out, layer="water").geometry.union_all()
        local = gpd.read_file(local_run[0], layer="water").geometry.union_all()
        assert mine.symmetric_difference(local).area <= 0.01 * local.area
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    unreachable = _batch(scene[0], "--prompt", PROMPT, "--out", tmp_path / "x.gpkg", "--scheduler", address)
    assert unreachable.returncode == 2 and "scheduler" in unreachable.stderr


def _gone(address: str, timeout: float = 60) -> bool:
    """Whether the scheduler at address stops listening within timeout."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.2)
    return False


def _workers_of(scheduler_file) -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "worker" in cmd and str(scheduler_file) in cmd:
            found.append(p)
    return found


def _no_workers_within(scheduler_file, timeout: float = 60) -> bool:
    deadline = time.time() + timeout
    while _workers_of(scheduler_file):
        if time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_local_workers_are_kept_for_the_next_run_then_stop(scene, local_run, tmp_path):
    """The default local cluster stays up, model loaded, for the next batch (the same scheduler serves it); it
    leaves when stopped, or by itself once idle for --keep seconds, with its workers; --keep 0 closes it with the
    run."""
    from rsapp.batch import kept_cluster

    first = local_run[1]
    assert first["cluster"] == "kept"
    again = _batch(scene[0], "--prompt", PROMPT, "--out", tmp_path / "again.gpkg")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["cluster"] == "kept" and report["scheduler"] == first["scheduler"] and report["tiles_run"] == 16
    assert _workers_of(kept_cluster.folder() / "scheduler.json")
    stopped = subprocess.run([sys.executable, "-m", "rsapp", "batch", "--stop-workers"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert _gone(first["scheduler"]) and _no_workers_within(kept_cluster.folder() / "scheduler.json")

    short = _batch(scene[0], "--prompt", PROMPT, "--out", tmp_path / "short.gpkg", "--keep", "30")
    assert short.returncode == 0, short.stderr
    address = json.loads(short.stdout)["scheduler"]
    assert address != first["scheduler"]
    # idle for 30 s (the shortest keep) after its last tile, the scheduler closes by itself; its workers leave too
    assert _gone(address, timeout=120) and _no_workers_within(kept_cluster.folder() / "scheduler.json")

    closed = _batch(scene[0], "--prompt", PROMPT, "--out", tmp_path / "closed.gpkg", "--keep", "0")
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["cluster"] == "run"
