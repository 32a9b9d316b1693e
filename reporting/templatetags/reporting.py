from django import template

from .. import selectors

register = template.Library()


@register.inclusion_tag("reporting/_status.html")
def reporting_status(project):
    """The project page's status line: GitHub reporting's problem, or what is waiting."""
    return {"project": project, "status": selectors.reporting_status(project=project)}
