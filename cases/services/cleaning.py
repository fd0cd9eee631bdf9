"""Model validation for the services: constraint errors land on the field they are about, also
when a concurrent request broke the constraint after validation passed."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

# A constraint's ``violation_error_code`` -> the field its message belongs to.
CONSTRAINT_FIELDS = {
    "duplicate_record_number": "record_number",
    "duplicate_accession_number": "accession_number",
}


def full_clean(obj) -> None:
    """``obj.full_clean()``, with a lab-unique constraint's error put on its field (Django puts
    a constraint over several fields on the whole form)."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise _on_fields(exc) from exc


@contextmanager
def atomic_unique(obj) -> Iterator[None]:
    """``transaction.atomic()`` around saving ``obj``. Two requests can both pass ``full_clean``
    with the same lab-unique number; the second one's save then breaks the constraint. That is
    raised as the error validation gives now (the number exists in this lab), not as an
    ``IntegrityError``; any other ``IntegrityError`` is raised as it is."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        try:
            obj.validate_constraints()  # sees the other request's committed row
        except ValidationError as found:
            raise _on_fields(found) from exc
        raise


def _on_fields(exc: ValidationError) -> ValidationError:
    errors: dict[str, list] = {}
    for name, found in exc.error_dict.items():
        for error in found:
            errors.setdefault(CONSTRAINT_FIELDS.get(error.code, name), []).append(error)
    return ValidationError(errors)
