"""What every page view shares."""

from django.shortcuts import render

TITLES = {400: "Check the request", 403: "Not allowed", 500: "This could not be done"}


def refuse(request, message: str, status: int = 403):
    """The page for an action the user's role (or the object's state) does not allow, or, by
    ``status``, for a request to correct (400) or a failure an administrator must see to (500):
    each titled for what it is, so bad input never reads as a permission refusal."""
    context = {"message": message, "title": TITLES.get(status, TITLES[403])}
    return render(request, "403.html", context, status=status)
