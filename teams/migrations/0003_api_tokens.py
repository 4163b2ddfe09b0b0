"""Scoped API tokens, stored hashed; DRF's plain-text keys (authtoken) become
personal write tokens with the same key, and the plain-text copies are deleted."""

import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def hash_drf_keys(apps, schema_editor):
    connection = schema_editor.connection
    if "authtoken_token" not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("teams", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, user_id, created FROM authtoken_token")
        rows = cursor.fetchall()
    ApiToken.objects.bulk_create([
        ApiToken(user_id=user_id, name="token", scope="write", prefix=key[:12],
                 key_hash=hashlib.sha256(key.encode()).hexdigest())
        for key, user_id, created in rows])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM authtoken_token")

class Migration(migrations.Migration):

    dependencies = [
        ('teams', '0002_personal_teams'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('scope', models.CharField(choices=[('read', 'read'), ('write', 'write')], default='write', max_length=8)),
                ('prefix', models.CharField(help_text="The key's first characters, to tell keys apart.", max_length=12)),
                ('key_hash', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('last_used_at', models.DateTimeField(blank=True, null=True)),
                ('team', models.ForeignKey(blank=True, help_text="Only this team's objects; empty: all of its user's teams.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to='teams.team')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['name', 'id'],
            },
        ),
            migrations.RunPython(hash_drf_keys, migrations.RunPython.noop),
    ]
