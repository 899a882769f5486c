"""``report``: every table and figure of the paper from the workdir's prediction files, and ``report.md``.

Outputs (under ``out_dir``): ``table1``, ``table2``, ``table3``, ``table4`` (phenotyping), ``table5`` (mortality),
``table_a1``, ``table_a2``, ``table_a3`` as ``.csv`` + ``.md``; ``figure4``, ``figure_a1``, ``figure_a2``,
``figure_a3`` as ``.png`` + the plotted data as ``.csv``; ``dataset_sizes.csv`` (Figure 1's counts); ``report.md``
putting them together. Every table and figure states the fidelity policy of the run (report.policy), and those
with MedFuse (OPTIMAL) or Unified say which model that is. An artifact whose inputs are all absent is skipped with
a note in report.md; partly absent inputs give missing rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm import tqdm

from medfuse_bench.drift import report_link
from medfuse_bench.io import atomic_path, write_text
from medfuse_bench.report import ablations, audit, chance, figures, tables
from medfuse_bench.report import calibration as calibration_section
from medfuse_bench.report import paired as paired_section
from medfuse_bench.report import seeds as seeds_section
from medfuse_bench.report import subgroups as subgroup_section
from medfuse_bench.report.cohort import cohort_counts, cohort_markdown, cxr_uni_images, exclusions_markdown
from medfuse_bench.report.experiments import (
    DROP_CXR_MODELS,
    MULTIMODAL_MODEL,
    TABLE1,
    TABLE2,
    TABLE3,
    TABLE_A2,
    TABLE_A3,
    TASK_ORDER,
    UNIMODAL_REFERENCE,
    UNIMODAL_TEST_MODELS,
    UNIFIED_ROW,
    TableSpec,
)
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_json, read_samples, select_test_set
from medfuse_bench.report.markdown import markdown_table
from medfuse_bench.report.optimal import OptimalChoice, mark_chosen, optimal_choices, optimal_note
from medfuse_bench.report.policy import ReportPolicy, resolve_spec, unified_note
from medfuse_bench.report.provenance import (
    DataFlags,
    banners,
    data_flags,
    provenance_rows,
    read_yaml,
    task_definitions,
)
from medfuse_bench.report.store import EvaluationStore
from medfuse_bench.report.table_a1 import table_a1, table_a1_markdown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSettings:
    n_resamples: int = 1000
    seed: int = 2022
    drop_fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    unimodal_test_fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    tasks: tuple[str, ...] | None = None
    paired_reference: str = "ehr-partial"
    calibration_bins: int = 10
    subgroup_min_positives: int = 10
    subgroup_age_bands: tuple[int, ...] = (18, 40, 60, 80)


@dataclass
class Report:
    """What was written, and the notes that report.md lists for skipped artifacts.

    ``policy_line`` closes every table and figure; ``optimal`` is what MedFuse (OPTIMAL) stands for per task.
    """

    out_dir: Path
    policy: ReportPolicy
    optimal: dict[str, OptimalChoice] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def table_notes(self, *, optimal: bool | str = False, unified: bool = False) -> str:
        """The lines under a table: which models OPTIMAL (``"full"``: with the sweep's values) and Unified are, when
        it shows them, then the policy."""
        lines = [optimal_note(self.optimal, brief=optimal != "full")] if optimal and self.optimal else []
        lines += [unified_note(self.policy.policy)] if unified else []
        return "\n".join(f"{line}\n" for line in (*lines, self.policy.line()))

    def table(self, key: str, frame: pl.DataFrame, markdown: str, *, optimal: bool | str = False,
              unified: bool = False) -> None:
        csv, md = self.out_dir / f"{key}.csv", self.out_dir / f"{key}.md"
        markdown = f"{markdown.rstrip()}\n\n{self.table_notes(optimal=optimal, unified=unified)}"
        with atomic_path(csv) as tmp:
            frame.write_csv(tmp)
        write_text(markdown, md)
        self.files += [csv, md]
        self.sections.append(markdown + f"\nCSV: [`{csv.name}`]({csv.name})\n")

    def figure(self, key: str, frame: pl.DataFrame, title: str, caption: str, *, optimal: bool | str = False) -> None:
        csv, png = self.out_dir / f"{key}.csv", self.out_dir / f"{key}.png"
        with atomic_path(csv) as tmp:
            frame.write_csv(tmp)
        self.files += [png, csv]
        self.sections.append(f"### {title}\n\n![{title}]({png.name})\n\n{caption} Data: [`{csv.name}`]({csv.name}).\n\n"
                             + self.table_notes(optimal=optimal))


def build_report(workdir: str | Path, out_dir: str | Path, settings: ReportSettings = ReportSettings()) -> Report:
    """Write every artifact and ``report.md``; returns the list of written files and notes."""
    wd = Workdir.at(workdir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in TASK_ORDER if t in (settings.tasks or wd.tasks_present())]
    store = EvaluationStore(wd, settings.n_resamples, settings.seed)
    config = read_yaml(wd.config_resolved)
    policy = ReportPolicy.from_config(config, wd.config_resolved.name)
    report = Report(out, policy, optimal_choices(wd, tasks, policy.policy, config))
    if not tasks:
        report.notes.append(f"No task tables found under {wd.root / 'tasks'}: nothing to evaluate.")
    samples = {t: read_samples(wd.samples(t), t) for t in tasks}
    config = read_yaml(wd.config_resolved)
    fidelity = str((config or {}).get("fidelity") or "corrected")

    def notes(spec: TableSpec, frame: pl.DataFrame) -> str:
        return chance.notes_markdown(chance.chance_notes(spec, frame, wd, samples, store.predictions, fidelity))

    # paper order: section 5, then appendix A
    for spec in tqdm((TABLE1, TABLE2, TABLE3), desc="tables", unit="table"):
        _metric_table(report, spec, tasks, store, notes)
    seeds_section.add_section(report, wd.root, tasks, store, config)
    _phenotype_artifacts(report, store, samples)
    _age_table(report, store, samples)
    _table_a1(report, wd, tasks)
    _sweep_figure(report, wd, tasks)
    _drop_cxr_figure(report, store, tasks, settings)
    _metric_table(report, TABLE_A2, tasks, store, notes)
    _unimodal_test_figure(report, store, samples, settings)
    _metric_table(report, TABLE_A3, tasks, store, notes)
    audit.add_sections(report, wd, tasks, store)
    paired_section.add_sections(report, wd, tasks, store, settings.paired_reference)
    calibration_section.add_sections(report, wd, tasks, store, settings.calibration_bins)
    subgroup_section.add_sections(report, wd, tasks, store, settings.subgroup_age_bands,
                                  settings.subgroup_min_positives, settings.paired_reference)

    provenance = read_json(wd.provenance)
    summary = read_json(wd.summary)
    flags = data_flags(config, summary, provenance, task_definitions([wd.samples(t) for t in tasks]))
    sizes = pl.concat([cohort_counts(samples[t], t) for t in tasks]) if tasks else None
    if sizes is not None:
        with atomic_path(out / "dataset_sizes.csv") as tmp:
            sizes.write_csv(tmp)
        report.files.append(out / "dataset_sizes.csv")
    if store.missing:
        listed = ", ".join("/".join(k) for k in sorted(store.missing))
        report.notes.append(f"Prediction files not found (rows shown as —): {listed}.")

    text = _report_markdown(report, wd, config, provenance, flags, sizes, cxr_uni_images(summary), settings)
    write_text(text, out / "report.md")
    report.files.append(out / "report.md")
    logger.info("report written to %s (%d files)", out, len(report.files))
    return report


def _metric_table(
    report: Report, spec: TableSpec, tasks: list[str], store: EvaluationStore,
    notes: Callable[[TableSpec, pl.DataFrame], str],
) -> None:
    unified = any(r.experiment == UNIFIED_ROW for r in spec.rows)
    spec = resolve_spec(spec, report.policy.policy)
    frame = tables.metric_table(spec, tasks, store.evaluation)
    if tasks and frame["available"].any():
        optimal = any(r.experiment == MULTIMODAL_MODEL for r in spec.rows)
        report.table(spec.key, frame, tables.metric_table_markdown(spec, frame, tasks) + notes(spec, frame),
                     optimal=optimal, unified=unified)
    else:
        report.notes.append(f"{spec.title}: skipped, none of its prediction files exist.")


def _phenotype_artifacts(report: Report, store: EvaluationStore, samples: dict[str, pl.DataFrame]) -> None:
    if "phenotyping" not in samples:
        return
    uni = store.evaluation("phenotyping", UNIMODAL_REFERENCE, "paired")
    multi = store.evaluation("phenotyping", MULTIMODAL_MODEL, "paired")
    if uni is None and multi is None:
        report.notes.append("Table 4 and Figure 4: skipped, no paired predictions of ehr-paired or medfuse-optimal.")
        return
    frame = tables.phenotype_table(samples["phenotyping"], uni, multi)
    report.table("table4", frame, tables.phenotype_table_markdown(frame), optimal=True)
    groups = tables.group_table(uni, multi).filter(pl.col("auroc").is_not_null() | pl.col("auprc").is_not_null())
    figures.plot_groups(groups, report.out_dir / "figure4.png")
    report.figure("figure4", groups, "Figure 4: phenotype groups (paired test set)",
                  "Macro AUROC and AUPRC over the acute, mixed and chronic phenotypes, LSTM (EHR_PAIRED) vs "
                  "MedFuse (OPTIMAL).", optimal=True)


def _age_table(report: Report, store: EvaluationStore, samples: dict[str, pl.DataFrame]) -> None:
    task = "in-hospital-mortality"
    if task not in samples:
        return
    if "age" not in samples[task].columns:
        report.notes.append("Table 5: skipped, the mortality samples table has no 'age' column.")
        return
    uni = store.predictions(task, UNIMODAL_REFERENCE, "paired")
    multi = store.predictions(task, MULTIMODAL_MODEL, "paired")
    if uni is None and multi is None:
        report.notes.append("Table 5: skipped, no paired predictions of ehr-paired or medfuse-optimal.")
        return
    frame = tables.age_table(samples[task], uni, multi, lambda p: store.score(p, micro=False))
    report.table("table5", frame, tables.age_table_markdown(frame), optimal=True)


def _table_a1(report: Report, wd: Workdir, tasks: list[str]) -> None:
    frame = table_a1(wd, tasks, report.policy.policy)
    if frame["lr"].is_null().all():
        report.notes.append("Table A1: skipped, no models/{task}/{experiment}/selected.json.")
        return
    report.table("table_a1", frame, table_a1_markdown(frame, tasks), optimal="full", unified=True)


def _sweep_figure(report: Report, wd: Workdir, tasks: list[str]) -> None:
    frame = mark_chosen(ablations.sweep_frame(wd, tasks), report.optimal)
    if frame.height == 0:
        report.notes.append("Figure A1: skipped, no models/{task}/medfuse-p{N}/selected.json.")
        return
    figures.plot_sweep(frame, report.out_dir / "figure_a1.png")
    report.figure("figure_a1", frame, "Figure A1: uni-modal samples in training (validation AUROC)",
                  "Validation AUROC of MedFuse fine-tuned with the paired training samples plus N% of the uni-modal "
                  "ones; the circled point is MedFuse (OPTIMAL) (column `chosen`).", optimal="full")


def _drop_cxr_figure(report: Report, store: EvaluationStore, tasks: list[str], settings: ReportSettings) -> None:
    records = []
    jobs = [(t, e) for t in tasks for e in DROP_CXR_MODELS]
    for task, experiment in tqdm(jobs, desc="figure A2", unit="model"):
        paired = store.predictions(task, experiment, "paired")
        nocxr = store.predictions(task, experiment, "paired_nocxr")
        if paired is None or nocxr is None:
            continue
        records += ablations.drop_cxr_curve(task, experiment, paired, nocxr, list(settings.drop_fractions),
                                            settings.seed, lambda p: store.score(p, micro=False))
    if not records:
        report.notes.append("Figure A2: skipped, no experiment has both paired and paired_nocxr predictions.")
        return
    frame = ablations.curve_frame(records)
    figures.plot_curves(frame, report.out_dir / "figure_a2.png", "X-rays dropped from the paired test set (%)",
                        "Figure A2: X-rays dropped from the paired test set")
    report.figure("figure_a2", frame, "Figure A2: X-rays dropped from the paired test set",
                  "A seeded random share of the paired test stays is predicted without its X-ray "
                  "(the same stays for every model, nested across percentages); models are shifted sideways a "
                  "little so their intervals stay readable.", optimal=True)


def _unimodal_test_figure(
    report: Report, store: EvaluationStore, samples: dict[str, pl.DataFrame], settings: ReportSettings
) -> None:
    records = []
    jobs = [(t, e) for t in samples for e in UNIMODAL_TEST_MODELS]
    for task, experiment in tqdm(jobs, desc="figure A3", unit="model"):
        partial = store.predictions(task, experiment, "partial")
        if partial is None:
            continue
        paired_stays = select_test_set(samples[task], "paired")["stay_id"].to_numpy()
        records += ablations.unimodal_test_curve(task, experiment, partial, paired_stays,
                                                 list(settings.unimodal_test_fractions), settings.seed,
                                                 lambda p: store.score(p, micro=False))
    if not records:
        report.notes.append("Figure A3: skipped, no partial predictions of " + " or ".join(UNIMODAL_TEST_MODELS) + ".")
        return
    frame = ablations.curve_frame(records)
    figures.plot_curves(frame, report.out_dir / "figure_a3.png", "Uni-modal test stays added (% of all unpaired)",
                        "Figure A3: uni-modal stays added to the paired test set")
    report.figure("figure_a3", frame, "Figure A3: uni-modal stays added to the paired test set",
                  "The paired test stays plus a seeded random share of the unpaired test stays (from "
                  "partial.parquet); models are shifted sideways a little so their intervals stay readable.",
                  optimal=True)


def _report_markdown(
    report: Report, wd: Workdir, config: dict | None, provenance: dict | None, flags: DataFlags, sizes: pl.DataFrame | None,
    images: dict[str, int] | None, settings: ReportSettings,
) -> str:
    parts = ["# MedFuse benchmark report", ""]
    parts += [b + "\n" for b in banners(flags)]
    rows = provenance_rows(wd.config_resolved, config, provenance, flags, settings.n_resamples, settings.seed)
    rows.append(("fidelity policy", report.policy.line().removeprefix("Produced under ")))
    parts += ["## Provenance", "", markdown_table(["", ""], rows), ""]
    if sizes is not None:
        summary_md = wd.root / "tasks" / "summary.md" if wd.summary.exists() else None
        parts += ["## Data set sizes (Figure 1)", "", cohort_markdown(sizes, images, summary_md and str(summary_md))]
        parts += [exclusions_markdown(read_json(wd.summary), summary_md and str(summary_md))]
    parts += report_link(wd.root, report.out_dir)  # the version-bump drift report, when one was made
    parts += ["## Results", "", "Values are AUROC / AUPRC (macro over labels for phenotyping) with 95% bootstrap "
              "percentile intervals; bold marks the best value of a column (Tables 2, 3, A3) or an improvement of "
              "MedFuse (OPTIMAL) over LSTM (EHR_PAIRED) (Tables 4, 5).", ""]
    parts += report.sections
    if report.notes:
        parts += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(parts)
