"""Staff sign-in: passwords, TOTP second factor, server-side sessions, roles and permissions."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")
