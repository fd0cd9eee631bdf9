"""Gunicorn settings shared by ``scripts/run``, ``docker/Dockerfile`` and the tests' web process
(``gunicorn -c leukemia_portal/gunicorn.conf.py``; flags on the command line add to these).

The access log names each request's path without its query string and without the Referer: a
patient search (``/?q=<record number>``) and the page a search result was opened from would
otherwise write record numbers into a plain file that no access control or audit covers.
"""

# Address, time, method, path (no query string), protocol, status, bytes, milliseconds.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
