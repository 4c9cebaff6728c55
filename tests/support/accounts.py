"""The passwords of the accounts tests make (the admin's is set in the test settings)."""

ADMIN_PASSWORD = "admin-password-1"
USER_PASSWORD = "user-password-1"
