"""Entry point for gunicorn: ``gunicorn wsgi:app``."""

import gc

from portal import create_app

app = create_app()
# Everything made at start-up lives as long as the worker: keep it out of the collector's
# full passes. Otherwise each full pass walks those ~130,000 objects again, and a page that
# makes many objects (a day of 20 busy providers) triggers one every few requests: measured
# on the bench's day view, 70 ms each, most of its 95th percentile.
gc.freeze()
