from django.urls import path

from . import api

app_name = "reporting-api"
project = "projects/<slug:slug>/"
urlpatterns = [
    path(project + "github/", api.GitHubSettings.as_view(), name="github"),
    path(project + "github/connect/", api.GitHubConnect.as_view(), name="github-connect"),
    path(project + "reports/", api.ReportList.as_view(), name="reports"),
    path(project + "notifications/", api.DestinationListCreate.as_view(), name="destinations"),
    path(project + "notifications/<int:pk>/", api.DestinationDetail.as_view(), name="destination"),
    path(project + "notifications/<int:pk>/test/", api.DestinationTest.as_view(), name="destination-test"),
]
