"""The admin app: an HTTP API to look at and change a running Turnout, and its web dashboard (`admin.ui`)."""
