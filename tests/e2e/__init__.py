"""Helpers for the tests that run the product with real Prometheus and Alertmanager binaries."""
