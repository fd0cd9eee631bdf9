"""Template context every page gets: the review counts shown in the navigation bar."""

from django.utils.functional import SimpleLazyObject


def review(request):
    """``review_counts`` (``{"awaiting": n, "flagged": m}``), queried only if a page shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def counts():
        from .selectors.review import review_counts

        return review_counts(user=user)

    return {"review_counts": SimpleLazyObject(counts)}
