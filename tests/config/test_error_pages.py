"""The 403 page is one of ours: the site's layout, the refusal's reason and what to do next."""

import pytest


@pytest.mark.django_db
def test_a_refused_page_is_styled_and_says_why_and_what_to_do(client, make_user):
    client.force_login(make_user("annotator", username="ann"))
    response = client.get("/runs/")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'class="topbar"' in page and "css/app.css" in page  # the site's layout
    assert "Not allowed" in page and "for researchers and admins" in page  # the reason
    assert "logged in as <strong>ann</strong> (annotator)" in page
    assert "log in with another account" in page and 'href="/"' in page
