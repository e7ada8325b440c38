"""``gis check``: read and validate layers, print what is wrong with them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gis.atomic import write_text_atomic
from gis.clearance import layers
from gis.cli.options import crs_option, id_from_layer_option, min_redline_option, working_crs_option
from gis.errors import LayerValidationError
from gis.outputs import check_output


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["redlines", "parcels", "inventory"]), default=None,
              help="What the layers are (default: guessed from their headers).")
@click.option("--layer", default=None, help="Layer name inside a multi-layer file.")
@crs_option
@working_crs_option
@id_from_layer_option
@min_redline_option
@click.option("--json", "json_out", default=None, metavar="FILE",
              help="Also write the report as JSON ('-' for standard output).")
def check(paths, kind, layer, source_crs, working_crs, id_from_layer, min_redline_m2, json_out):
    """Validate red-line, parcel and structure layers (项目红线 / 宗地 / 房屋摸底).

    Prints, for each layer: features, CRS, extent, header aliases used,
    geometry repaired with make_valid, and every problem with the ids
    concerned. Exits 2 if any layer has a problem.

    \b
    Example:
      gis check layers/demo/redlines.gpkg layers/demo/parcels.gpkg
      gis check 红线.dxf --crs EPSG:4547
    """
    if json_out and json_out != "-":
        check_output(json_out, "json", protected={p: "one of the layers checked" for p in paths})
    result = layers.check_layers(paths, kind=kind, layer=layer, source_crs=source_crs, working_crs=working_crs,
                                 id_from_layer=id_from_layer,
                                 min_redline_m2=layers.MIN_REDLINE_M2 if min_redline_m2 is None else min_redline_m2)
    for report in result.reports:
        click.echo(_render(report))
    if json_out:
        text = json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str)
        if json_out == "-":
            click.echo(text)
        else:
            write_text_atomic(json_out, text)
    bad = [r for r in result.reports if not r.ok]
    if bad:
        click.echo(f"{len(bad)} of {len(result.reports)} layer(s) have problems.", err=True)
        sys.exit(LayerValidationError.exit_code)
    click.echo(f"all {len(result.reports)} layer(s) OK (working CRS {result.working_crs.to_string()}).")


def _render(r: layers.LayerReport) -> str:
    lines = [f"{r.path}  [{r.kind}]"]
    lines.append(f"  features: {r.count}")
    crs = r.source_crs + (f" -> {r.crs} (reprojected)" if r.reprojected else "")
    lines.append(f"  CRS: {crs}")
    if r.bounds:
        lines.append("  extent: " + ", ".join(f"{v:.2f}" for v in r.bounds))
    if r.renamed:
        lines.append("  headers: " + ", ".join(f"{k} -> {v}" for k, v in r.renamed.items()))
    lines += [f"  WARNING: {w}" for w in r.warnings]
    if r.repairs:
        lines.append(f"  repaired ({len(r.repairs)}):")
        lines += [f"    {x['id']}: {x['reason']} ({x['action']})" for x in r.repairs]
    if r.problems:
        lines.append(f"  PROBLEMS ({len(r.problems)}):")
        for prob in r.problems:
            ids = ", ".join(str(i) for i in prob.ids[:20]) + (" ..." if len(prob.ids) > 20 else "")
            lines.append(f"    - {prob.message}: {ids}")
            if prob.hint:
                lines.append(f"      fix: {prob.hint}")
    else:
        lines.append("  OK")
    return "\n".join(lines)
