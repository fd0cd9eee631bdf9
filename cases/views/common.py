"""What every page view shares."""

from django.shortcuts import render


def refuse(request, message: str, status: int = 403):
    """The page for an action the user's role (or the object's state) does not allow."""
    return render(request, "403.html", {"message": message}, status=status)
