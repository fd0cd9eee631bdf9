"""What leaves the portal: the case report (print view and PDF), FHIR, and the image CSV.

``context`` reads what a report shows; ``pdf`` renders it with WeasyPrint; ``fhir`` builds the
FHIR R4 bundle of a signed version; ``table`` streams the lab's images as CSV; ``http`` makes the
responses the pages and the API share. Storing a signed report is a write: ``services.reports``.
"""
