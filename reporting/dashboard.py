"""The project's Reporting page: GitHub settings, Connect, destinations, delivery logs."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING

from deployments.dashboard.views import _can, _project_context, project_view
from deployments.errors import SwitchbackError

from . import selectors, services
from .forms import DestinationForm, GitHubForm
from .links import webhook_url

LOG_ROWS = 20


def _activity_context(project) -> dict:
    return {
        "destinations": [{"destination": d, "log": selectors.report_list(project=project, destination_id=d.pk,
                                                                           limit=LOG_ROWS)}
                         for d in selectors.destination_list(project=project)],
        "github_log": selectors.report_list(project=project, github=True, limit=LOG_ROWS),
        "status": selectors.reporting_status(project=project),
    }


def _page(request, project, *, github_form=None, destination_form=None, status=200):
    connection = selectors.github_connection_get(project=project)
    if github_form is None:
        initial = {"enabled": True, "auth": "platform", "environment": "production"}
        if connection is not None:
            initial = {name: getattr(connection, name) for name in
                       ("enabled", "auth", "installation_id", "environment", "commit_status", "hook_id")}
        github_form = GitHubForm(initial=initial)
    return render(request, "reporting/page.html", _project_context(
        request, project, tab="reporting", connection=connection, github_form=github_form,
        destination_form=destination_form or DestinationForm(), **_activity_context(project),
        webhook_url=webhook_url(project=project), can_admin=_can(request, project, "settings"),
    ), status=status)


@project_view("view")
def reporting_page(request, project):
    return _page(request, project)


@project_view("view")
def reporting_activity(request, project):
    """The page's polled part: status and logs (destinations' logs swapped out of band)."""
    context = _activity_context(project)
    response = render(request, "reporting/_activity.html", _project_context(request, project, oob=True, **context))
    if not context["status"]["pending"]:
        response.status_code = HTMX_STOP_POLLING  # nothing left to send: stop asking
    return response


@project_view("settings")
@require_http_methods(["POST"])
def github_save(request, project):
    form = GitHubForm(request.POST)
    if form.is_valid():
        try:
            services.github_connection_update(project=project, actor=request.user, **form.changes())
        except SwitchbackError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "GitHub reporting saved.")
            return redirect("reporting:page", slug=project.slug)
    return _page(request, project, github_form=form, status=400)


@project_view("settings")
@require_POST
def github_connect(request, project):
    try:
        result = services.github_webhook_connect(project=project, actor=request.user)
    except SwitchbackError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Webhook {result['hook_id']} {result['result']} for {result['url']}.")
    return redirect("reporting:page", slug=project.slug)


@project_view("settings")
@require_POST
def destination_add(request, project):
    form = DestinationForm(request.POST)
    if form.is_valid():
        try:
            services.notification_destination_create(project=project, actor=request.user, **form.cleaned_data)
        except SwitchbackError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Destination {form.cleaned_data['name']} added.")
            return redirect("reporting:page", slug=project.slug)
    return _page(request, project, destination_form=form, status=400)


@project_view("settings")
@require_POST
def destination_test(request, project, pk: int):
    destination = services.notification_destination_get(project=project, destination_id=pk)
    services.notification_destination_test(destination=destination, actor=request.user)
    messages.success(request, f"Test notification queued for {destination.name}; its delivery shows below.")
    return redirect("reporting:page", slug=project.slug)


@project_view("settings")
@require_POST
def destination_remove(request, project, pk: int):
    destination = services.notification_destination_get(project=project, destination_id=pk)
    services.notification_destination_delete(destination=destination, actor=request.user)
    messages.success(request, f"Destination {destination.name} removed.")
    return redirect("reporting:page", slug=project.slug)
