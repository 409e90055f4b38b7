"""Dashboards (REFERENCE §4.12 and §9): v2 YAML and v1 JSON files read into one shape, run, charted.

``models`` is the normalized dashboard every consumer sees (v1's panels become SQL panels there, built by
``legacy``); ``files`` finds and reads a pipeline's dashboard files; ``data`` runs a dashboard's queries
through the locked-down query engine with its filters bound, and plans them to validate it; ``charts``
turns a panel into a Vega-Lite spec; ``preview`` renders a pipeline's first dashboard to its preview PNG.
"""
