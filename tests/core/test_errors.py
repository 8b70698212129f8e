"""One error path (core.errors): the API handler's body, the page middleware, id parameters."""

import pytest
from django.test import RequestFactory
from rest_framework import serializers

from core.errors import (
    MAX_INT64,
    AppError,
    AppErrorMiddleware,
    Conflict,
    NotFound,
    api_exception_handler,
    int_param,
)


def test_each_kind_of_error_has_its_status_and_names_its_field():
    for error, status in ((AppError("x: bad", field="x"), 400), (Conflict("run: done"), 409),
                          (NotFound("no such unit"), 404)):  # fmt: skip
        response = api_exception_handler(error, {})
        assert response.status_code == status
        assert response.data["detail"] == error.message and response.data["field"] == error.field


def test_a_validation_error_keeps_its_fields_and_gains_detail_and_field():
    response = api_exception_handler(
        serializers.ValidationError({"redundancy": ["redundancy: give a whole number."]}), {}
    )
    assert response.status_code == 400
    assert response.data["redundancy"] == ["redundancy: give a whole number."]
    assert response.data["field"] == "redundancy"
    assert response.data["detail"] == "redundancy: give a whole number."


def test_a_value_the_database_cannot_hold_is_a_400_not_a_500():
    response = api_exception_handler(OverflowError("Python int too large"), {})
    assert response.status_code == 400 and response.data["field"] is None


@pytest.mark.parametrize("text", ["abc", "1.5", "", "١٢", str(2**63), "-1", "1\x00"])
def test_int_param_refuses_what_is_not_a_whole_number_in_range(text):
    with pytest.raises(AppError) as error:
        int_param(text, field="id", low=0)
    assert error.value.field == "id" and str(error.value).startswith("id: ")


def test_int_param_accepts_the_largest_id():
    assert int_param(str(MAX_INT64), field="id") == MAX_INT64


def _middleware(view):
    return AppErrorMiddleware(view)


def test_pages_refuse_a_nul_byte_in_a_query_parameter_before_the_view():
    called = []
    response = _middleware(lambda request: called.append(1))(
        RequestFactory().get("/runs/", {"page": "1\x00"})
    )
    assert response.status_code == 400 and not called
    assert b"page: remove the NUL byte" in response.content
    api = _middleware(lambda request: None)(RequestFactory().get("/api/dissect/units/?q=%00"))
    assert api.status_code == 400 and b'"field": "q"' in api.content


def test_an_app_error_on_a_page_post_goes_back_as_a_message(rf, settings):
    from django.contrib.messages.storage.fallback import FallbackStorage

    request = rf.post("/runs/1/cancel/", HTTP_REFERER="http://testserver/runs/1/")
    request.session = {}
    request._messages = FallbackStorage(request)
    response = _middleware(None).process_exception(request, Conflict("run 1 is done"))
    assert response.status_code == 302 and response["Location"] == "http://testserver/runs/1/"
    assert [str(m) for m in request._messages] == ["run 1 is done"]


def test_an_app_error_on_a_page_get_answers_with_its_status(rf):
    response = _middleware(None).process_exception(rf.get("/runs/1/"), Conflict("run 1 is done"))
    assert response.status_code == 409 and response.content == b"run 1 is done"
    assert _middleware(None).process_exception(rf.get("/x/"), NotFound("gone")).status_code == 404
    # API paths are the DRF handler's.
    assert _middleware(None).process_exception(rf.get("/api/x/"), NotFound("gone")) is None
