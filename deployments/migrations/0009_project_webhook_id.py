# A per-project webhook URL id (issue 9: no one can tell a connected repository from an
# unknown one).  Existing projects each get their own random id.

import secrets

from django.db import migrations, models

import deployments.models


def fill(apps, schema_editor):
    Project = apps.get_model("deployments", "Project")
    for project in Project.objects.filter(webhook_id__isnull=True).only("pk"):
        Project.objects.filter(pk=project.pk).update(webhook_id=secrets.token_urlsafe(24))


class Migration(migrations.Migration):

    dependencies = [
        ('deployments', '0008_source_credentials'),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='webhook_id',
            field=models.CharField(max_length=64, null=True, editable=False),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='project',
            name='webhook_id',
            field=models.CharField(default=deployments.models.webhook_id_new, editable=False, max_length=64, unique=True),
        ),
    ]
