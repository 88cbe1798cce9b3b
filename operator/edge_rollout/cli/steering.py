"""Steering a rollout from the command line: pause, resume, promote, abort and roll back.

Pure: each function returns the JSON merge patch of `spec` fields that the plugin sends, the same
fields a GitOps user writes in Git. There is no imperative state: the operator only reads spec.
"""

from __future__ import annotations

from typing import Any

from edge_rollout.api.modeldeployment import ModelDeployment

FULL_PROMOTION_STEP = 64
"""`throughStep` that passes every pause (steps are limited to 64)."""


PAUSE_ONLY = "paused, NOT rolled back (abort without --rollback only pauses)"
"""What `abort` without --rollback says it did: Argo Rollouts' abort returns to stable, this one
does not."""


class SteeringError(Exception):
    """The requested change does not apply to this ModelDeployment; the message says why."""


def paused_patch(paused: bool) -> dict[str, Any]:
    """`pause` / `resume`: set spec.paused.

    >>> paused_patch(True)
    {'spec': {'paused': True}}
    """
    return {"spec": {"paused": paused}}


def promote_patch(md: ModelDeployment, full: bool) -> dict[str, Any]:
    """`promote`: approve the pauses of the current version up to the current step (or all).

    Example: a rollout of 2.0 waiting at step 1 (a pause) gets
    `{"spec": {"strategy": {"approved": {"version": "2.0", "throughStep": 1}}}}`; the approval
    names the version, so it never carries over to the next rollout.
    """
    step = FULL_PROMOTION_STEP if full else md.status.current_step_index
    approved = {"version": md.spec.model.version, "throughStep": step}
    return {"spec": {"strategy": {"approved": approved}}}


def abort_patch(md: ModelDeployment, rollback: bool) -> dict[str, Any]:
    """`abort`: freeze the rollout (spec.paused: true). With `rollback`, go back instead.

    Nodes keep the version they were given until they are asked for the target, so a rollback is
    a rollout of status.stableVersion: the version changes back, the rollout runs (paused: false)
    and its pauses are approved, within maxUnavailable. That is the same edit a GitOps user makes
    in Git.
    """
    if not rollback:
        return {"spec": {"paused": True}}
    stable = rollback_version(md)
    approved = {"version": stable, "throughStep": FULL_PROMOTION_STEP}
    return {
        "spec": {
            "paused": False,
            "model": {"version": stable},
            "strategy": {"approved": approved},
        }
    }


def rollback_version(md: ModelDeployment) -> str:
    """The version a rollback returns to: status.stableVersion."""
    stable = md.status.stable_version
    if not stable:
        raise SteeringError(
            "no stable version to roll back to (status.stableVersion is empty: no rollout has "
            "completed yet); set spec.model.version to an earlier release or delete the "
            "ModelDeployment"
        )
    if stable == md.spec.model.version:
        raise SteeringError(f"spec.model.version is already the stable version {stable}")
    return stable


def gitops_hint(md: ModelDeployment) -> str:
    """How to roll back in Git, so the next sync does not undo it."""
    stable = md.status.stable_version or "<an earlier version>"
    return (
        "The rollout is paused: nodes keep what they run now. To roll back the GitOps way, change "
        "the ModelDeployment in Git:\n"
        f"  spec.model.version: {stable!r}    # was {md.spec.model.version!r}\n"
        "  spec.paused: false\n"
        f"  spec.strategy.approved: {{version: {stable!r}, throughStep: {FULL_PROMOTION_STEP}}}"
        "    # pass the pauses on the way back\n"
        f"or run: kubectl edge-rollout abort {_name(md)} -n {_namespace(md)} --rollback"
        "  (and commit the same change to Git)"
    )


def after_note(
    command: str, before: ModelDeployment, after: ModelDeployment, rollback: bool
) -> str:
    """What happens next, and the GitOps reminder, printed after a command."""
    if command == "abort" and not rollback:
        return gitops_hint(after)
    git = "GitOps: write the same spec fields in Git, or the next sync undoes this."
    if command == "abort":
        return (
            f"Rolling back from {before.spec.model.version} to {after.spec.model.version}: nodes "
            f"return in waves within maxUnavailable, pauses approved.\n{git}"
        )
    return git


def _name(md: ModelDeployment) -> str:
    return str(md.metadata.get("name", ""))


def _namespace(md: ModelDeployment) -> str:
    return str(md.metadata.get("namespace", "default"))
