"""The web dashboard: every flag, engine, experiment and rollout at a glance, served by the admin app."""

from turnout.admin.ui.access import Denied, RoleOf, token_roles
from turnout.admin.ui.app import ui_app, ui_routes

__all__ = ["Denied", "RoleOf", "token_roles", "ui_app", "ui_routes"]
