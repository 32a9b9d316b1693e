from django.urls import path

from . import views

app_name = "webhooks"
urlpatterns = [
    # One URL per project, with an unguessable id (Project.webhook_id): what the Settings
    # page shows.  The shared URL stays for hooks set up before; it answers the same
    # to every unsigned delivery, whatever the repository.
    path("github/<str:hook_id>/", views.github_webhook, name="github-project"),
    path("github/", views.github_webhook, name="github"),
]
