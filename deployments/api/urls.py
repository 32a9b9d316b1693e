from django.urls import path

from . import views

app_name = "api"
urlpatterns = [
    path("projects/", views.ProjectListCreate.as_view(), name="project-list"),
    path("projects/<slug:slug>/", views.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<slug:slug>/deployments/", views.DeploymentListCreate.as_view(),
         name="deployment-list"),
    path("projects/<slug:slug>/deployments/<int:number>/", views.DeploymentDetail.as_view(),
         name="deployment-detail"),
    path("projects/<slug:slug>/deployments/<int:number>/rollback/",
         views.DeploymentRollback.as_view(), name="deployment-rollback"),
    path("projects/<slug:slug>/deployments/<int:number>/redeploy/",
         views.DeploymentRedeploy.as_view(), name="deployment-redeploy"),
]
