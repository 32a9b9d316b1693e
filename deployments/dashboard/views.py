"""Dashboard pages: function views, htmx partials named `_x.html`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..errors import SwitchbackError


def _project_or_404(slug: str):
    try:
        return selectors.project_get(slug=slug)
    except SwitchbackError as exc:
        raise Http404(exc.message) from exc


@login_required
def project_list(request):
    return render(request, "dashboard/projects.html", {"projects": selectors.project_list()})


@login_required
def project_detail(request, slug: str):
    project = _project_or_404(slug)
    page = Paginator(selectors.deployment_list(project=project), 25).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "in_flight": selectors.deployment_in_flight(project=project),
    }
    template = "dashboard/_history.html" if request.htmx else "dashboard/project.html"
    return render(request, template, context)


@login_required
@require_POST
def deployment_rollback(request, slug: str, number: int):
    project = _project_or_404(slug)
    try:
        deployment = services.deployment_rollback(project=project, number=number, actor=request.user)
        messages.success(request, f"Rolling back to #{number} as deployment #{deployment.number}.")
    except SwitchbackError as exc:
        messages.error(request, exc.message)
    return redirect("dashboard:project", slug=slug)
