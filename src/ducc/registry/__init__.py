"""Talking to container registries: auth, tag lists, manifests and blobs, one client each."""
