"""``report``: every table and figure of the paper from the workdir's prediction files, and ``report.md``.

Outputs (under ``out_dir``): ``table1``, ``table2``, ``table3``, ``table4`` (phenotyping), ``table5`` (mortality),
``table_a2``, ``table_a3`` as ``.csv`` + ``.md``; ``figure4``, ``figure_a1``, ``figure_a2``, ``figure_a3`` as
``.png`` + the plotted data as ``.csv``; ``dataset_sizes.csv``; ``report.md`` putting them together.
An artifact whose inputs are all absent is skipped with a note in report.md; partly absent inputs give
missing rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from tqdm import tqdm

from medfuse_bench.io import atomic_path, write_text
from medfuse_bench.report import ablations, audit, figures, tables
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
    TableSpec,
)
from medfuse_bench.report.inputs import Workdir, read_json, read_samples, select_test_set
from medfuse_bench.report.markdown import markdown_table
from medfuse_bench.report.provenance import (
    DataFlags,
    banners,
    data_flags,
    dataset_sizes,
    provenance_rows,
    read_yaml,
    task_definitions,
)
from medfuse_bench.report.store import EvaluationStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSettings:
    n_resamples: int = 1000
    seed: int = 2022
    drop_fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    unimodal_test_fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    tasks: tuple[str, ...] | None = None


@dataclass
class Report:
    """What was written, and the notes that report.md lists for skipped artifacts."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def table(self, key: str, frame: pl.DataFrame, markdown: str) -> None:
        csv, md = self.out_dir / f"{key}.csv", self.out_dir / f"{key}.md"
        with atomic_path(csv) as tmp:
            frame.write_csv(tmp)
        write_text(markdown, md)
        self.files += [csv, md]
        self.sections.append(markdown + f"\nCSV: [`{csv.name}`]({csv.name})\n")

    def figure(self, key: str, frame: pl.DataFrame, title: str, caption: str) -> None:
        csv, png = self.out_dir / f"{key}.csv", self.out_dir / f"{key}.png"
        with atomic_path(csv) as tmp:
            frame.write_csv(tmp)
        self.files += [png, csv]
        self.sections.append(f"### {title}\n\n![{title}]({png.name})\n\n{caption} Data: [`{csv.name}`]({csv.name}).\n")


def build_report(workdir: str | Path, out_dir: str | Path, settings: ReportSettings = ReportSettings()) -> Report:
    """Write every artifact and ``report.md``; returns the list of written files and notes."""
    wd = Workdir.at(workdir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [t for t in TASK_ORDER if t in (settings.tasks or wd.tasks_present())]
    store = EvaluationStore(wd, settings.n_resamples, settings.seed)
    report = Report(out)
    if not tasks:
        report.notes.append(f"No task tables found under {wd.root / 'tasks'}: nothing to evaluate.")
    samples = {t: read_samples(wd.samples(t), t) for t in tasks}

    # paper order: section 5, then appendix A
    for spec in tqdm((TABLE1, TABLE2, TABLE3), desc="tables", unit="table"):
        _metric_table(report, spec, tasks, store)
    _phenotype_artifacts(report, store, samples)
    _age_table(report, store, samples)
    _sweep_figure(report, wd, tasks)
    _drop_cxr_figure(report, store, tasks, settings)
    _metric_table(report, TABLE_A2, tasks, store)
    _unimodal_test_figure(report, store, samples, settings)
    _metric_table(report, TABLE_A3, tasks, store)
    audit.add_sections(report, wd, tasks, store)

    config = read_yaml(wd.config_resolved)
    provenance = read_json(wd.provenance)
    summary = read_json(wd.summary)
    flags = data_flags(config, summary, provenance, task_definitions([wd.samples(t) for t in tasks]))
    sizes = pl.concat([dataset_sizes(samples[t], t) for t in tasks]) if tasks else None
    if sizes is not None:
        with atomic_path(out / "dataset_sizes.csv") as tmp:
            sizes.write_csv(tmp)
        report.files.append(out / "dataset_sizes.csv")
    if store.missing:
        listed = ", ".join("/".join(k) for k in sorted(store.missing))
        report.notes.append(f"Prediction files not found (rows shown as —): {listed}.")

    text = _report_markdown(report, wd, config, provenance, flags, sizes, settings)
    write_text(text, out / "report.md")
    report.files.append(out / "report.md")
    logger.info("report written to %s (%d files)", out, len(report.files))
    return report


def _metric_table(report: Report, spec: TableSpec, tasks: list[str], store: EvaluationStore) -> None:
    frame = tables.metric_table(spec, tasks, store.evaluation)
    if tasks and frame["available"].any():
        report.table(spec.key, frame, tables.metric_table_markdown(spec, frame, tasks))
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
    report.table("table4", frame, tables.phenotype_table_markdown(frame))
    groups = tables.group_table(uni, multi).filter(pl.col("auroc").is_not_null() | pl.col("auprc").is_not_null())
    figures.plot_groups(groups, report.out_dir / "figure4.png")
    report.figure("figure4", groups, "Figure 4: phenotype groups (paired test set)",
                  "Macro AUROC and AUPRC over the acute, mixed and chronic phenotypes, LSTM (EHR_PAIRED) vs "
                  "MedFuse (OPTIMAL).")


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
    report.table("table5", frame, tables.age_table_markdown(frame))


def _sweep_figure(report: Report, wd: Workdir, tasks: list[str]) -> None:
    frame = ablations.sweep_frame(wd, tasks)
    if frame.height == 0:
        report.notes.append("Figure A1: skipped, no models/{task}/medfuse-p{N}/selected.json.")
        return
    figures.plot_sweep(frame, report.out_dir / "figure_a1.png")
    report.figure("figure_a1", frame, "Figure A1: uni-modal samples in training (validation AUROC)",
                  "Validation AUROC of MedFuse fine-tuned with the paired training samples plus N% of the uni-modal ones.")


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
                  "little so their intervals stay readable.")


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
                  "partial.parquet); models are shifted sideways a little so their intervals stay readable.")


def _report_markdown(
    report: Report, wd: Workdir, config: dict | None, provenance: dict | None, flags: DataFlags, sizes: pl.DataFrame | None,
    settings: ReportSettings,
) -> str:
    parts = ["# MedFuse benchmark report", ""]
    parts += [b + "\n" for b in banners(flags)]
    parts += ["## Provenance", "", markdown_table(["", ""], provenance_rows(
        wd.config_resolved, config, provenance, flags, settings.n_resamples, settings.seed)), ""]
    if sizes is not None:
        rows = [
            [r["task"], r["split"], str(r["partial"]), str(r["paired"]),
             "—" if r["paired_fraction"] is None else f"{r['paired_fraction']:.3f}"]
            for r in sizes.iter_rows(named=True)
        ]
        more = f" The full ETL summary is `{wd.root / 'tasks' / 'summary.md'}`." if wd.summary.exists() else ""
        parts += ["## Data set sizes", "", "Samples per split from `tasks/{task}/samples.parquet`: PARTIAL = all, "
                  f"PAIRED = with a linked X-ray.{more}", "",
                  markdown_table(["Task", "Split", "PARTIAL", "PAIRED", "Paired share"], rows, numeric_from=2), ""]
    parts += ["## Results", "", "Values are AUROC / AUPRC (macro over labels for phenotyping) with 95% bootstrap "
              "percentile intervals; bold marks the best value of a column (Tables 2, 3, A3) or an improvement of "
              "MedFuse (OPTIMAL) over LSTM (EHR_PAIRED) (Tables 4, 5).", ""]
    parts += report.sections
    if report.notes:
        parts += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(parts)
