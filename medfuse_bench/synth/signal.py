"""The planted signal: latent state of each ICU stay and how it drives vitals, images, labels and outcomes.

Every ICU stay gets a latent state (:func:`draw_latents`):

* ``severity`` ~ N(0, 1), the physiological derangement. In the charted data it raises heart rate and respiratory
  rate, lowers systolic/mean/diastolic pressure, SpO2, pH and the three GCS scores, raises glucose, moves
  temperature away from normal and makes capillary refill abnormal (see :func:`vital_means`). Its trajectory drifts
  up over the stay for patients who will die and slowly down for the others.
* hidden conditions: ``infection`` (fever, tachycardia), ``ventilated`` (FiO2 charted, verbal GCS "No Response-ETT",
  support devices on the image), ``chf`` (drives cardiomegaly and edema), ``diabetic`` (glucose up), ``hypertensive``
  (pressure up), ``afib`` (irregular fast heart rate, "AF" rhythm), ``neuro`` (low GCS), ``cad``.
* image findings (:data:`FINDINGS`): opacity, effusion, cardiomegaly, edema, pneumothorax, atelectasis, devices,
  lesion, fracture. They are drawn into every X-ray taken during the stay (:mod:`medfuse_bench.synth.images`):
  bright blobs in the lower lung fields (opacity), bright lung bases (effusion), an enlarged heart shadow
  (cardiomegaly), perihilar haze (edema), a dark apex without lung markings (pneumothorax), a thin bright band
  (atelectasis), bright lines for tubes and catheters (devices). The study's CheXpert labels follow the findings
  with some uncertain (-1.0) and unmentioned (blank) noise (:func:`chexpert_labels`). X-rays outside ICU stays get
  findings drawn afresh (:func:`outside_findings`).

Outcomes (:func:`mortality_probability`, :func:`phenotype_probabilities`):

* in-hospital death: logistic in severity AND in the image findings opacity, edema, effusion, pneumothorax and
  cardiomegaly, which the vitals do not carry, so adding the image helps; about 15-20 % of adult stays die.
* phenotypes (25 CCS groups, label order of ``resources.phenotype_labels()``): septicemia, shock, respiratory
  failure, acute renal failure and fluid/electrolyte disorders follow severity and the hidden conditions seen in
  the vitals; pneumonia follows opacity, CHF follows cardiomegaly/edema (through ``chf``), pleurisy/pneumothorax
  follows effusion and pneumothorax, other lower respiratory disease follows atelectasis; the chronic groups follow
  age and the hidden conditions; the rest are random. Prevalences lie between about 5 % and 50 %.
"""

from __future__ import annotations

import numpy as np

from medfuse_bench.resources import CHEXPERT_LABELS, phenotype_labels

#: Image findings drawn into the X-rays, in this order (columns of the findings matrix).
FINDINGS: tuple[str, ...] = (
    "opacity", "effusion", "cardiomegaly", "edema", "pneumothorax", "atelectasis", "devices", "lesion", "fracture",
)

