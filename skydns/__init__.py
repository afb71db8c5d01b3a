"""Shared core of the skydns suite: config, etcd store, key layout, record model."""
