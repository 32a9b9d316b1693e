from django.urls import path

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.project_list, name="projects"),
    path("projects/<slug:slug>/", views.project_detail, name="project"),
    path("projects/<slug:slug>/deployments/<int:number>/rollback/", views.deployment_rollback,
         name="rollback"),
]
