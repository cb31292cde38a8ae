"""Run a batch: plan the tiles, skip the finished ones, run the rest on Dask (local workers kept between runs by
default, rsapp.batch.kept_cluster; a LocalCluster closed with the run when keep is 0; or the scheduler given), record
each as it finishes, merge, write. Ctrl-C stops the run and still writes what is done."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import shapely
from tqdm import tqdm

from rsapp.batch.merge import merge, totals
from rsapp.batch.store import Store
from rsapp.batch.tiles import Tile, plan, scene_paths
from rsapp.batch.worker import Job, TileResult, worker_threads
from rsapp.errors import RsappError
from rsapp.export import frames_to_geojson
from rsapp.geo import Scene

OUT_SUFFIXES = (".gpkg", ".geojson", ".json")


@dataclass
class BatchReport:
    out: str
    scenes: int
    tiles: int
    tiles_resumed: int
    tiles_run: int
    seconds: float
    tiles_per_s: float
    layers: dict = field(default_factory=dict)  # layer → {count, area_m2}
    notes: dict = field(default_factory=dict)  # note → how many tiles
    interrupted: bool = False
    scheduler: str = ""
    dashboard: str | None = None
    cluster: str = ""  # "given", "kept" (local workers left running keep_s idle seconds) or "run" (closed with it)

    def to_dict(self) -> dict:
        return asdict(self)


def check_out(out: Path) -> None:
    """The output's kind is told by its extension."""
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise RsappError(f"--out must end in .gpkg or .geojson (got {out.name})")


def _check_scenes(paths: list[Path]) -> None:
    kinds = set()
    for p in paths:
        with Scene(p) as s:
            kinds.add(s.georeferenced)
    if len(kinds) > 1:
        raise RsappError("the batch mixes georeferenced and unreferenced images: run them separately")


@dataclass
class Batch:
    """A planned batch: its tiles, its progress store, and the jobs still to run."""

    prompt: str
    out: Path
    tiles: list[Tile]
    store: Store
    jobs: list[Job]
    report: BatchReport
    layers: dict = field(default_factory=dict)  # merged layers, once finished

    def finish(self, seconds: float) -> BatchReport:
        """Counts and rates; the output written from every finished tile (also after an interruption)."""
        r = self.report
        r.seconds = round(seconds, 2)
        r.tiles_run = len(self.store.done) - r.tiles_resumed
        r.tiles_per_s = round(r.tiles_run / r.seconds, 3) if r.seconds else 0.0
        self.layers = write_output(self.out, list(self.store.done.values()), self.tiles, self.prompt, r)
        return r

    def run_here(self) -> Iterator[int]:
        """The jobs in this process, with this process's model (the app's); yields after each finished tile."""
        from rsapp.batch.worker import run_tile

        for i, job in enumerate(self.jobs, 1):
            self.store.add(run_tile(job))
            yield i


def prepare(inputs: list[str], prompt: str, out: Path, weights: str | None, aoi: shapely.Geometry | None = None,
            tile: int = 512, overlap: int = 64, fresh: bool = False, torch_threads: int = 0) -> Batch:
    """Check everything, plan the tiles, open the progress store: nothing has run yet."""
    from rsapp.analyst import default_weights
    from rsapp.tasks.tokens import MAX_PROMPT_CHARS

    check_out(out)
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise RsappError(f"the prompt must have 1–{MAX_PROMPT_CHARS} characters")
    paths = scene_paths(inputs)
    _check_scenes(paths)
    tiles = plan(paths, tile, overlap, aoi)
    weights = str(Path(weights or default_weights()).resolve())
    settings = {"prompt": prompt, "weights": weights, "tile": tile, "overlap": overlap,
                "aoi": aoi.wkt if aoi is not None else None, "scenes": [str(p.resolve()) for p in paths]}
    store = Store(out, settings, fresh)
    todo = [t for t in tiles if t.key not in store.done]
    jobs = [Job(t, prompt, weights, settings["aoi"], torch_threads) for t in todo]
    report = BatchReport(str(out), len(paths), len(tiles), len(tiles) - len(todo), 0, 0.0, 0.0)
    return Batch(prompt, out, tiles, store, jobs, report)


