"""``gis model train``: a local change classifier from labelled pairs or patrol verdicts."""

from __future__ import annotations

from pathlib import Path

import click

from gis.cli.options import force_option
from gis.outputs import check_output, inputs


@click.group()
def model():
    """Train the change classifier used by `gis detect --model`."""


@model.command()
@click.option("--pairs", type=click.Path(path_type=Path), default=None,
              help="Folder with A/ (before), B/ (after), label/ (255 = changed) tiles of the same names.")
@click.option("--alerts", type=click.Path(path_type=Path), default=None,
              help="GeoPackage of alerts with a verdict (or status) column, e.g. the alert store.")
@click.option("--layer", default="alerts", show_default=True, help="Layer of --alerts.")
@click.option("--before", type=click.Path(path_type=Path), default=None, help="Earlier orthophoto of the alerts.")
@click.option("--after", type=click.Path(path_type=Path), default=None, help="Later orthophoto of the alerts.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model file (.joblib).")
@click.option("--register/--no-register", default=True, show_default=True,
              help="Move each before image onto its after image's content first, as `gis detect` does.")
@force_option
def train(pairs, alerts, layer, before, after, out, register, force):
    """Train from labelled pairs (--pairs) or from verdicts (--alerts --before --after).

    \b
    Examples:
      gis model train --pairs ../shared/data/levir-cd-samples --out model.joblib
      gis model train --alerts ws/store.gpkg --before e1.tif --after e2.tif --out model.joblib
    """
    # imported when training runs: `gis model train --help` need not wait for
    # geopandas and the detection modules (~0.7 s)
    from gis.detect.classifier import save_model
    from gis.detect.training import train_from_alerts, train_from_pairs

    if bool(pairs) == bool(alerts):
        raise click.UsageError("give either --pairs or --alerts (with --before and --after)")
    if alerts and not (before and after):
        raise click.UsageError("--alerts needs --before and --after (the images the alerts came from)")
    check_output(out, "joblib", protected=inputs(pairs=pairs, alerts=alerts, before=before, after=after),
                 force=force)
    m = train_from_pairs(pairs, register=register) if pairs else \
        train_from_alerts(alerts, before, after, layer=layer, register=register)
    save_model(m, out)
    click.echo(f"{m['mode']} model trained on {m['n_samples']} examples ({m['n_positive']} changes) -> {out}")
