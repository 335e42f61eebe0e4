"""Who may use the dashboard.

The rule, the same as for the API's human endpoints: every page needs a logged-in user, and only
staff users oversee agents. Anonymous visitors are sent to `/login/?next=<page>`; a logged-in user
who is not staff gets a 403 page that says so (and how to get access) instead of a redirect loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from memoryhub.actors import Actor
from memoryhub.events.selectors import last_seq


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not user.is_staff:
            return render(request, "dashboard/forbidden.html", status=403)
        # Where the log stood before the page reads anything: the live script resumes from here, so an
        # event committed while the page is being built is replayed rather than lost (the feed drops
        # the ones it already shows).
        # An attribute of our own on the request (HttpRequest declares none such); views/common.py
        # reads it back with getattr.
        request.log_position = last_seq()  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


def human(request: HttpRequest) -> Actor:
    """The actor for a dashboard request: the logged-in staff user."""
    return Actor.for_user(request.user)
