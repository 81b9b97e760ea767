"""Chapter 9: video action recognition with ECO-Lite and ECO-Full (``task.py``)."""
