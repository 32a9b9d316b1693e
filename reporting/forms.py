from django import forms

from .models import GitHubConnection, NotificationDestination
from .notifications import EVENT_CHOICES


class GitHubForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Report deployments to GitHub")
    auth = forms.ChoiceField(choices=GitHubConnection.Auth.choices, label="Credentials")
    token = forms.CharField(required=False, widget=forms.PasswordInput, max_length=255,
                            label="New token", help_text="Write-only; leave blank to keep the current one.")
    installation_id = forms.IntegerField(required=False, min_value=1, label="App installation id",
                                         help_text="Blank: found through the App.")
    environment = forms.CharField(max_length=255, initial="production")
    commit_status = forms.BooleanField(required=False, label="Also set the switchback/deploy commit status")
    hook_id = forms.IntegerField(required=False, min_value=1, label="Webhook id",
                                 help_text="Blank: Connect finds or creates it.")

    def changes(self) -> dict:
        data = dict(self.cleaned_data)
        if not data.get("token"):
            data.pop("token", None)  # write-only: blank keeps it
        return data


class DestinationForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=NotificationDestination.Kind.choices)
    url = forms.CharField(max_length=2000, label="URL", help_text="https:// (write-only once saved)")
    secret = forms.CharField(required=False, max_length=255, widget=forms.PasswordInput,
                             help_text="JSON webhook only; blank generates one.")
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)
