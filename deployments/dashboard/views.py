"""Dashboard pages: function views, htmx partials named `_x.html`.

Every page reads without JavaScript (links keep their href; actions are forms, with a
confirmation page when htmx's confirm dialog is unavailable).  With htmx, actions swap
the parts they change in place, and the rollout panel polls until the rollout ends
(HTTP 286 stops htmx polling).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.html import escape
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HTMX_STOP_POLLING, reswap, retarget, trigger_client_event

from .. import (
    permissions,
    rollback_preview,
    rollback_targets,
    selectors,
    services,
    services_credentials,
    services_members,
)
from ..envvars import config_redact
from ..errors import PermissionDenied, SwitchbackError
from ..metrics import metrics_compute
from ..pagination import KeysFirstPaginator
from .charts import bar_chart
from .forms import DeployForm, MemberForm, PeriodForm, ProjectCreateForm, ProjectSettingsForm

HISTORY_PAGE_SIZE = 25


def error_page(request, exc: SwitchbackError) -> HttpResponse:
    """A caller's mistake or a refusal: a readable page (or a message swapped into #flash)."""
    if request.htmx:
        response = HttpResponse(f'<p class="flash error" role="alert">{escape(exc.message)}</p>',
                                status=exc.status_code)
        return reswap(retarget(response, "#flash"), "innerHTML")
    titles = {403: "Not allowed", 404: "Not found", 409: "Not possible right now"}
    return render(request, "error.html", {"title": titles.get(exc.status_code, "Cannot do that"),
                                          "message": exc.message}, status=exc.status_code)


@login_required
def project_new(request):
    """Staff create projects (the API's rule); the creator becomes the project's admin."""
    try:
        permissions.project_create_require(user=request.user)
    except PermissionDenied as exc:
        return error_page(request, exc)
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(actor=request.user, **form.cleaned_data)
        except SwitchbackError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Created {project.name}. Paste the webhook settings below into GitHub.")
            return redirect("dashboard:settings", slug=project.slug)
    return render(request, "dashboard/project_new.html", {"form": form}, status=400 if form.errors else 200)


