"""Command-line tools that need the application: `vggt-export` (export_glb.py) and `vggt-check-storage`.

Each is also runnable from a checkout as `scripts/<name>.py`; the user tools
live in `serve_app.storage.admin`, the protocol client in `tcp_proxy.client`.
"""
