"""``gis detect``: change polygons between two survey dates of imagery."""

from __future__ import annotations

import atexit
import contextlib
import gc
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gis.atomic import atomic_path
from gis.cli.options import force_option, scheduler_option
from gis.outputs import check_distinct, check_output, inputs


def _bands(value: str | None):
    if not value:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("give 1-based band numbers separated by commas, e.g. 1,2,3") from None


@contextlib.contextmanager
def _windows_bar(show: bool):
    """A transient bar on stderr of the windows done, as ``progress(done, total)``; taken
    off when detection ends or fails (so an error is not printed below it). Off a
    terminal there is none: rich would still end it with a blank line."""
    console = Console(stderr=True)
    with Progress(TextColumn("detecting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not show or not console.is_terminal) as bar:
        task = bar.add_task("detecting", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextlib.contextmanager
def _collector_spared():
    """A run's imports (geopandas, pandas, OpenCV, rasterio) make ~10^6 objects that
    live as long as the process. Python's cyclic collector would walk them during the
    imports, again while the windows run (~40 ms in all) and once more at exit (~0.1
    s), for nothing: they are made with the collector paused and frozen for the run,
    then thawed (for an in-process caller, such as a test); the program's own exit
    leaves them frozen (atexit handlers run before that last walk)."""
    if not gc.isenabled() or gc.get_freeze_count():
        yield  # the caller manages the collector
        return
    gc.disable()
    try:
        import geopandas  # noqa: F401 - the output is a GeoDataFrame

        import gis.detect.run  # noqa: F401 - the detection modules
    finally:
        gc.enable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        atexit.unregister(gc.freeze)  # once, however many runs
        atexit.register(gc.freeze)


@click.command()
@click.option("--before", required=True, type=click.Path(path_type=Path), help="Earlier orthophoto (GeoTIFF/COG).")
@click.option("--after", required=True, type=click.Path(path_type=Path),
              help="Later orthophoto; its grid and CRS are the output's.")
@click.option("--dsm-before", type=click.Path(path_type=Path), default=None, help="DSM of the earlier date.")
@click.option("--dsm-after", type=click.Path(path_type=Path), default=None, help="DSM of the later date.")
@click.option("--within", type=click.Path(path_type=Path), default=None,
              help="Red lines, or any polygon layer (town office boundaries, 镇办辖区): only blocks within "
                   "it (+ --buffer) are read, so the cost follows its area [default: the whole image].")
@click.option("--parcels", type=click.Path(path_type=Path), default=None, help="Parcels, for parcel_id.")
@click.option("--inventory", type=click.Path(path_type=Path), default=None,
              help="Structure inventory (房屋摸底): changes on known structures get in_inventory=true.")
@click.option("--model", type=click.Path(path_type=Path), default=None,
              help="Classifier from `gis model train` (.joblib) or an ONNX change model (.onnx).")
@click.option("--mask-out", type=click.Path(path_type=Path), default=None,
              help="Also write the binary change raster on the later image's grid.")
@click.option("--min-area", type=float, default=None,
              help="Minimum object area in m2 [default: 20 for structures, 100 for crops].")
@click.option("--buffer", type=float, default=20.0, show_default=True, help="Metres around --within.")
@click.option("--workers", type=int, default=1, show_default=True, help="Parallel worker processes.")
@scheduler_option
@click.option("--bands-before", default=None, help="Band map of the earlier image, e.g. 1,2,3 or 1,2,3,4.")
@click.option("--bands-after", default=None, help="Band map of the later image.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output GeoPackage (layer changes).")
@click.option("--register/--no-register", default=True, show_default=True,
              help="Measure how far the before image is offset from the after image and correct it.")
@click.option("--progress/--no-progress", default=True,
              help="Progress bar on stderr (shown on a terminal only).")
@force_option
def detect(before, after, dsm_before, dsm_after, within, parcels, inventory, model, mask_out, min_area,
           buffer, workers, scheduler, bands_before, bands_after, out, register, progress, force):
    """Detect new structures, new crops and demolitions between two orthophotos.

    \b
    Example:
      gis detect --before ortho_2026-10-01.tif --after ortho_2026-11-01.tif \\
          --within redlines.gpkg --inventory structures.gpkg --out changes.gpkg
      gis detect --before a.tif --after b.tif --within towns.gpkg --scheduler local:4 --out c.gpkg
    """
    if scheduler and workers > 1:
        raise click.UsageError("give --workers or --scheduler, not both")
    own = inputs(before=before, after=after, dsm_before=dsm_before, dsm_after=dsm_after, within=within,
                 parcels=parcels, inventory=inventory, model=model)
    check_distinct(out=out, mask_out=mask_out)
    check_output(out, "gpkg", protected=own, force=force)
    if mask_out is not None:
        check_output(mask_out, "tif", protected=own, force=force)
    with _collector_spared():
        from gis.detect import detect_changes

        bb, ba = _bands(bands_before), _bands(bands_after)
        band_map = None
        if bb or ba:
            if not (bb and ba):
                raise click.UsageError("give both --bands-before and --bands-after")
            band_map = {"before": bb, "after": ba}
        with _windows_bar(progress) as report:
            changes = detect_changes(before, after, dsm_before=dsm_before, dsm_after=dsm_after, within=within,
                                     inventory=inventory, parcels=parcels, model=model, min_area=min_area,
                                     buffer=buffer, workers=workers, mask_out=mask_out, progress=report,
                                     band_map=band_map, register=register, scheduler=scheduler)
        with atomic_path(out) as tmp:
            changes.to_file(tmp, layer="changes", driver="GPKG")
        counts = changes["kind"].value_counts().to_dict()
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no changes"
        click.echo(f"{len(changes)} change polygons ({summary}), {changes['area_mu'].sum():.2f} mu -> {out}")
