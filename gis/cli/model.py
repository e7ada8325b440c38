"""``gis model``: train the change classifier (labelled pairs, verdicts), list the models, roll back."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gis.cli.options import force_option, workspace_option
from gis.outputs import check_output, inputs


@click.group()
def model():
    """Train the change classifier used by `gis detect --model` and the weekly run."""


@model.command()
@click.option("--workspace", "workspace", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Learn from every verdict in this workspace's store, over all its epochs; the model is "
                   "kept in its registry and runs in the weekly run if it beats the current one.")
@click.option("--pairs", type=click.Path(path_type=Path), default=None,
              help="Folder with A/ (before), B/ (after), label/ (255 = changed) tiles of the same names.")
@click.option("--alerts", type=click.Path(path_type=Path), default=None,
              help="GeoPackage of alerts with a verdict (or status) column, e.g. the alert store.")
@click.option("--layer", default="alerts", show_default=True, help="Layer of --alerts.")
@click.option("--before", type=click.Path(path_type=Path), default=None, help="Earlier orthophoto of the alerts.")
@click.option("--after", type=click.Path(path_type=Path), default=None, help="Later orthophoto of the alerts.")
@click.option("--out", default=None, type=click.Path(path_type=Path),
              help="Model file (.joblib); required without --workspace.")
@click.option("--use", "use_it", is_flag=True,
              help="With --workspace: make the new model current even if it does not beat the current one.")
@click.option("--register/--no-register", default=True, show_default=True,
              help="Move each before image onto its after image's content first, as `gis detect` does.")
@force_option
def train(workspace, pairs, alerts, layer, before, after, out, use_it, register, force):
    """Train from a workspace's verdicts (--workspace [--pairs]), labelled pairs (--pairs)
    or one pair's verdicts (--alerts --before --after).

    \b
    Examples:
      gis model train --workspace layers/demo
      gis model train --workspace layers/demo --pairs ../shared/data/levir-cd-samples
      gis model train --pairs ../shared/data/levir-cd-samples --out model.joblib
      gis model train --alerts ws/store.gpkg --before e1.tif --after e2.tif --out model.joblib
    """
    # imported when training runs: `gis model train --help` need not wait for
    # geopandas and the detection modules (~0.7 s)
    from gis.detect.classifier import save_model
    from gis.detect.training import train_from_alerts, train_from_pairs

    if workspace is not None:
        if alerts:
            raise click.UsageError("--workspace learns from the store's verdicts: drop --alerts")
        if out:
            check_output(out, "joblib", protected=inputs(pairs=pairs), force=force)
        from gis.detect.champion import train_workspace
        from gis.workspace import load_workspace

        r = train_workspace(load_workspace(workspace), pairs=pairs, use=use_it, register=register, out=out)
        d = r.decision
        t = d.trained_on
        click.echo(f"model {d.version} trained on {t.get('alerts', 0)} verdicts ({t.get('real', 0)} real, "
                   f"{t.get('false', 0)} false alarms, {t.get('patrol_reported', 0)} reported by patrols; "
                   f"{t.get('pair_rows', 0)} rows from labelled pairs): "
                   f"{'now current' if d.promote or use_it else 'kept aside'}. {d.reason}")
        return
    if bool(pairs) == bool(alerts):
        raise click.UsageError("give --workspace, or either --pairs or --alerts (with --before and --after)")
    if alerts and not (before and after):
        raise click.UsageError("--alerts needs --before and --after (the images the alerts came from)")
    if out is None:
        raise click.UsageError("--out is required without --workspace")
    check_output(out, "joblib", protected=inputs(pairs=pairs, alerts=alerts, before=before, after=after),
                 force=force)
    m = train_from_pairs(pairs, register=register) if pairs else \
        train_from_alerts(alerts, before, after, layer=layer, register=register)
    save_model(m, out)
    click.echo(f"{m['mode']} model trained on {m['n_samples']} examples ({m['n_positive']} changes) -> {out}")


@model.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="The registry as JSON.")
def list_models(workspace, as_json):
    """The workspace's verdict models: what each learnt from, how it scored, which one runs."""
    from gis.detect.champion import Registry
    from gis.workspace import load_workspace

    reg = Registry(load_workspace(workspace).store_dir).read()
    if as_json:
        click.echo(json.dumps(reg, ensure_ascii=False, indent=2))
        return
    if not reg["models"]:
        click.echo("no verdict model yet: detection runs unsupervised (train one with `gis model train --workspace`)")
        return
    for m in reg["models"]:
        t, sc = m.get("trained_on", {}), m.get("scores", {}).get("challenger", {})
        mark = "*" if m["version"] == reg["current"] else " "
        click.echo(f"{mark} {m['version']:<4} {m['created']}  {t.get('alerts', 0)} verdicts "
                   f"({t.get('real', 0)} real, {t.get('false', 0)} false)  "
                   + (f"held out: {sc.get('real_kept', 0)}/{sc.get('real', 0)} real kept, "
                      f"{sc.get('false_kept', 0)}/{sc.get('false', 0)} false alarms kept  " if sc else "")
                   + ("promoted" if m.get("promoted") else "kept aside"))
    click.echo(f"current: {reg['current'] or 'none (unsupervised)'}")


@model.command("use")
@click.argument("version")
@workspace_option
def use(version, workspace):
    """Make VERSION the model the weekly run uses (roll back); `none` runs unsupervised."""
    from gis.detect.champion import Registry
    from gis.workspace import load_workspace

    ws = load_workspace(workspace)
    Registry(ws.store_dir).use(version, epoch=ws.latest_epoch.date.isoformat() if ws.latest_epoch else "")
    click.echo(f"the weekly run now uses {version if version not in ('', 'none') else 'no model (unsupervised)'}")
