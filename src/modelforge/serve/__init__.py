"""Serving: a FastAPI app with dynamic batching, limits, metrics and a playground page.

    modelforge serve runs/digits --port 8000
    curl -s localhost:8000/v1/models/digits/predict -H 'content-type: application/json' \
         -d '{"records": [{"x": [[0, 3, ...], ...]}]}'

`load_services` turns run directories into services, `create_app` wraps them in the app,
`run_server` runs it under uvicorn. FastAPI and uvicorn come with `pip install 'modelforge[serve]'`.
"""