def project_view(action: str):
    """Load the project named in the URL and require `action` on it; errors become pages."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug: str, *args, **kwargs):
            try:
                project = selectors.project_get(slug=slug)
                role = permissions.permission_require(user=request.user, project=project, action=action)
                request.project_role = role
                return view(request, project, *args, **kwargs)
            except SwitchbackError as exc:
                return error_page(request, exc)

        return wrapper

    return decorate


def _can(request, project, action: str) -> bool:
    return permissions.permission_has(user=request.user, project=project, action=action)


def _project_context(request, project, **extra) -> dict:
    return {
        "project": project,
        "role": permissions.role_get(user=request.user, project=project),
        "can_deploy": _can(request, project, "deploy"),
        "can_admin": _can(request, project, "settings"),
        **extra,
    }


# --- overview --------------------------------------------------------------------------------


@login_required
def project_list(request):
    context = {"projects": selectors.projects_overview(user=request.user)}
    template = "dashboard/_projects.html" if request.htmx else "dashboard/projects.html"
    return render(request, template, context)


# --- the project page: history, live revision, rollout in flight ---------------------------------


def _history_context(request, project) -> dict:
    page = KeysFirstPaginator(selectors.deployment_list(project=project), HISTORY_PAGE_SIZE,
                              count=project.deployment_counter).get_page(request.GET.get("page"))
    live = project.live_deployment
    open_deployment = selectors.deployment_open(project=project)
    shown = {d.revision for d in page}
    targets = {t.number: t for t in rollback_targets.rollback_targets_list(project=project, revisions=shown)}
    context = _project_context(
        request, project, page=page, live=live, live_revision=live.revision if live else None,
        open_deployment=open_deployment, rollback_targets=targets,
        # One reverse() instead of three per row: rows append "<number>/..." to it.
        deployments_url=reverse("dashboard:project", kwargs={"slug": project.slug}) + "deployments/",
    )
    if open_deployment is not None:
        context["rollout"] = selectors.rollout_snapshot(deployment=open_deployment)
    return context


@project_view("view")
def project_detail(request, project):
    context = _history_context(request, project)
    if request.htmx:
        # Refresh the rollout panel too when a rollout started that the page does not show yet.
        showing = request.GET.get("showing", "")
        opened = context["open_deployment"]
        context["rollout_oob"] = opened is not None and showing != str(opened.number)
        return render(request, "dashboard/_history.html", context)
    context["deploy_form"] = DeployForm()
    context["history_fingerprint"] = selectors.history_fingerprint(project=project,
                                                                   opened=context["open_deployment"])
    context["history_watch_ms"] = HISTORY_WATCH_INTERVAL_MS
    return render(request, "dashboard/project.html", context)


# The History page asks this often whether anything changed (a new deployment, a phase, a
# new live revision): an unchanged answer is an empty 204 (htmx swaps nothing); a change
# answers with a fresh watcher and the sb-changed event, on which the history reloads.
HISTORY_WATCH_INTERVAL_MS = 500


@project_view("view")
def project_changes(request, project):
    fingerprint = selectors.history_fingerprint(project=project, opened=selectors.deployment_open(project=project))
    if request.GET.get("since") == fingerprint:
        return HttpResponse(status=204)
    response = render(request, "dashboard/_history_watch.html",
                      {"project": project, "history_fingerprint": fingerprint,
                       "history_watch_ms": HISTORY_WATCH_INTERVAL_MS})
    response["HX-Trigger"] = "sb-changed"
    return response


@project_view("deploy")
@require_POST
def deployment_request(request, project):
    form = DeployForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a full 40-character commit sha.")
        return redirect("dashboard:project", slug=project.slug)
    deployment = services.deployment_request(project=project, actor=request.user, **form.cleaned_data)
    messages.success(request, f"Deployment #{deployment.number} queued.")
    return redirect("dashboard:project", slug=project.slug)


def _action_done(request, project, result, message: str) -> HttpResponse:
    # Render from the project as the service left it (its counter counts the new row):
    # with the one loaded before, the history's paginator came out one row short.
    project = selectors.project_get(slug=project.slug)
    if request.htmx:
        if request.htmx.target == "rollout-panel":
            return rollout_panel_response(request, project, result, message=message)
        context = _history_context(request, project)
        context["rollout_oob"] = True
        context["flash"] = message
        context["dialog_oob"] = True  # close the rollback dialog
        return render(request, "dashboard/_history.html", context)
    messages.success(request, message)
    return redirect("dashboard:project", slug=project.slug)


def _action_view(action: str, service, *, verb: str, done: str, form=None):
    """GET: a confirmation page (works without JavaScript).  POST: do it, then show the result.

    form: reads the service's extra arguments from the POST (e.g. promote's "full")."""

    @project_view(action)
    @require_http_methods(["GET", "POST"])
    def view(request, project, number: int):
        deployment = selectors.deployment_get(project=project, number=number)
        if request.method == "GET":
            return render(request, "dashboard/confirm.html", _project_context(
                request, project, deployment=deployment, verb=verb, action=action))
        extra = form(request.POST) if form else {}
        result = service(project=project, number=number, actor=request.user, **extra)
        return _action_done(request, project, result, done.format(number=number, new=result.number, **extra))

    return view


@project_view("rollback")
@require_http_methods(["GET", "POST"])
def deployment_rollback(request, project, number: int):
    """GET: the confirm dialog (htmx) or page, listing what the rollback changes.  POST: do
    it, pinning the project when asked, then show the history."""
    if request.method == "POST":
        pin = request.POST.get("pin") in ("1", "on", "true")
        result = services.deployment_rollback_now(project=project, number=number, actor=request.user, pin=pin)
        message = f"Rolling back to #{number} as deployment #{result.number}." + (
            " The project is pinned: merges build and warm but do not switch." if pin else "")
        return _action_done(request, project, result, message)
    deployment = selectors.deployment_get(project=project, number=number)
    context = _project_context(request, project, deployment=deployment, verb="Roll back to", action="rollback",
                               preview=rollback_preview.rollback_preview(project=project, number=number))
    if request.htmx:
        return render(request, "dashboard/_rollback_dialog.html", context)
    return render(request, "dashboard/confirm.html", context)


@project_view("rollback")
@require_POST
def project_unpin(request, project):
    services.project_unpin(project=project, actor=request.user)
    messages.success(request, f"{project.slug} is unpinned: a merge held by the pin switches now.")
    return redirect("dashboard:project", slug=project.slug)


deployment_redeploy = _action_view(
    "redeploy", services.deployment_redeploy, verb="Redeploy", done="Redeploying #{number} as deployment #{new}.")
deployment_promote = _action_view(
    "promote", services.deployment_promote, verb="Promote", done="Promoted #{number}.",
    form=lambda post: {"full": post.get("full") in ("1", "on", "true")})
deployment_window_override = _action_view(
    "promote", services.deployment_window_override, verb="Deploy outside the window",
    done="#{number} deploys now, outside the deploy window: {reason}",
    form=lambda post: {"reason": post.get("reason", "")})
deployment_schedule = _action_view(
    "promote", services.deployment_schedule_change, verb="Reschedule",
    done="#{number} is rescheduled.",
    form=lambda post: {"data": {"at": post.get("at", ""), "tz": post.get("tz", "") or "UTC"}})
deployment_abort = _action_view(
    "abort", services.deployment_abort, verb="Abort", done="Aborted #{number}; traffic stays on the live revision.")


def rollout_panel_response(request, project, deployment, *, message: str = "") -> HttpResponse:
    snapshot = selectors.rollout_snapshot(deployment=deployment)
    context = _project_context(request, project, rollout=snapshot, panel_flash=message)
    response = render(request, "dashboard/_rollout.html", context)
    if deployment.is_final:
        response.status_code = HTMX_STOP_POLLING
        trigger_client_event(response, "sb-changed")  # the history and live revision refresh at once
    return response


@project_view("view")
def rollout_panel(request, project, number: int):
    deployment = selectors.deployment_get(project=project, number=number)
    if not request.htmx:
        return redirect("dashboard:deployment", slug=project.slug, number=number)
    return rollout_panel_response(request, project, deployment)


@project_view("view")
def deployment_detail(request, project, number: int):
    deployment = selectors.deployment_get(project=project, number=number)
    live = project.live_deployment
    context = _project_context(
        request, project, deployment=deployment, **selectors.deployment_timeline(deployment=deployment),
        config=config_redact(deployment.config),
        audit=selectors.audit_list(project=project).filter(data__deployment=number)[:50],
        live_revision=live.revision if live else None,
        waiting_step=services.deployment_waiting_step(deployment=deployment),
    )
    return render(request, "dashboard/deployment.html", context)


# --- settings, members, activity -------------------------------------------------------------------


@project_view("settings")
@require_http_methods(["GET", "POST"])
def project_settings(request, project):
    form = ProjectSettingsForm(request.POST or None, instance=selectors.project_get(slug=project.slug))
    if request.method == "POST" and form.is_valid():
        try:
            services.project_update(project=project, actor=request.user,
                                    **form.changes(current_env=project.env))
        except SwitchbackError as exc:
            # "field: message" from the services shows beside the field it is about.
            field, sep, text = exc.message.partition(": ")
            if sep and field in form.fields:
                form.add_error(field, text)
            else:
                form.add_error(None, exc.message)
        else:
            messages.success(request, "Settings saved; they apply to the next deployment.")
            return redirect("dashboard:settings", slug=project.slug)
    return render(request, "dashboard/settings.html", _project_context(
        request, project, form=form, webhook_url=selectors.webhook_url_get(project=project, request=request),
        env_names=sorted(project.env or {}),
        deploy_key_fingerprint=services_credentials.deploy_key_fingerprint(project.deploy_key_public),
    ), status=400 if form.errors else 200)


@project_view("archive")
@require_POST
def project_archive(request, project):
    """Archive ("delete") the project, once its slug is typed to confirm."""
    try:
        services.project_archive(project=project, actor=request.user, confirm=request.POST.get("confirm", ""))
    except SwitchbackError as exc:
        messages.error(request, exc.message.removeprefix("confirm: "))
        return redirect("dashboard:settings", slug=project.slug)
    messages.success(request, f"Archived {project.slug}: its revisions, route and images are gone and the "
                              "slug is free; staff can still read its history.")
    return redirect("dashboard:projects")


@project_view("settings")
@require_POST
def deploy_key_generate(request, project):
    services_credentials.project_deploy_key_generate(project=project, actor=request.user)
    messages.success(request, "New deploy key generated: add its public half to the repository (read-only); "
                              "a key generated before no longer works here.")
    return redirect("dashboard:settings", slug=project.slug)


@project_view("view")
def project_members(request, project):
    return render(request, "dashboard/members.html", _project_context(
        request, project, members=selectors.membership_list(project=project), form=MemberForm(),
        can_manage=_can(request, project, "members"),
    ))


@project_view("members")
@require_POST
def member_set(request, project):
    form = MemberForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a username and a role.")
    else:
        membership = services_members.membership_set(project=project, actor=request.user, **form.cleaned_data)
        messages.success(request, f"{membership.user.username} is now {membership.role}.")
    return redirect("dashboard:members", slug=project.slug)


@project_view("members")
@require_POST
def member_remove(request, project, username: str):
    services_members.membership_remove(project=project, username=username, actor=request.user)
    messages.success(request, f"Removed {username}.")
    return redirect("dashboard:members", slug=project.slug)


@project_view("view")
def project_activity(request, project):
    page = Paginator(selectors.audit_list(project=project), 50).get_page(request.GET.get("page"))
    return render(request, "dashboard/activity.html", _project_context(request, project, page=page))


# --- delivery insight ---------------------------------------------------------------------------


def _insight_context(request, projects) -> dict:
    form = PeriodForm(request.GET or None)
    days = form.cleaned_data["days"] if form.is_valid() else 30
    metrics = metrics_compute(projects=projects, days=days)
    daily = metrics["daily"]
    labels = [d["day"].strftime("%b %d") for d in daily]
    charts = {
        "frequency": bar_chart(values=[d["deploys"] for d in daily], secondary=[d["rollbacks"] for d in daily],
                               labels=labels, title="Deployments per day (blue: changes, amber: rollbacks)"),
        "lead_time": bar_chart(values=[(d["lead_median"] or 0) / 60 for d in daily], labels=labels,
                               title="Median lead time per day, minutes (merge to live)", color="#1a7f37",
                               fmt=lambda v: f"{v:.1f} min"),
        "failures": bar_chart(values=[d["failures"] for d in daily], labels=labels,
                              title="Changes that failed or were rolled back, per day", color="#cf222e"),
    }
    return {"metrics": metrics, "charts": charts, "period_form": form, "days": days,
            "periods": [7, 30, 90, 365]}


@login_required
def insights(request):
    projects = list(selectors.project_list_visible(user=request.user))
    return render(request, "dashboard/insights.html", {**_insight_context(request, projects),
                                                       "projects": projects, "project": None})


@project_view("view")
def project_insights(request, project):
    return render(request, "dashboard/insights.html", {**_project_context(request, project),
                                                       **_insight_context(request, [project])})


# --- your account --------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    new_token = None
    if request.method == "POST":
        # Only the token's digest is stored: this answer is the one time it can be read,
        # so it is rendered here (no redirect, never kept in the session) and not cached.
        new_token = services_members.token_regenerate(user=request.user)
    response = render(request, "dashboard/account.html", {
        "token": selectors.token_get(user=request.user),
        "new_token": new_token,
        "memberships": request.user.memberships.select_related("project").order_by("project__name"),
    })
    if new_token:
        patch_cache_control(response, no_store=True, private=True)
    return response
