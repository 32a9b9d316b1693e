from django.urls import path

from . import dashboard

app_name = "reporting"
project = "projects/<slug:slug>/reporting/"
urlpatterns = [
    path(project, dashboard.reporting_page, name="page"),
    path(project + "activity/", dashboard.reporting_activity, name="activity"),
    path(project + "github/", dashboard.github_save, name="github-save"),
    path(project + "github/connect/", dashboard.github_connect, name="github-connect"),
    path(project + "destinations/", dashboard.destination_add, name="destination-add"),
    path(project + "destinations/<int:pk>/test/", dashboard.destination_test, name="destination-test"),
    path(project + "destinations/<int:pk>/remove/", dashboard.destination_remove, name="destination-remove"),
]
