"""``keyless local pipeline``: a Bitbucket pipeline's steps run on this machine, without containers,
each in a fresh clone with the variables, OIDC token, artifacts and caches Bitbucket would give it.

By job: ``parse`` reads the pipeline and variables files, ``identities`` keeps the workspace,
repository and environment UUIDs, ``plan`` chooses what runs, ``source`` says where a step's
files come from (a clone, or a copy of the working tree) and what changed, ``files`` carries
artifacts and caches, ``script`` writes the bash a step runs and its environment, ``run`` runs
the steps (a `parallel:` group at once). The first three start no process.
"""

from __future__ import annotations

from keyless.local.pipeline.files import CACHES_FOLDER, PREDEFINED_CACHES
from keyless.local.pipeline.identities import (
    IDENTITIES_FILE,
    Identity,
    local_issuer,
    resolve_identity,
    scope_flags,
)
from keyless.local.pipeline.parse import (
    EMULATED_PIPES,
    PipeCall,
    Pipeline,
    PipelineError,
    PipelineFile,
    Step,
    Variables,
    load_pipeline_file,
    load_variables,
)
from keyless.local.pipeline.plan import CheckoutReader, PipelinePlan, plan_pipeline
from keyless.local.pipeline.run import (
    PipelineResult,
    StepResult,
    StepStatus,
    git_checkout,
    run_pipeline,
)
from keyless.local.pipeline.script import keyless_argv, step_script

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
