"""Issue 12, point 9: an oversize upload is refused from its Content-Length before a byte is
read; the pickled-checkpoint refusal carries no terminal escape codes."""

import pytest

from annotate.explain.uploads import MAX_UPLOAD_BYTES
from core.request_limits import request_limit_bytes


class Unreadable:
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read

    def __iter__(self):
        raise AssertionError("the body was read")


def _post_huge(client, path, **extra):
    return client.generic(
        "POST",
        path,
        CONTENT_TYPE="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(300 * 1024 * 1024),
        **{"wsgi.input": Unreadable()},
        **extra,
    )


def test_the_limit_fits_the_largest_upload():
    assert MAX_UPLOAD_BYTES < request_limit_bytes() <= MAX_UPLOAD_BYTES + 2 * 1024 * 1024


@pytest.mark.parametrize("role", ["researcher", "anonymous"])
def test_a_300_mb_upload_is_refused_unread(client, make_user, role):
    if role != "anonymous":
        client.force_login(make_user(role))
    response = _post_huge(client, "/explain/")
    assert response.status_code == 413
    text = response.content.decode()
    assert "300.0 MB" in text and "20 MB" in text


def test_the_api_gets_json(client, make_user):
    client.force_login(make_user("researcher"))
    response = _post_huge(client, "/explain/api/")
    assert response.status_code == 413
    assert response.json()["field"] == "image" and "smaller image" in response.json()["detail"]


def test_a_content_length_that_is_not_a_number(client):
    response = client.generic("POST", "/explain/", b"", CONTENT_LENGTH="lots")
    assert response.status_code == 400


def test_small_requests_pass(client):
    assert client.get("/healthz").status_code in (200, 503)


def test_pickled_checkpoint_refusal_is_plain_text(tmp_path):
    import torch

    from dissect.networks import NetworkLoadError
    from dissect.networks.checkpoints import read_checkpoint

    path = tmp_path / "whole.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(NetworkLoadError) as refused:
        read_checkpoint(path)
    message = str(refused.value)
    assert "trust_pickle=True" in message
    assert "\x1b" not in message and "[1m" not in message and "[0m" not in message
    assert all(ch >= " " or ch == "\n" for ch in message)


def test_plain_text_strips_escapes():
    from dissect.networks.checkpoints import plain_text

    assert plain_text("\x1b[1mbold\x1b[0m and \x1b]8;;http://x\x07link\x1b]8;;\x07") == (
        "bold and link"
    )
    assert plain_text("bell\x07 nul\x00") == "bell nul"
