"""Tools for testing edge-rollout against real parts (as `kopf.testing` is for Kopf)."""
