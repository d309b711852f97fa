"""Incremental S3 deploy: ``local_tree`` walks the build, ``headers`` decides each object's headers,
``plan`` (pure) compares local and remote by content, ``apply`` runs a plan against S3.
"""
