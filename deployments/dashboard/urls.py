from django.urls import path

from . import views

app_name = "dashboard"
deployment = "projects/<slug:slug>/deployments/<int:number>/"
urlpatterns = [
    path("", views.project_list, name="projects"),
    path("insights/", views.insights, name="insights"),
    # Not under projects/: "new" is a valid project slug.
    path("new-project/", views.project_new, name="project-new"),
    path("account/", views.account, name="account"),
    path("projects/<slug:slug>/", views.project_detail, name="project"),
    path("projects/<slug:slug>/changes/", views.project_changes, name="project-changes"),
    path("projects/<slug:slug>/archive/", views.project_archive, name="project-archive"),
    path("projects/<slug:slug>/deploy/", views.deployment_request, name="deploy"),
    path("projects/<slug:slug>/unpin/", views.project_unpin, name="unpin"),
    path("projects/<slug:slug>/settings/", views.project_settings, name="settings"),
    path("projects/<slug:slug>/settings/deploy-key/", views.deploy_key_generate, name="deploy-key"),
    path("projects/<slug:slug>/members/", views.project_members, name="members"),
    path("projects/<slug:slug>/members/set/", views.member_set, name="member-set"),
    path("projects/<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
    path("projects/<slug:slug>/activity/", views.project_activity, name="activity"),
    path("projects/<slug:slug>/insights/", views.project_insights, name="project-insights"),
    path(deployment, views.deployment_detail, name="deployment"),
    path(deployment + "rollout/", views.rollout_panel, name="rollout"),
    path(deployment + "rollback/", views.deployment_rollback, name="rollback"),
    path(deployment + "redeploy/", views.deployment_redeploy, name="redeploy"),
    path(deployment + "promote/", views.deployment_promote, name="promote"),
    path(deployment + "abort/", views.deployment_abort, name="abort"),
    path(deployment + "override-window/", views.deployment_window_override, name="override-window"),
    path(deployment + "schedule/", views.deployment_schedule, name="schedule"),
]
