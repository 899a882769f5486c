"""drift.md: the drift record (drift.json) as Markdown tables."""

from __future__ import annotations

from typing import Any

from medfuse_bench.report.markdown import MISSING, format_estimate, markdown_table

#: Moved patients listed in drift.md (drift.json lists up to compare.MAX_LISTED).
MD_LISTED = 20

_COMPARISONS = {
    "new_labels": ("The previous models on the previous and on the current labels",
                   "Each previous model's predictions scored against the labels each release gives the kept test "
                   "stays."),
    "new_model": ("The previous models against the models retrained on the current release",
                  "Each side on its own release's labels."),
}


def _pct(share: float | None, ci: list[float | None] | None = None) -> str:
    if share is None:
        return MISSING
    text = f"{100 * share:.1f}%"
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" ({100 * ci[0]:.1f}, {100 * ci[1]:.1f})"
    return text


def _signed_pct(value: float | None, ci: list[float | None]) -> str:
    if value is None:
        return MISSING
    text = f"{100 * value:+.1f} pp"
    if ci[0] is not None and ci[1] is not None:
        text += f" ({100 * ci[0]:+.1f}, {100 * ci[1]:+.1f})"
    return text


def _membership_row(name: str, m: dict[str, int]) -> list[str]:
    return [name, *(str(m[k]) for k in ("previous", "current", "kept", "removed", "added"))]


def render(record: dict[str, Any]) -> str:
    """The whole report."""
    parts = ["# Drift between two releases of the data", "",
             f"- Previous: `{record['previous_workdir']}`: {record['versions']['previous']}",
             f"- Current: `{record['current_workdir']}`: {record['versions']['current']}", ""]
    diff = record["settings_differ"]
    if diff:
        parts += ["ETL settings that differ between the two workdirs (their effects mix with the release's):", "",
                  markdown_table(["Key", "Previous", "Current"],
                                 [[d["key"], str(d["previous"]), str(d["current"])] for d in diff]), ""]
    else:
        parts += ["The two workdirs share every ETL setting.", ""]

    parts += ["## Patients and stays", "", "Kept = in both releases; removed = only in the previous one; added = only "
              "in the current one.", ""]
    rows = [_membership_row(name, m) for name, m in record["membership"].items()]
    rows += [_membership_row(f"{task}: samples", t["stays"]) for task, t in record["tasks"].items()]
    parts += [markdown_table(["", "Previous", "Current", "Kept", "Removed", "Added"], rows, numeric_from=1), ""]

    s = record["splits"]
    parts += ["## Splits", "", f"{s['same_split']} of {s['kept_patients']} kept patients kept their split "
              f"({_pct(s['share_same_split'])}); {s['moved']} moved.", ""]
    if s["moved"]:
        listed = s["moved_patients"][:MD_LISTED]
        parts += [markdown_table(["subject_id", "Previous", "Current"],
                                 [[str(r["subject_id"]), r["previous"], r["current"]] for r in listed]), ""]
        if s["moved"] > len(listed):
            parts += [f"({s['moved'] - len(listed)} more in drift.json, up to its limit.)", ""]

    parts += ["## Samples per task and split", "", "PARTIAL = every sample, PAIRED = with a linked X-ray; the share "
              "has a 95% Wilson interval.", ""]
    rows = []
    for t in record["tasks"].values():
        for r in t["counts"]:
            rows.append([r["task"], r["split"], str(r["previous_partial"]), str(r["current_partial"]),
                         str(r["previous_paired"]), str(r["current_paired"]),
                         _pct(r["previous_paired_share"], r["previous_paired_share_ci"]),
                         _pct(r["current_paired_share"], r["current_paired_share_ci"])])
    parts += [markdown_table(["Task", "Split", "PARTIAL prev.", "PARTIAL curr.", "PAIRED prev.", "PAIRED curr.",
                              "Linked X-ray prev.", "Linked X-ray curr."], rows, numeric_from=2), ""]

    parts += ["## Task rows of the kept stays", "", "A kept stay whose raw data did not change has the same row in "
              "both releases; the columns say where the rows differ.", ""]
    rows = []
    for t in record["tasks"].values():
        k = t["kept_rows"]
        by_col = ", ".join(f"{c} {n}" for c, n in k["changed_by_column"].items()) or MISSING
        rows.append([k["task"], str(k["kept_stays"]), str(k["identical"]), str(k["changed"]), by_col,
                     f"{k.get('gained_xray', 0)} / {k.get('lost_xray', 0)} / {k.get('other_xray', 0)}"])
    parts += [markdown_table(["Task", "Kept stays", "Identical", "Changed", "Changed columns (stays)",
                              "X-ray gained / lost / other"], rows, numeric_from=1), ""]

    parts += ["## Label prevalence", "", "Prevalence over all samples of the task with 95% Wilson intervals; the "
              f"change (percentage points) has a 95% interval from {record['bootstrap']} bootstrap resamples of the "
              "patients of both releases. The last columns count kept stays whose label changed.", ""]
    rows = []
    for t in record["tasks"].values():
        for r in t["prevalence"]:
            rows.append([r["task"], r["label"], _pct(r["previous"], r["previous_ci"]),
                         _pct(r["current"], r["current_ci"]), _signed_pct(r["change"], r["change_ci"]),
                         str(r["kept_became_positive"]), str(r["kept_became_negative"])])
    parts += [markdown_table(["Task", "Label", "Previous", "Current", "Change", "Kept 0 -> 1", "Kept 1 -> 0"], rows,
                             numeric_from=2), ""]

    parts += _models_section(record)
    if record["notes"]:
        parts += ["## Notes", "", *(f"- {n}" for n in record["notes"]), ""]
    return "\n".join(parts)


