"""Home-page links owned by the accounts app and the project shell."""
from apps.common.navigation import NavLink, register_link

from .roles import ADMIN, MANAGER, MODELER, OPERATOR

ALL_ROLES = (OPERATOR, MODELER, MANAGER, ADMIN)

register_link(NavLink(
    key="api-docs", title="API documentation", section="Integration", order=800,
    description="Interactive OpenAPI documentation of every endpoint you can call.",
    url_name="api-docs", capability="use_platform", roles=ALL_ROLES,
))
register_link(NavLink(
    key="api-token", title="API token", section="Integration", order=810,
    description="See or rotate the token external systems use to call the API as you.",
    url_name="accounts:token", capability="use_platform", roles=ALL_ROLES,
))
register_link(NavLink(
    key="health", title="Platform health", section="Operations", order=700,
    description="Database, broker, time-series store and scheduler heartbeat, as JSON.",
    url_name="api:health", capability="use_platform", roles=ALL_ROLES,
))
register_link(NavLink(
    key="password", title="Change password", section="Account", order=900,
    description="Set a new password for your account.",
    url_name="accounts:password_change", capability="use_platform", roles=ALL_ROLES,
))
register_link(NavLink(
    key="admin-site", title="Django admin", section="Administration", order=100,
    description="Curate projects, variables, descriptors and every other record.",
    url_name="admin:index", capability="administer", roles=(ADMIN,),
))
register_link(NavLink(
    key="admin-users", title="Users", section="Administration", order=110,
    description="Create accounts, reset passwords, assign roles.",
    url_name="admin:auth_user_changelist", capability="administer", roles=(ADMIN,),
))
register_link(NavLink(
    key="admin-groups", title="Roles (groups)", section="Administration", order=120,
    description="The operator, modeler, manager and admin groups and their capabilities.",
    url_name="admin:auth_group_changelist", capability="administer", roles=(ADMIN,),
))
register_link(NavLink(
    key="admin-beat", title="Beat schedules", section="Administration", order=130,
    description="Periodic tasks run by Celery beat, editable while the platform runs.",
    url_name="admin:django_celery_beat_periodictask_changelist", capability="administer", roles=(ADMIN,),
))
register_link(NavLink(
    key="admin-tokens", title="API tokens", section="Administration", order=140,
    description="Tokens of users and service accounts (kept as hashes); revoke one by deleting it.",
    url_name="admin:accounts_apitoken_changelist", capability="administer", roles=(ADMIN,),
))
register_link(NavLink(
    key="admin-lockouts", title="Sign-in lockouts", section="Administration", order=150,
    description="Failed sign-ins per account and address; delete an entry to lift its lock.",
    url_name="admin:axes_accessattempt_changelist", capability="administer", roles=(ADMIN,),
))
