"""``keyless local pipeline``: a Bitbucket pipeline's steps run on this machine, without containers,
each in a fresh clone with the variables, OIDC token, artifacts and caches Bitbucket would give it.

By job: ``model`` is the pipeline as Bitbucket reads it, ``parse`` reads the pipeline file into
it (``branch_patterns`` matches its globs), ``variables`` reads the variables file,
``identities`` keeps the workspace, repository and environment UUIDs, ``plan`` chooses what runs,
``source`` says where a step's files come from (a clone, or a copy of the working tree) and what
changed, ``files`` carries artifacts and caches, ``script`` writes the bash a step runs and its
environment, ``execute`` runs the steps (a `parallel:` group at once) into ``results``, ``run``
runs one step's commands as processes. Up to ``plan``, none starts a process.
"""

from __future__ import annotations

from keyless.local.pipeline.execute import run_pipeline
from keyless.local.pipeline.files import CACHES_FOLDER, PREDEFINED_CACHES
from keyless.local.pipeline.identities import (
    IDENTITIES_FILE,
    Identity,
    local_issuer,
    resolve_identity,
    scope_flags,
)
from keyless.local.pipeline.model import (
    EMULATED_PIPES,
    PipeCall,
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
)
from keyless.local.pipeline.parse import load_pipeline_file
from keyless.local.pipeline.plan import CheckoutReader, PipelinePlan, plan_pipeline
from keyless.local.pipeline.results import PipelineResult, StepResult, StepStatus
from keyless.local.pipeline.script import keyless_argv, step_script
from keyless.local.pipeline.source import git_checkout
from keyless.local.pipeline.variables import Variables, load_variables

__all__ = [
    "CACHES_FOLDER",
    "EMULATED_PIPES",
    "IDENTITIES_FILE",
    "PREDEFINED_CACHES",
    "CheckoutReader",
    "Identity",
    "PipeCall",
    "Pipeline",
    "PipelineError",
    "PipelineFile",
    "PipelinePlan",
    "PipelineResult",
    "Step",
    "StepResult",
    "StepStatus",
    "Variables",
    "git_checkout",
    "keyless_argv",
    "load_pipeline_file",
    "load_variables",
    "local_issuer",
    "plan_pipeline",
    "resolve_identity",
    "run_pipeline",
    "scope_flags",
    "step_script",
]
