"""Incremental S3 deploy: ``local_tree`` walks the build, ``headers`` decides each object's headers,
``plan`` (pure) compares local and remote by content, ``apply`` runs a plan against S3 (its
request and result in ``request``, its phases in ``remote``, ``uploads`` and ``control``).
"""
