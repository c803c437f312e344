"""Voxline: a self-hosted voice AI agent platform, API-compatible with Retell AI."""

__version__ = "0.1.0"