def _models_section(record: dict[str, Any]) -> list[str]:
    parts = ["## Models of the previous release on the kept test stays", ""]
    if not record["models"]:
        return parts + ["No prediction file under the previous workdir's `predictions/`: no model was trained on the "
                        "previous release.", ""]
    parts += ["Macro AUROC / AUPRC on the test stays that both releases keep, with 95% paired bootstrap intervals of "
              f"the change ({record['bootstrap']} resamples, seed {record['seed']}); docs/version-bump.md says what "
              "each comparison measures. *Kept* counts the kept test stays of the previous / current test set.", ""]
    empty = [m for m in record["models"] if not m["comparisons"]]
    if empty:
        parts += ["No kept test stay: " + ", ".join(f"{m['task']} / {m['experiment']} / {m['test_set']}"
                                                   for m in empty) + ".", ""]
    for key, (title, text) in _COMPARISONS.items():
        rows = []
        for m in record["models"]:
            if key not in m["comparisons"]:
                continue
            c = m["comparisons"][key]
            cells = [m["task"], m["experiment"], m["test_set"],
                     f"{m['kept_stays']} of {m['previous_stays']} / {m['current_stays']}", str(m["labels_changed"])]
            for metric in ("auroc", "auprc"):
                cells += [format_estimate(c[metric]["previous"]["value"], None, None),
                          format_estimate(c[metric]["current"]["value"], None, None), _signed(c[metric]["difference"])]
            rows.append(cells)
        if key == "new_model" and not record["new_models"]:
            parts += [f"### {title}", "", "Not compared: drift.new_models is off.", ""]
            continue
        if not rows:
            if key == "new_model":
                parts += [f"### {title}", "", "The current workdir has no prediction file of these experiments and "
                          "test sets covering their kept test stays.", ""]
            continue
        parts += [f"### {title}", "", text, ""]
        if key == "new_labels" and not any(m.get("labels_changed") for m in record["models"]):
            parts += ["No kept test stay has another label in the current release: every change is zero.", ""]
        parts += [markdown_table(["Task", "Experiment", "Test set", "Kept", "Relabelled", "AUROC prev.", "AUROC curr.",
                                  "Change", "AUPRC prev.", "AUPRC curr.", "Change"], rows, numeric_from=3), ""]
    return parts


def _signed(d: dict[str, float | None]) -> str:
    if d["value"] is None:
        return MISSING
    text = f"{d['value']:+.3f}"
    if d["ci_low"] is not None and d["ci_high"] is not None:
        text += f" ({d['ci_low']:+.3f}, {d['ci_high']:+.3f})"
    return text