Latents = dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _bern(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    return rng.random(p.shape) < p


def draw_latents(rng: np.random.Generator, age: np.ndarray, *, icu: bool = True) -> Latents:
    """Latent state of ``len(age)`` episodes; ``icu`` False draws milder ward patients."""
    n = len(age)
    a = (age - 65.0) / 15.0
    sev = rng.normal(0.0 if icu else -1.2, 1.0 if icu else 0.6, n)
    lat: Latents = {"severity": sev}
    lat["infection"] = _bern(rng, _sigmoid(-1.1 + 0.6 * sev))
    lat["chf"] = _bern(rng, _sigmoid(-1.6 + 0.5 * a))
    lat["diabetic"] = _bern(rng, np.full(n, 0.27))
    lat["hypertensive"] = _bern(rng, _sigmoid(-0.5 + 0.5 * a))
    lat["afib"] = _bern(rng, _sigmoid(-1.3 + 0.6 * a))
    lat["neuro"] = _bern(rng, np.full(n, 0.09))
    lat["cad"] = _bern(rng, _sigmoid(-1.0 + 0.7 * a))
    opacity = _bern(rng, _sigmoid(-1.5 + 0.3 * sev + 1.0 * lat["infection"]))
    lat["ventilated"] = _bern(rng, _sigmoid(-0.9 + 0.9 * sev + 0.6 * opacity)) if icu else np.zeros(n, bool)
    lat["opacity"] = opacity
    lat["effusion"] = _bern(rng, _sigmoid(-1.9 + 0.2 * sev + 1.2 * lat["chf"]))
    lat["cardiomegaly"] = _bern(rng, _sigmoid(-2.2 + 2.4 * lat["chf"] + 0.3 * a))
    lat["edema"] = _bern(rng, _sigmoid(-2.6 + 2.0 * lat["chf"] + 0.3 * sev))
    lat["pneumothorax"] = _bern(rng, np.full(n, 0.07))
    lat["atelectasis"] = _bern(rng, _sigmoid(-1.7 + 0.8 * lat["ventilated"]))
    lat["devices"] = lat["ventilated"] | _bern(rng, np.full(n, 0.3 if icu else 0.05))
    lat["lesion"] = _bern(rng, np.full(n, 0.04))
    lat["fracture"] = _bern(rng, np.full(n, 0.03))
    # idiosyncratic per-stay offsets of the vitals (not informative about outcomes)
    for name, sd in (("hr_off", 8.0), ("bp_off", 9.0), ("rr_off", 2.0), ("temp_off", 0.25), ("glu_off", 15.0),
                     ("spo2_off", 1.0), ("ph_off", 0.02)):
        lat[name] = rng.normal(0.0, sd, n)
    return lat


def findings_matrix(lat: Latents) -> np.ndarray:
    """Boolean [n, len(FINDINGS)] matrix of the image findings."""
    return np.stack([lat[f] for f in FINDINGS], axis=1)


def mortality_probability(lat: Latents, age: np.ndarray) -> np.ndarray:
    """Probability of in-hospital death: severity plus image findings the vitals do not show."""
    logit = (
        -3.5
        + 1.0 * lat["severity"]
        + 1.3 * lat["opacity"]
        + 2.0 * lat["edema"]
        + 1.6 * lat["effusion"]
        + 2.6 * lat["pneumothorax"]
        + 1.0 * lat["cardiomegaly"]
        + 0.25 * (age - 65.0) / 15.0
    )
    return _sigmoid(logit)


def phenotype_probabilities(lat: Latents, age: np.ndarray) -> np.ndarray:
    """[n, 25] probabilities of the 25 phenotypes in label order."""
    s = lat["severity"]
    a = (age - 65.0) / 15.0
    f = {k: v.astype(float) for k, v in lat.items()}
    logits = {
        "Acute and unspecified renal failure": -1.5 + 0.8 * s,
        "Acute cerebrovascular disease": -3.0 + 3.2 * f["neuro"],
        "Acute myocardial infarction": -2.9 + 1.2 * f["cad"],
        "Cardiac dysrhythmias": -2.2 + 3.6 * f["afib"],
        "Chronic kidney disease": -1.9 + 0.6 * a + 0.6 * f["hypertensive"],
        "Chronic obstructive pulmonary disease and bronchiectasis": -2.0 + 0.3 * a,
        "Complications of surgical procedures or medical care": -1.8 + 0.2 * s,
        "Conduction disorders": -2.7 + 0.3 * a,
        "Congestive heart failure; nonhypertensive": -3.0 + 4.2 * f["chf"],
        "Coronary atherosclerosis and other heart disease": -2.4 + 3.4 * f["cad"],
        "Diabetes mellitus with complications": -4.0 + 3.2 * f["diabetic"],
        "Diabetes mellitus without complication": -4.0 + 3.8 * f["diabetic"],
        "Disorders of lipid metabolism": -1.2 + 0.5 * a + 0.8 * f["cad"],
        "Essential hypertension": -2.0 + 2.6 * f["hypertensive"],
        "Fluid and electrolyte disorders": -0.9 + 0.7 * s,
        "Gastrointestinal hemorrhage": -2.6 + 0.3 * s,
        "Hypertension with complications and secondary hypertension": -3.2 + 1.6 * f["hypertensive"] + 0.5 * a,
        "Other liver diseases": -2.4 + 0.2 * s,
        "Other lower respiratory disease": -2.2 + 1.6 * f["atelectasis"],
        "Other upper respiratory disease": -2.9 + 0.3 * f["ventilated"],
        "Pleurisy; pneumothorax; pulmonary collapse": -3.2 + 2.4 * f["effusion"] + 3.0 * f["pneumothorax"],
        "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)":
            -3.0 + 3.2 * f["opacity"] + 0.4 * f["infection"],
        "Respiratory failure; insufficiency; arrest (adult)": -2.9 + 0.8 * s + 2.0 * f["ventilated"],
        "Septicemia (except in labor)": -3.4 + 2.6 * f["infection"] + 0.6 * s,
        "Shock": -3.3 + 1.3 * s + 0.5 * f["infection"],
    }
    return _sigmoid(np.stack([np.asarray(logits[name], dtype=float) for name in phenotype_labels()], axis=1))


def vital_means(lat: Latents) -> dict[str, np.ndarray]:
    """Per-stay mean of each charted quantity at severity ``lat['severity']`` (before trajectory and noise)."""
    s = lat["severity"]
    f = {k: v.astype(float) for k, v in lat.items()}
    return {
        "hr": 82.0 + 11.0 * s + 9.0 * f["infection"] + 12.0 * f["afib"] + lat["hr_off"],
        "sbp": 122.0 - 11.0 * s + 14.0 * f["hypertensive"] + lat["bp_off"],
        "dbp": 64.0 - 6.0 * s + 7.0 * f["hypertensive"] + 0.5 * lat["bp_off"],
        "rr": 18.0 + 3.5 * s + 1.5 * f["infection"] + lat["rr_off"],
        "spo2": 97.3 - 1.8 * s + lat["spo2_off"],
        "temp": 36.9 + 1.1 * f["infection"] + 0.25 * s + lat["temp_off"],
        "glucose": 125.0 + 18.0 * s + 70.0 * f["diabetic"] + lat["glu_off"],
        "ph": 7.40 - 0.045 * s + lat["ph_off"],
        # GCS: points lost below the maximum (sedation on the ventilator and neuro events lower it)
        "gcs_loss": 0.9 * np.maximum(s, -0.5) + 3.0 * f["neuro"] + 1.3 * f["ventilated"],
        "fio2": 38.0 + 11.0 * s + 8.0 * f["opacity"],
        "crt_abnormal": -2.2 + 1.1 * s,
    }


def outside_findings(rng: np.random.Generator, n: int) -> np.ndarray:
    """Findings of X-rays taken outside ICU stays (outpatient or ward): milder, drawn independently."""
    p = np.array([0.12, 0.08, 0.12, 0.05, 0.02, 0.08, 0.05, 0.04, 0.03])
    return rng.random((n, len(FINDINGS))) < p


def chexpert_labels(rng: np.random.Generator, findings: np.ndarray) -> np.ndarray:
    """[n, 14] CheXpert labels (1.0 / 0.0 / -1.0 / NaN) of studies with the given findings matrix."""
    n = len(findings)
    col = {name: findings[:, i] for i, name in enumerate(FINDINGS)}
    truth = {
        "Atelectasis": col["atelectasis"],
        "Cardiomegaly": col["cardiomegaly"],
        "Consolidation": col["opacity"] & (rng.random(n) < 0.45),
        "Edema": col["edema"],
        "Enlarged Cardiomediastinum": col["cardiomegaly"] & (rng.random(n) < 0.3),
        "Fracture": col["fracture"],
        "Lung Lesion": col["lesion"],
        "Lung Opacity": col["opacity"] | col["edema"] | col["atelectasis"],
        "Pleural Effusion": col["effusion"],
        "Pleural Other": rng.random(n) < 0.01,
        "Pneumonia": col["opacity"] & (rng.random(n) < 0.7),
        "Pneumothorax": col["pneumothorax"],
        "Support Devices": col["devices"],
    }
    any_finding = np.any(np.stack(list(truth.values()), axis=1), axis=1)
    truth["No Finding"] = ~any_finding
    out = np.full((n, len(CHEXPERT_LABELS)), np.nan)
    for j, name in enumerate(CHEXPERT_LABELS):
        t = truth[name]
        u = rng.random(n)
        uncertain = 0.35 if name in ("Pneumonia", "Atelectasis", "Edema", "Consolidation") else 0.08
        pos = np.where(u < uncertain, -1.0, 1.0)
        # absent findings are mostly not mentioned (blank), sometimes explicitly negative, rarely uncertain
        neg = np.where(u < 0.02, -1.0, np.where(u < 0.25, 0.0, np.nan))
        if name == "No Finding":
            pos, neg = np.ones(n), np.full(n, np.nan)
        out[:, j] = np.where(t, pos, neg)
    return out
