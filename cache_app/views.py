"""The staff cache dashboard: a thin view over ``cache_app.dashboard`` (charts drawn by static JS)."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from cache_app import dashboard
from cache_app.services.stats import counters

WINDOWS = [1, 6, 24, 24 * 7]


@staff_member_required
def cache_dashboard(request):
    try:
        hours = int(request.GET.get("hours", 24))
    except ValueError:
        hours = 24
    hours = min(max(hours, 1), 24 * 90)
    counters().flush()  # this process's latest counts, included
    data = dashboard.dashboard_data(hours=hours)
    context = {
        **admin.site.each_context(request),
        **data,
        "title": "Cache dashboard",
        "windows": WINDOWS,
        "charts": {"hit_rate": data["hit_rate_chart"], "disk": data["disk_chart"]},
    }
    return render(request, "cache_app/dashboard.html", context)
