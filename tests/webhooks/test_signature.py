"""Signature checks against GitHub's documented vector and real signed deliveries."""

import json

from tests.conftest import corpus_path
from webhooks.github import signature_matches


def _vectors():
    return json.loads(corpus_path("github_payloads", "signature-test-vectors.DERIVED.json").read_text())["vectors"]


def test_github_documented_vector():
    vector = next(v for v in _vectors() if v["id"] == "github-docs-test-vector")
    body = vector["payload_utf8"].encode()
    assert signature_matches(secret=vector["secret_utf8"], body=body,
                             header=vector["expected_x_hub_signature_256"])
    # A trailing newline changes the bytes: the signature must not match any more.
    assert not signature_matches(secret=vector["secret_utf8"], body=body + b"\n",
                                 header=vector["expected_x_hub_signature_256"])


def test_real_signed_deliveries_verify_on_raw_bytes_not_reserialized_json():
    real = [v for v in _vectors() if "payload_file" in v]
    assert len(real) == 3
    for vector in real:
        raw = corpus_path("github_payloads", vector["payload_file"]).read_bytes()
        assert signature_matches(secret=vector["secret_utf8"], body=raw,
                                 header=vector["expected_x_hub_signature_256"])
        reserialized = json.dumps(json.loads(raw), indent=2).encode()
        assert not signature_matches(secret=vector["secret_utf8"], body=reserialized,
                                     header=vector["expected_x_hub_signature_256"])


def test_wrong_secret_missing_header_and_sha1_only_are_rejected():
    body = b'{"zen": "Keep it logically awesome."}'
    from webhooks.github import sign

    good = sign(secret="right", body=body)
    assert signature_matches(secret="right", body=body, header=good)
    assert not signature_matches(secret="wrong", body=body, header=good)
    assert not signature_matches(secret="right", body=body, header=None)
    assert not signature_matches(secret="right", body=body, header="sha1=" + "0" * 40)
    assert not signature_matches(secret="", body=body, header=good)
