"""``gis serve``: the patrol teams' phone app and the planning office's pages.

One FastAPI application built by :func:`gis.serve.app.create_app` from a
:class:`gis.serve.config.Settings`. Who may do what lives in
:mod:`gis.serve.permissions`; users, districts and API tokens in
:mod:`gis.serve.accounts` (tables in the store's own database); the one
adapter to the alert store in :mod:`gis.serve.storage`. Route handlers in
:mod:`gis.serve.api` (JSON) and :mod:`gis.serve.pages` (HTML) only parse,
check and call.
"""
