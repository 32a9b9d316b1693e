"""Failed logins are throttled (django-axes): the attack is guessing a password at /login/."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.services_members import token_regenerate

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"


@pytest.fixture
def victim(django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    return django_user_model.objects.create_user("victim", password=PASSWORD)


def attempt(client: Client, password: str, *, address="203.0.113.7", **extra):
    return client.post("/login/", {"username": "victim", "password": password}, REMOTE_ADDR=address, **extra)


def test_guessing_locks_the_username_from_that_address(victim):
    client = Client()
    for _ in range(2):
        refused = attempt(client, "guess")
        assert refused.status_code == 200 and b"did not match" in refused.content
    locked = attempt(client, "guess")
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content and locked["Content-Type"].startswith("text/html")
    # Even the right password is refused now: the guesser cannot confirm a hit.
    assert attempt(client, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # As JSON for a client that asks for it.
    as_json = attempt(Client(), PASSWORD, HTTP_ACCEPT="application/json")
    assert as_json.status_code == 429 and as_json.json()["error"] == "too_many_attempts"
    # The owner, from their own address, still gets in.
    owner = Client()
    assert attempt(owner, PASSWORD, address="198.51.100.9").status_code == 302
    assert owner.session["_auth_user_id"] == str(victim.pk)
    # What axes keeps of the attempts holds no password, right or guessed.
    from axes.models import AccessAttempt, AccessLog

    kept = repr(list(AccessAttempt.objects.values())) + repr(list(AccessLog.objects.values()))
    assert "victim" in kept and PASSWORD not in kept and "guess" not in kept


def test_a_success_resets_the_count(victim):
    client = Client()
    for _ in range(2):
        attempt(client, "guess")
    assert attempt(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert attempt(client, "guess").status_code == 200
    assert attempt(client, PASSWORD).status_code == 302


def test_api_tokens_keep_working_for_a_locked_out_user(victim):
    for _ in range(3):
        attempt(Client(), "guess")
    assert attempt(Client(), PASSWORD).status_code == 429
    token = token_regenerate(user=victim)
    response = Client().get("/api/projects/", HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 200


def test_behind_a_proxy_a_forged_forwarded_for_gives_no_fresh_attempts(victim, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    client = Client()
    proxy = "10.0.0.2"  # every request arrives from the proxy
    for i in range(3):
        # The attacker writes any address in front; the proxy appends the real one.
        attempt(client, "guess", address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.7")
    assert attempt(client, PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="192.0.2.99, 203.0.113.7").status_code == 429
    # Another client behind the same proxy is not locked out by that.
    other = attempt(Client(), PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert other.status_code == 302
