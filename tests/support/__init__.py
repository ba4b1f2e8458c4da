"""What the tests stand on, shared by every folder.

- ``database``: the run's test databases (migrated once, reset to the baseline per test), the
  demo users and their password and TOTP secrets, and ``migrated_app`` for an empty one;
- ``clients``: ``PortalClient`` (CSRF tokens, sign-in with TOTP), sessions opened without the
  form, ``actor_of`` for calling services directly;
- ``browser``: the Playwright fixtures (Debian's Chromium, watched for console errors and CSP
  violations); a folder's conftest.py imports the ones it uses;
- ``chart``: a small chart (a second prescriber, visit types, two patients) and row makers;
- ``factories``: rows made with the models directly;
- ``audit``: the audit trail as the server left it.

The fixtures themselves are defined in tests/conftest.py (and a folder's conftest.py); helpers
of one folder live in that folder (e.g. tests/auth/helpers.py). Nothing imports a conftest or
a test module.
"""
