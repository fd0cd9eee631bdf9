"""Template context every page gets: what the navigation bar shows (review counts, and whether
the user may register patients anywhere)."""

from django.utils.functional import SimpleLazyObject


def review(request):
    """``review_counts`` (``{"awaiting": n, "flagged": m}``), queried only if a page shows it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def counts():
        from .selectors.review import review_counts

        return review_counts(user=user)

    def registers():
        from .roles import Capability, lab_ids

        return bool(lab_ids(user, Capability.REGISTER))

    return {
        "review_counts": SimpleLazyObject(counts),
        "nav_can_register": SimpleLazyObject(registers),
    }
