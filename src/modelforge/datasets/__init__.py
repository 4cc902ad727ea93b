"""The dataset catalog: the datasets the examples use, fetched by name into a local cache.

`modelforge datasets list | info NAME | fetch NAME | path NAME | verify NAME`; configs read a
fetched file as `dataset:NAME/relative/path`. Importing this package is cheap (no network, no torch).
"""
