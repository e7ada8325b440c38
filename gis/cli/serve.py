"""``gis serve``: the patrol app and the office pages of a workspace, over HTTP."""

from __future__ import annotations

import os

import click

from gis.cli.options import workspace_option


@click.command("serve")
@workspace_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface of the intranet server).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (several share one store; PostGIS suits many users).")
def serve(workspace, host, port, workers):
    """Serve the patrol phone app (/patrol/), the office pages (/) and the JSON API (/api/).

    Users log in with accounts made by `gis users add`. Put HTTPS in front
    (the county's reverse proxy) when phones reach it over a network.

    \b
    Example:
      gis users add office1 --workspace layers/demo --role office --password-stdin
      gis serve --workspace layers/demo --port 8000
    """
    import uvicorn

    from gis.serve.app import create_app
    from gis.serve.config import Settings

    settings = Settings.from_workspace(workspace)  # refuses bad settings before listening
    click.echo(f"serving {settings.root} on http://{host}:{port}/ (patrol app: /patrol/, stop: Ctrl-C)")
    if workers > 1:
        os.environ["GIS_WORKSPACE"] = str(settings.root)
        uvicorn.run("gis.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="info", proxy_headers=True)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=True)
