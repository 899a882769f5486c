"""The fidelity policy a report was made under, and the one choice of it that the report itself makes: which model
fills the paper's Unified row (switch ``unified_row``).

The policy comes from ``{workdir}/config.resolved.yaml`` (``fidelity`` and ``fidelity_switches``), the config the
workflow ran with. Every table and figure of report.md states it, and names any switch set differently from the
preset.

The paper's Unified (Hayat et al. 2021a) is, in the original code, ``fusion_type unified``: the joint network's
forward and prediction unchanged (nothing frozen, no extra heads). Its eval script (``unified.sh``) scores it on
the paired test set; the paper trains it on (EHR + CXR)_PARTIAL. Under ``joint_on_paired`` the row therefore shows
``joint-partial-zeros``: the joint network trained end to end on (EHR + CXR)_PARTIAL with a fixed, non-learned
stand-in for a missing X-ray, on the paired test set. (The original pushes a zero image through the ResNet;
joint-partial-zeros puts zeros in place of the projected X-ray feature. ``joint-partial`` with its learnable vector
is the paper's own "Joint (EHR + CXR)_PARTIAL" row.) Under ``multi_head`` the row shows ``multihead-partial``, the
multi-head model after Hayat et al. 2021a's idea (per-modality heads, the head matching each sample, a three-term
loss), a design of this project.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.experiments import DISPLAY_NAMES, UNIFIED_ROW, TableSpec

#: The model of the paper's Unified row under each value of the switch unified_row.
UNIFIED_MODELS: dict[str, str] = {"joint_on_paired": "joint-partial-zeros", "multi_head": "multihead-partial"}


@dataclass(frozen=True)
class ReportPolicy:
    """The policy and where it was read from (``None`` source: no resolved config, the schema's preset assumed)."""

    policy: FidelityPolicy
    source: str | None

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, source: str) -> ReportPolicy:
        if not config or "fidelity" not in config:
            return cls(FidelityPolicy.preset("corrected"), None)
        try:
            return cls(FidelityPolicy.from_config(config), source)
        except MedfuseError as exc:
            raise MedfuseError(f"'{source}': {exc}") from exc

    def line(self) -> str:
        """What every table states: the policy, and in bold the switches that differ from the named preset.

        >>> ReportPolicy(FidelityPolicy.preset("original"), "config.resolved.yaml").line()
        'Produced under fidelity policy: original (no switch changed) (from `config.resolved.yaml`).'
        >>> p = FidelityPolicy.from_switches("original", {"unified_row": "multi_head"})
        >>> print(ReportPolicy(p, "c.yaml").line())
        Produced under fidelity policy: original, with unified_row=multi_head (from `c.yaml`). **Differs from the original preset: unified_row.**
        """
        source = f"from `{self.source}`" if self.source else "assumed: no config.resolved.yaml in the workdir"
        text = f"Produced under {self.policy.summary_line()} ({source})."
        deviations = self.policy.deviations()
        if deviations:
            text += f" **Differs from the {self.policy.preset_name} preset: {', '.join(deviations)}.**"
        return text


def unified_experiment(policy: FidelityPolicy) -> str:
    """The experiment whose predictions fill the paper's Unified row.

    >>> unified_experiment(FidelityPolicy.preset("original"))
    'joint-partial-zeros'
    """
    return UNIFIED_MODELS[policy.unified_row]


def resolve_spec(spec: TableSpec, policy: FidelityPolicy) -> TableSpec:
    """``spec`` with the Unified row's experiment set by the policy (other rows unchanged)."""
    rows = tuple(replace(r, experiment=unified_experiment(policy)) if r.experiment == UNIFIED_ROW else r
                 for r in spec.rows)
    return replace(spec, rows=rows)


def unified_note(policy: FidelityPolicy) -> str:
    """The sentence under a table with a Unified row."""
    experiment = unified_experiment(policy)
    if policy.unified_row == "joint_on_paired":
        return (f"Unified (switch unified_row = joint_on_paired): `{experiment}`, the joint network trained on "
                "(EHR + CXR)_PARTIAL with zeros for a missing X-ray. The original code's Unified is its joint "
                "network (the same forward and prediction), scored on the paired test set by its unified.sh.")
    return (f"Unified (switch unified_row = multi_head): `{experiment}` ({DISPLAY_NAMES[experiment]}), this "
            "project's multi-head model after Hayat et al. 2021a (per-modality heads, the head matching each "
            "sample, a three-term loss); the original code has no such model.")