def run_batch(inputs: list[str], prompt: str, out: Path, weights: str | None, aoi: shapely.Geometry | None = None,
              tile: int = 512, overlap: int = 64, scheduler: str | None = None, workers: int = 1,
              fresh: bool = False, progress: bool = True, keep_s: float = 0.0) -> BatchReport:
    """keep_s > 0 (the CLI's default): without a scheduler, run on local workers kept that long once idle."""
    batch = prepare(inputs, prompt, out, weights, aoi, tile, overlap, fresh,
                    torch_threads=0 if scheduler else worker_threads(workers))
    t0 = time.perf_counter()
    if batch.jobs:
        try:
            _run_on_dask(batch.jobs, batch.store, batch.report, scheduler, workers, progress, keep_s)
        except KeyboardInterrupt:
            batch.report.interrupted = True
    return batch.finish(time.perf_counter() - t0)


def _run_on_dask(jobs: list[Job], store: Store, report: BatchReport, scheduler: str | None, workers: int,
                 progress: bool, keep_s: float = 0.0) -> None:
    from distributed import Client, LocalCluster, as_completed

    from rsapp.batch import kept_cluster
    from rsapp.batch.worker import run_tile

    cluster = None
    try:
        if scheduler:
            report.cluster = "given"
            try:
                client = Client(scheduler, timeout="10s")
            except OSError as e:
                raise RsappError(f"cannot reach the Dask scheduler at {scheduler} ({e})") from None
        elif keep_s > 0:
            report.cluster = "kept"
            client = kept_cluster.connect(workers, keep_s)
        else:
            report.cluster = "run"
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None)
            client = Client(cluster)
        report.scheduler = client.scheduler.address
        report.dashboard = client.dashboard_link if scheduler else None
        if report.dashboard and progress:
            tqdm.write(f"Dask dashboard: {report.dashboard}")
        futures = client.map(run_tile, jobs, pure=False)
        with tqdm(total=len(jobs), desc="tiles", unit="tile", disable=not progress) as bar:
            for future in as_completed(futures):
                try:
                    result: TileResult = future.result()
                except Exception as e:
                    _explain_cluster_error(e, report.scheduler)
                    raise
                store.add(result)
                bar.update(1)
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _explain_cluster_error(error: BaseException, scheduler: str) -> None:
    """A cluster that cannot import rsapp (the scheduler unpickles the tasks, the workers run them) is a set-up
    mistake with a one-line fix, not a traceback."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] == "rsapp":
            raise RsappError(f"the Dask scheduler or workers at {scheduler} cannot import rsapp: start `dask "
                             "scheduler` and `dask worker` from the project folder with PYTHONPATH=. (README, Batch)"
                             ) from None
        error = error.__cause__ or error.__context__


def write_output(out: Path, results: list[TileResult], tiles: list[Tile], prompt: str, report: BatchReport) -> dict:
    """The merged layers and the tile table: a GeoPackage (one layer each) or a GeoJSON collection. Returns the
    merged layers."""
    layers, table = merge(results, tiles, prompt)
    report.layers = totals(layers)
    notes: dict[str, int] = {}
    for r in results:
        if r.note:
            notes[r.note] = notes.get(r.note, 0) + 1
    report.notes = notes
    tmp = out.with_name(f"{out.stem}.partial{out.suffix}")  # then moved into place: never half a file at OUT
    tmp.unlink(missing_ok=True)
    if out.suffix.lower() == ".gpkg":
        for name, gdf in {**layers, "tiles": table}.items():
            if len(gdf):
                gdf.to_file(tmp, layer=name, driver="GPKG", engine="pyogrio")
    else:
        tmp.write_text(json.dumps(frames_to_geojson([*layers.values(), table])))
    if tmp.exists():
        tmp.replace(out)
    return layers
