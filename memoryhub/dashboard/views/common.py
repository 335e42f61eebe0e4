"""What every dashboard page and override shares: rendering with the live-stream cursor, and the
override pattern (validate the form, call the service as the human, report the outcome)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from memoryhub.errors import HubError
from memoryhub.events.selectors import last_seq

# What to tell a human beyond the service's own message, by error code.
HINTS = {
    "version_conflict": "Someone changed it since you opened the page: look at the current state and try again.",
    "lease_expired": "The lease had already ended.",
    "conflict": "Nothing was changed.",
}


class SeeOther(HttpResponseRedirect):
    """After a POST, the browser fetches the page again with GET (no resubmission on reload)."""

    status_code = 303


def page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    page_url: str | None = None,
) -> HttpResponse:
    """Render a page. `since` is the log's last seq before the page was read (see access.py): the live
    script asks the websocket for everything after it, so nothing committed between reading and
    connecting is missed. `page_url` is where the live script re-reads the page (the GET URL, also
    after a failed POST)."""
    since = getattr(request, "log_position", None)
    return render(
        request,
        template,
        {
            "since": last_seq() if since is None else since,
            "page_url": page_url or request.get_full_path(),
            **context,
        },
        status=status,
    )


def next_url(request: HttpRequest, default: str) -> str:
    """Where to go after an override: the `next` the form carried, if it is one of ours."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def error_text(error: HubError) -> str:
    hint = HINTS.get(error.code)
    return f"{error.message} {hint}" if hint else error.message


def form_errors(form: forms.Form) -> str:
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


def override(
    request: HttpRequest,
    *,
    form: forms.Form,
    call: Callable[[dict[str, Any]], str],
    back: str,
    show: Callable[[int], HttpResponse],
) -> HttpResponse:
    """Run one human override. `call(cleaned_data)` calls the service and returns the success message;
    success redirects to `back` (or the form's `next`). Bad input and refusals by the service
    (HubError) re-render the page through `show(status)` with the message, nothing changed."""
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return show(400)
    try:
        done = call(form.cleaned_data)
    except HubError as error:
        messages.error(request, error_text(error))
        return show(error.status)
    messages.success(request, done)
    return SeeOther(next_url(request, back))
