from rest_framework.permissions import BasePermission


class IsStaff(BasePermission):
    """Reading the cache's state: staff only (it names paths and nodes)."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class CanManageCache(BasePermission):
    """Changing the cache (clear, warm, verify): staff holding ``cache_app.manage_cache``."""

    def has_permission(self, request, view):
        user = request.user
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return IsStaff().has_permission(request, view)
        return bool(user and user.is_authenticated and user.is_staff and user.has_perm("cache_app.manage_cache"))
