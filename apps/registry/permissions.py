"""Who may call the registry's endpoints: capabilities, never group names (``apps/accounts/roles.py``).

Reads need ``view_process``, predictions ``predict`` (operators and service accounts), anything that writes
``manage_models`` (modelers and admins).
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.common.permissions import HasCapability, capability

CanView = capability("view_process")
CanManage = capability("manage_models")


class CanPredict(HasCapability):
    """``predict`` capability, checked in one parameterised query (the prediction hot path).

    Same rule as Django's ModelBackend (active user; superuser; or the permission held directly or
    through a group), without loading every permission of the user. With other authentication
    backends configured it falls back to ``user.has_perm``.
    """

    required = ("predict",)
    SQL = """
        SELECT 1 FROM auth_permission p
        JOIN django_content_type ct ON ct.id = p.content_type_id
        WHERE ct.app_label = 'accounts' AND p.codename = %s AND (
            p.id IN (SELECT permission_id FROM auth_user_user_permissions WHERE user_id = %s)
            OR p.id IN (SELECT gp.permission_id FROM auth_group_permissions gp
                        JOIN auth_user_groups ug ON ug.group_id = gp.group_id WHERE ug.user_id = %s))
        LIMIT 1
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if user.is_superuser:
            return True
        if list(settings.AUTHENTICATION_BACKENDS) != ["django.contrib.auth.backends.ModelBackend"]:
            return super().has_permission(request, view)
        with connection.cursor() as cursor:
            cursor.execute(self.SQL, ["predict", user.pk, user.pk])
            return cursor.fetchone() is not None
