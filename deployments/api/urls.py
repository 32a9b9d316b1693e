from django.urls import path

from . import rollout, views

app_name = "api"
urlpatterns = [
    path("projects/", views.ProjectListCreate.as_view(), name="project-list"),
    path("metrics/", views.OverallMetrics.as_view(), name="metrics"),
    path("projects/<slug:slug>/", views.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<slug:slug>/deploy-key/", views.ProjectDeployKey.as_view(), name="project-deploy-key"),
    path("projects/<slug:slug>/deployments/", views.DeploymentListCreate.as_view(),
         name="deployment-list"),
    path("projects/<slug:slug>/deployments/<int:number>/", views.DeploymentDetail.as_view(),
         name="deployment-detail"),
    path("projects/<slug:slug>/deployments/<int:number>/rollback/",
         views.DeploymentRollback.as_view(), name="deployment-rollback"),
    path("projects/<slug:slug>/deployments/<int:number>/redeploy/",
         views.DeploymentRedeploy.as_view(), name="deployment-redeploy"),
    path("projects/<slug:slug>/deployments/<int:number>/promote/",
         views.DeploymentPromote.as_view(), name="deployment-promote"),
    path("projects/<slug:slug>/deployments/<int:number>/schedule/",
         views.DeploymentSchedule.as_view(), name="deployment-schedule"),
    path("projects/<slug:slug>/deployments/<int:number>/override-window/",
         views.DeploymentWindowOverride.as_view(), name="deployment-window-override"),
    path("projects/<slug:slug>/deployments/<int:number>/abort/",
         views.DeploymentAbort.as_view(), name="deployment-abort"),
    path("projects/<slug:slug>/deployments/<int:number>/rollout/",
         rollout.DeploymentRollout.as_view(), name="deployment-rollout"),
    path("projects/<slug:slug>/pin/", views.ProjectPin.as_view(), name="project-pin"),
    path("projects/<slug:slug>/unpin/", views.ProjectUnpin.as_view(), name="project-unpin"),
    path("projects/<slug:slug>/rollback-targets/", views.RollbackTargetList.as_view(),
         name="rollback-target-list"),
    path("projects/<slug:slug>/members/", views.MemberListCreate.as_view(), name="member-list"),
    path("projects/<slug:slug>/members/<str:username>/", views.MemberDetail.as_view(), name="member-detail"),
    path("projects/<slug:slug>/audit/", views.AuditList.as_view(), name="audit-list"),
    path("projects/<slug:slug>/metrics/", views.ProjectMetrics.as_view(), name="project-metrics"),
]
