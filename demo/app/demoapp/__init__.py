"""The demo application the rollback tests deploy, break and roll back (see docs/demo-app.md)."""
