"""The permission matrix of `gis serve`, the list query against the per-object check, and the
account functions the CLI calls (no HTTP)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from alertsdata import make_workspace
from gis.errors import AccountError, PermissionDenied, ServeConfigError
from gis.serve import accounts, permissions
from gis.serve.accounts import User
from gis.serve.config import DEVELOPMENT_SECRET, Settings, workspace_secret
from gis.serve.permissions import alerts_for_user, can_view_alert
from gis.serve.storage import open_engine
from gis.workspace import load_workspace

DISTRICTS = ("东城区", "西城区", "临港区", "南湖区")

#: role -> permissions it has (the rest it must not have). Alert-level checks use an alert of its district.
EXPECTED = {
    "patrol": {"view_alert", "record_verdict", "upload_photo", "view_photo"},
    "office": {"view_alert", "record_verdict", "upload_photo", "view_photo", "dispatch_alert",
               "bulk_change_alerts", "view_workload", "view_figures", "view_map"},
    "leader": {"view_alert", "view_photo", "view_figures", "view_map"},
    "admin": {"manage_users", "view_workload"},
}
ALL = sorted(set().union(*EXPECTED.values()))


def _ask(perm: str, user: User, alert) -> bool:
    obj = [alert] if perm == "view_photo" else alert
    return getattr(permissions, f"can_{perm}")(user, obj)


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_permission_matrix(role):
    user = User("u", role, ("东城区",) if role == "patrol" else ())
    alert = {"alert_id": "A1", "district": "东城区"}
    for perm in ALL:
        assert _ask(perm, user, alert) == (perm in EXPECTED[role]), (role, perm)
        check = getattr(permissions, f"check_{perm}")
        if perm in EXPECTED[role]:
            check(user, [alert] if perm == "view_photo" else alert)
        else:
            with pytest.raises(PermissionDenied) as exc:
                check(user, [alert] if perm == "view_photo" else alert)
            assert exc.value.reason


def test_patrol_may_do_nothing_outside_its_districts_and_disabled_users_nothing_at_all():
    patrol = User("p", "patrol", ("东城区",))
    elsewhere = {"alert_id": "A2", "district": "临港区"}
    for perm in ("view_alert", "record_verdict", "upload_photo", "view_photo"):
        assert not _ask(perm, patrol, elsewhere)
    with pytest.raises(PermissionDenied, match="not in your districts"):
        permissions.check_record_verdict(patrol, elsewhere)
    for role in EXPECTED:
        off = User("x", role, DISTRICTS, active=False)
        assert not any(_ask(p, off, {"district": "东城区"}) for p in ALL)
    assert permissions.capabilities(User("x", "superuser")) == frozenset()


def test_every_listed_alert_passes_the_check_and_no_other_does():
    rng = np.random.default_rng(7)
    alerts = pd.DataFrame({"alert_id": [f"A{k}" for k in range(200)],
                           "district": rng.choice(DISTRICTS + ("", "东城区 "), 200)})
    users = [User("off", "office"), User("lead", "leader"), User("adm", "admin"),
             User("none", "patrol", ()), User("gone", "office", active=False)]
    users += [User(f"p{k}", "patrol", ds) for k in (1, 2) for ds in itertools.combinations(DISTRICTS, k)]
    for user in users:
        listed = alerts_for_user(alerts, user)
        passed = alerts[[can_view_alert(user, r) for _, r in alerts.iterrows()]]
        assert list(listed["alert_id"]) == list(passed["alert_id"]), user


def test_accounts_add_login_disable_and_tokens(tmp_path):
    ws = load_workspace(make_workspace(tmp_path / "ws"))
    engine = open_engine(ws)
    with pytest.raises(AccountError, match="no district"):
        accounts.add_user(engine, "p", "long-password", role="patrol")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user(engine, "p", "long-password", role="root")
    with pytest.raises(AccountError, match="shorter"):
        accounts.add_user(engine, "p", "short", role="office")
    accounts.add_user(engine, "p", "long-password", role="patrol", districts=["东城区", "东城区"])
    with pytest.raises(AccountError, match="exists"):
        accounts.add_user(engine, "p", "long-password", role="office")
    assert accounts.authenticate(engine, "p", "long-password").districts == ("东城区",)
    assert accounts.authenticate(engine, "p", "wrong-password") is None
    assert accounts.authenticate(engine, "nobody", "long-password") is None
    phone, tablet = accounts.issue_token(engine, "p", "phone"), accounts.issue_token(engine, "p", "tablet")
    assert accounts.user_for_token(engine, phone).username == "p"
    assert accounts.revoke_tokens(engine, "p", "phone") == 1
    assert accounts.user_for_token(engine, phone) is None and accounts.user_for_token(engine, tablet) is not None
    with pytest.raises(AccountError, match="no live token"):
        accounts.revoke_tokens(engine, "p", "phone")
    assert accounts.set_active(engine, "p", False) == 1
    assert accounts.user_for_token(engine, tablet) is None
    assert accounts.authenticate(engine, "p", "long-password") is None
    accounts.set_active(engine, "p", True)
    assert accounts.user_for_token(engine, tablet) is None  # enabling does not bring tokens back
    stored = {t["device"]: t for t in accounts.list_tokens(engine, "p")}
    assert set(stored) == {"phone", "tablet"} and all(t["revoked_at"] for t in stored.values())
    # the store keeps only hashes of tokens
    with engine.connect() as conn:
        digests = conn.execute(sa.text("SELECT digest FROM api_tokens")).scalars().all()
    assert phone not in digests and tablet not in digests


def test_demo_users_one_per_role_and_one_patrol_per_district(tmp_path):
    ws = load_workspace(make_workspace(tmp_path / "ws"))
    made = accounts.create_demo_users(ws)
    roles = [m["role"] for m in made]
    assert {"admin", "office", "leader", "patrol"} == set(roles)
    patrol_districts = [m["districts"][0] for m in made if m["role"] == "patrol"]
    assert len(patrol_districts) == len(set(patrol_districts)) >= 6
    engine = open_engine(ws)
    for m in made:
        assert accounts.authenticate(engine, m["username"], m["password"]).role == m["role"]
    assert accounts.create_demo_users(ws) == made  # twice: the same users, none added


def test_settings_refuse_default_secrets_outside_development(tmp_path):
    root = make_workspace(tmp_path / "ws")
    with pytest.raises(ServeConfigError, match="development"):
        Settings.from_workspace(root, secret_key=DEVELOPMENT_SECRET)
    Settings.from_workspace(root, secret_key=DEVELOPMENT_SECRET, environment="development")
    secret = workspace_secret(root)
    assert len(secret) >= 32 and workspace_secret(root) == secret
    assert (root / ".gis" / "secret").stat().st_mode & 0o777 == 0o600
    assert Settings.from_workspace(root).secret_key == secret
