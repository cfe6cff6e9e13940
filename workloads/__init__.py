"""What the tests and the benches both run: workflows that need no downloads, and the store
rows a store test or bench starts from.

One home that both may import, so that bench/ never imports tests/. It is not shipped:
setuptools finds packages under src/ only. It is importable from the repository root,
where pytest runs (tests/ is a package, so pytest puts its parent on the path) and where
benches run as `python -m bench.<name>`.
"""
