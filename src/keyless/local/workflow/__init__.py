"""``keyless local workflow``: one job of a GitHub Actions workflow run on this machine, against the
local stack, as GitHub's runner would run it.

By job: ``parse`` reads the workflow file, ``expressions`` evaluates ``${{ }}``, ``commands`` reads
the environment files and ``::command::`` lines and masks secrets, ``actions`` emulates the few
``uses:`` keyless supports, ``run`` runs the steps. Only ``run`` and ``actions`` start processes.
"""

from __future__ import annotations

from keyless.local.workflow.parse import (
    Job,
    Step,
    Workflow,
    WorkflowError,
    id_token_granted,
    load_values,
    load_workflow,
)
from keyless.local.workflow.run import JobResult, StepOutcome, WorkflowRun, run_job

__all__ = [
    "Job",
    "JobResult",
    "Step",
    "StepOutcome",
    "Workflow",
    "WorkflowError",
    "WorkflowRun",
    "id_token_granted",
    "load_values",
    "load_workflow",
    "run_job",
]
