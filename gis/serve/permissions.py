"""Who may do what: the whole permission matrix of ``gis serve`` in one file.

One table says what each role can do (:data:`CAPABILITIES`); one function per
permission, ``can_<verb>_<thing>(user, obj)``, answers yes or no, and its
``check_*`` twin raises :class:`gis.errors.PermissionDenied` carrying the
reason. Route handlers call these and never look at roles themselves.

Which alerts a user sees is decided once, by :func:`visible_districts`: the
list query :func:`alerts_for_user` and the per-object check
:func:`can_view_alert` both use it, so a listed alert always passes the
check and an alert that fails it is never listed (the tests verify both).

Roles (the issue's words):

* ``patrol``: sees and edits only the alerts of its districts / town offices;
  records status changes along the lifecycle, verdicts, notes, reasons, photos;
* ``office`` (planning office, 两违 office): sees everything, dispatches alerts
  to teams, bulk status changes, reads workload, figures and maps; no users;
* ``leader``: reads maps, figures and bulletins (and so the alerts on them);
* ``admin``: users and teams; reads the team workload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from gis.errors import PermissionDenied

ROLES = ("admin", "office", "patrol", "leader")

#: role -> what it can do. The only place roles are spelled out.
CAPABILITIES: dict[str, frozenset[str]] = {
    "patrol": frozenset({"see_own_district_alerts", "record_verdict", "upload_photo"}),
    "office": frozenset({"see_all_alerts", "record_verdict", "upload_photo", "dispatch_alerts",
                         "bulk_change_alerts", "see_workload", "see_figures", "see_map"}),
    "leader": frozenset({"see_all_alerts", "see_figures", "see_map"}),
    "admin": frozenset({"manage_users", "see_workload"}),
}


def capabilities(user: Any) -> frozenset[str]:
    """What ``user`` can do (nothing for a disabled user or an unknown role)."""
    if user is None or not getattr(user, "active", False):
        return frozenset()
    return CAPABILITIES.get(getattr(user, "role", ""), frozenset())


def _has(user: Any, capability: str) -> bool:
    return capability in capabilities(user)


def visible_districts(user: Any) -> frozenset[str] | None:
    """The districts whose alerts ``user`` sees: None for all, an empty set for none."""
    caps = capabilities(user)
    if "see_all_alerts" in caps:
        return None
    if "see_own_district_alerts" in caps:
        return frozenset(user.districts)
    return frozenset()


def _district(alert: Mapping[str, Any]) -> str:
    return str(alert["district"]) if alert is not None and "district" in alert else ""


# --- alerts ---------------------------------------------------------------------


def can_view_alert(user: Any, alert: Mapping[str, Any]) -> bool:
    districts = visible_districts(user)
    return districts is None or _district(alert) in districts


def check_view_alert(user: Any, alert: Mapping[str, Any]) -> None:
    if not can_view_alert(user, alert):
        raise PermissionDenied("this alert is not in your districts",
                               reason="alert outside the user's districts")


def alerts_for_user(alerts: pd.DataFrame, user: Any) -> pd.DataFrame:
    """The rows of ``alerts`` that ``user`` may see (the list twin of :func:`can_view_alert`)."""
    districts = visible_districts(user)
    if districts is None:
        return alerts
    return alerts[alerts["district"].astype(str).isin(sorted(districts))]


def can_record_verdict(user: Any, alert: Mapping[str, Any]) -> bool:
    """Status along the lifecycle, verdict, note, false-alarm reason."""
    return _has(user, "record_verdict") and can_view_alert(user, alert)


def check_record_verdict(user: Any, alert: Mapping[str, Any]) -> None:
    check_view_alert(user, alert)
    if not can_record_verdict(user, alert):
        raise PermissionDenied(f"a {user.role} user cannot record verdicts",
                               reason="role may not record verdicts",
                               hint="a patrol or office user records verdicts")


def can_upload_photo(user: Any, alert: Mapping[str, Any]) -> bool:
    return _has(user, "upload_photo") and can_view_alert(user, alert)


def check_upload_photo(user: Any, alert: Mapping[str, Any]) -> None:
    check_view_alert(user, alert)
    if not can_upload_photo(user, alert):
        raise PermissionDenied(f"a {user.role} user cannot add photos", reason="role may not add photos")


def can_view_photo(user: Any, alerts_of_photo: list[Mapping[str, Any]]) -> bool:
    """A photo is visible when any alert it belongs to is."""
    return any(can_view_alert(user, a) for a in alerts_of_photo)


def check_view_photo(user: Any, alerts_of_photo: list[Mapping[str, Any]]) -> None:
    if not can_view_photo(user, alerts_of_photo):
        raise PermissionDenied("this photo belongs to no alert of your districts",
                               reason="photo outside the user's districts")


def can_dispatch_alert(user: Any, alert: Mapping[str, Any] | None = None) -> bool:
    return _has(user, "dispatch_alerts") and (alert is None or can_view_alert(user, alert))


def check_dispatch_alert(user: Any, alert: Mapping[str, Any] | None = None) -> None:
    if not can_dispatch_alert(user, alert):
        raise PermissionDenied(f"a {getattr(user, 'role', '?')} user cannot dispatch alerts",
                               reason="role may not dispatch", hint="the planning office dispatches")


def can_bulk_change_alerts(user: Any, obj: Any = None) -> bool:
    return _has(user, "bulk_change_alerts")


def check_bulk_change_alerts(user: Any, obj: Any = None) -> None:
    if not can_bulk_change_alerts(user, obj):
        raise PermissionDenied(f"a {getattr(user, 'role', '?')} user cannot change alerts in bulk",
                               reason="role may not change alerts in bulk")


# --- office and leader pages ----------------------------------------------------


def can_view_workload(user: Any, obj: Any = None) -> bool:
    return _has(user, "see_workload")


def check_view_workload(user: Any, obj: Any = None) -> None:
    if not can_view_workload(user, obj):
        raise PermissionDenied("the team workload is for the office and admins",
                               reason="role may not see the workload")


def can_view_figures(user: Any, obj: Any = None) -> bool:
    """Figures tables and the bulletin downloads."""
    return _has(user, "see_figures")


def check_view_figures(user: Any, obj: Any = None) -> None:
    if not can_view_figures(user, obj):
        raise PermissionDenied("figures and bulletins are for the office and leaders",
                               reason="role may not see figures")


def can_view_map(user: Any, obj: Any = None) -> bool:
    return _has(user, "see_map")


def check_view_map(user: Any, obj: Any = None) -> None:
    if not can_view_map(user, obj):
        raise PermissionDenied("the clearance map is for the office and leaders",
                               reason="role may not see the map")


def can_manage_users(user: Any, obj: Any = None) -> bool:
    return _has(user, "manage_users")


def check_manage_users(user: Any, obj: Any = None) -> None:
    if not can_manage_users(user, obj):
        raise PermissionDenied("only an admin manages users and teams", reason="role may not manage users")
