"""`cprs serve`: an HTTP service that keeps the critic loaded and batches requests on the device.

It speaks cprs's own API (`POST /v1/compress`, `serve.api`) and the official QwenLong-CPRS API
(`POST /qwen_long_compress_server`, `serve.official`), so clients of the official server work
with no change but the URL. `server.run_server` starts it; `app.create_app` builds the FastAPI
app over a loaded `Compressor`; `batcher.Batcher` is the worker that batches requests together.

Needs the `serve` extra (FastAPI, uvicorn, prometheus-client): `pip install 'cprs-cli[serve]'`.
This package's `__init__` imports none of them, so `cprs_cli.extras.require("serve")` can say so
in one line first.
"""
