"""The MIMIC-IV item dictionaries the synthetic data uses: ICU chart and output items, and hospital lab items.

Item ids, labels and units are those of MIMIC-IV (MetaVision ids for the ICU; the 17 benchmark variables'
ids agree with ``medfuse_bench.resources.variables()``). Items outside the 17 variables are charted as well, so that
extraction code has something to filter out.
"""

from __future__ import annotations

import polars as pl

# itemid, label, abbreviation, linksto, category, unitname, param_type, lownormalvalue, highnormalvalue
_D_ITEMS: tuple[tuple[int, str, str, str, str, str | None, str, float | None, float | None], ...] = (
    (220045, "Heart Rate", "HR", "chartevents", "Routine Vital Signs", "bpm", "Numeric", None, None),
    (220046, "Heart rate Alarm - High", "HR Alarm - High", "chartevents", "Alarms", "bpm", "Numeric", None, None),
    (220047, "Heart Rate Alarm - Low", "HR Alarm - Low", "chartevents", "Alarms", "bpm", "Numeric", None, None),
    (220048, "Heart Rhythm", "Heart Rhythm", "chartevents", "Routine Vital Signs", None, "Text", None, None),
    (220050, "Arterial Blood Pressure systolic", "ABPs", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     90.0, 140.0),
    (220051, "Arterial Blood Pressure diastolic", "ABPd", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     60.0, 90.0),
    (220052, "Arterial Blood Pressure mean", "ABPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     None, None),
    (220056, "Arterial Blood Pressure Alarm - Low", "ABP Alarm - Low", "chartevents", "Alarms", "mmHg", "Numeric",
     None, None),
    (220058, "Arterial Blood Pressure Alarm - High", "ABP Alarm - High", "chartevents", "Alarms", "mmHg",
     "Numeric", None, None),
    (220179, "Non Invasive Blood Pressure systolic", "NBPs", "chartevents", "Routine Vital Signs", "mmHg",
     "Numeric", None, None),
    (220180, "Non Invasive Blood Pressure diastolic", "NBPd", "chartevents", "Routine Vital Signs", "mmHg",
     "Numeric", None, None),
    (220181, "Non Invasive Blood Pressure mean", "NBPm", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     None, None),
    (220210, "Respiratory Rate", "RR", "chartevents", "Respiratory", "insp/min", "Numeric", None, None),
    (220227, "Arterial O2 Saturation", "Art O2 Sat", "chartevents", "Labs", "%", "Numeric", None, None),
    (220274, "PH (Venous)", "PH (Venous)", "chartevents", "Labs", None, "Numeric", 7.31, 7.41),
    (220277, "O2 saturation pulseoxymetry", "SpO2", "chartevents", "Respiratory", "%", "Numeric", None, None),
    (220339, "PEEP set", "PEEP set", "chartevents", "Respiratory", "cmH2O", "Numeric", None, None),
    (220621, "Glucose (serum)", "Glucose (serum)", "chartevents", "Labs", "mg/dL", "Numeric", 70.0, 100.0),
    (220739, "GCS - Eye Opening", "GCS - Eye Opening", "chartevents", "Neurological", None, "Text", None, None),
    (223751, "Non-Invasive Blood Pressure Alarm - High", "NBP Alarm - High", "chartevents", "Alarms", "mmHg",
     "Numeric", None, None),
    (223752, "Non-Invasive Blood Pressure Alarm - Low", "NBP Alarm - Low", "chartevents", "Alarms", "mmHg",
     "Numeric", None, None),
    (223761, "Temperature Fahrenheit", "Temperature F", "chartevents", "Routine Vital Signs", "°F", "Numeric",
     None, None),
    (223762, "Temperature Celsius", "Temperature C", "chartevents", "Routine Vital Signs", "°C", "Numeric",
     None, None),
    (223769, "O2 Saturation Pulseoxymetry Alarm - High", "SpO2 Alarm - High", "chartevents", "Alarms", "%",
     "Numeric", None, None),
    (223770, "O2 Saturation Pulseoxymetry Alarm - Low", "SpO2 Alarm - Low", "chartevents", "Alarms", "%",
     "Numeric", None, None),
    (223830, "PH (Arterial)", "PH (Arterial)", "chartevents", "Labs", None, "Numeric", 7.35, 7.45),
    (223835, "Inspired O2 Fraction", "FiO2", "chartevents", "Respiratory", None, "Numeric", None, None),
    (223900, "GCS - Verbal Response", "GCS - Verbal Response", "chartevents", "Neurological", None, "Text",
     None, None),
    (223901, "GCS - Motor Response", "GCS - Motor Response", "chartevents", "Neurological", None, "Text",
     None, None),
    (223951, "Capillary Refill R", "Capillary Refill R", "chartevents", "Skin - Assessment", None, "Text",
     None, None),
    (224161, "Resp Alarm - High", "Resp Alarm - High", "chartevents", "Alarms", "insp/min", "Numeric", None,
     None),
    (224162, "Resp Alarm - Low", "Resp Alarm - Low", "chartevents", "Alarms", "insp/min", "Numeric", None, None),
    (224167, "Manual Blood Pressure Systolic Left", "Manual BPs L", "chartevents", "Routine Vital Signs", "mmHg",
     "Numeric", None, None),
    (224308, "Capillary Refill L", "Capillary Refill L", "chartevents", "Skin - Assessment", None, "Text",
     None, None),
    (224322, "IABP Mean", "IABP Mean", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (224422, "Spont RR", "Spont RR", "chartevents", "Respiratory", "bpm", "Numeric", None, None),
    (224639, "Daily Weight", "Daily Weight", "chartevents", "General", "kg", "Numeric", None, None),
    (224641, "Alarms On", "Alarms On", "chartevents", "Alarms", None, "Text", None, None),
    (224643, "Manual Blood Pressure Diastolic Left", "Manual BPd L", "chartevents", "Routine Vital Signs", "mmHg",
     "Numeric", None, None),
    (224650, "Ectopy Type 1", "Ectopy Type 1", "chartevents", "Routine Vital Signs", None, "Text", None, None),
    (224685, "Tidal Volume (observed)", "Tidal Volume (observed)", "chartevents", "Respiratory", "mL", "Numeric",
     None, None),
    (224689, "Respiratory Rate (spontaneous)", "Respiratory Rate (spontaneous)", "chartevents", "Respiratory",
     "insp/min", "Numeric", None, None),
    (224690, "Respiratory Rate (Total)", "Respiratory Rate (Total)", "chartevents", "Respiratory", "insp/min",
     "Numeric", None, None),
    (225309, "ART BP Systolic", "ART BP Systolic", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     90.0, 140.0),
    (225310, "ART BP Diastolic", "ART BP Diastolic", "chartevents", "Routine Vital Signs", "mmHg", "Numeric",
     60.0, 90.0),
    (225312, "ART BP mean", "ART BP mean", "chartevents", "Routine Vital Signs", "mmHg", "Numeric", None, None),
    (225664, "Glucose finger stick", "Glucose FS (range 70 -100)", "chartevents", "Routine Vital Signs", "mg/dL",
     "Numeric", None, None),
    (226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "chartevents", "General", "kg", "Numeric",
     None, None),
    (226531, "Admission Weight (lbs.)", "Admission Weight (lbs.)", "chartevents", "General", "lbs", "Numeric",
     None, None),
    (226537, "Glucose (whole blood)", "Glucose (whole blood)", "chartevents", "Labs", "mg/dL", "Numeric",
     70.0, 100.0),
    (226559, "Foley", "Foley", "outputevents", "Output", "mL", "Numeric", None, None),
    (226560, "Void", "Void", "outputevents", "Output", "mL", "Numeric", None, None),
    (226707, "Height", "Height", "chartevents", "General", "Inch", "Numeric", None, None),
    (226730, "Height (cm)", "Height (cm)", "chartevents", "General", "cm", "Numeric", None, None),
    (227243, "Manual Blood Pressure Systolic Right", "Manual BPs R", "chartevents", "Routine Vital Signs", "mmHg",
     "Numeric", None, None),
)

# itemid, label, fluid, category, valueuom, ref_range_lower, ref_range_upper
_LAB_ITEMS: tuple[tuple[int, str, str, str, str | None, float | None, float | None], ...] = (
    (50809, "Glucose", "Blood", "Blood Gas", "mg/dL", 70.0, 105.0),
    (50817, "Oxygen Saturation", "Blood", "Blood Gas", "%", None, None),
    (50820, "pH", "Blood", "Blood Gas", "units", 7.35, 7.45),
    (50831, "pH", "Other Body Fluid", "Blood Gas", "units", None, None),
    (50912, "Creatinine", "Blood", "Chemistry", "mg/dL", 0.5, 1.2),
    (50931, "Glucose", "Blood", "Chemistry", "mg/dL", 70.0, 100.0),
    (51094, "pH", "Urine", "Chemistry", "units", 5.0, 8.0),
    (51221, "Hematocrit", "Blood", "Hematology", "%", 36.0, 48.0),
    (51478, "Glucose", "Urine", "Hematology", "mg/dL", None, None),
    (51491, "pH", "Urine", "Hematology", "units", 5.0, 8.0),
    # outside the 17 variables: written only with --unrelated-lab-share (lab_events.UNRELATED_LAB_RANGES)
    (50868, "Anion Gap", "Blood", "Chemistry", "mEq/L", 8.0, 20.0),
    (50882, "Bicarbonate", "Blood", "Chemistry", "mEq/L", 22.0, 32.0),
    (50893, "Calcium, Total", "Blood", "Chemistry", "mg/dL", 8.4, 10.3),
    (50902, "Chloride", "Blood", "Chemistry", "mEq/L", 96.0, 108.0),
    (50960, "Magnesium", "Blood", "Chemistry", "mg/dL", 1.6, 2.6),
    (50970, "Phosphate", "Blood", "Chemistry", "mg/dL", 2.7, 4.5),
    (50971, "Potassium", "Blood", "Chemistry", "mEq/L", 3.3, 5.1),
    (50983, "Sodium", "Blood", "Chemistry", "mEq/L", 133.0, 145.0),
    (51006, "Urea Nitrogen", "Blood", "Chemistry", "mg/dL", 6.0, 20.0),
    (51222, "Hemoglobin", "Blood", "Hematology", "g/dL", 13.7, 17.5),
    (51250, "MCV", "Blood", "Hematology", "fL", 80.0, 100.0),
    (51265, "Platelet Count", "Blood", "Hematology", "K/uL", 150.0, 440.0),
    (51279, "Red Blood Cells", "Blood", "Hematology", "m/uL", 4.6, 6.1),
    (51301, "White Blood Cells", "Blood", "Hematology", "K/uL", 4.0, 11.0),
)


def d_items() -> pl.DataFrame:
    """The ``icu/d_items`` table (ICU items only, as in MIMIC-IV)."""
    names = ("itemid", "label", "abbreviation", "linksto", "category", "unitname", "param_type",
             "lownormalvalue", "highnormalvalue")
    schema = dict(zip(names, (pl.Int64, pl.String, pl.String, pl.String, pl.String, pl.String, pl.String,
                              pl.Float64, pl.Float64)))
    return pl.DataFrame(list(_D_ITEMS), schema=schema, orient="row")


def d_labitems() -> pl.DataFrame:
    """The ``hosp/d_labitems`` table of the lab items used."""
    rows = [(i, label, fluid, category) for i, label, fluid, category, *_ in _LAB_ITEMS]
    return pl.DataFrame(rows, schema={"itemid": pl.Int64, "label": pl.String, "fluid": pl.String,
                                      "category": pl.String}, orient="row")


def lab_item(itemid: int) -> tuple[str | None, float | None, float | None]:
    """(valueuom, ref_range_lower, ref_range_upper) of a lab item."""
    for i, *_, uom, low, high in _LAB_ITEMS:
        if i == itemid:
            return uom, low, high
    raise KeyError(itemid)


#: Text values of the Glasgow coma scale items as MIMIC-IV stores them, indexed by their score (valuenum).
GCS_EYE: dict[int, str] = {4: "Spontaneously", 3: "To Speech", 2: "To Pain", 1: "None"}
GCS_VERBAL: dict[int, str] = {5: "Oriented", 4: "Confused", 3: "Inappropriate Words", 2: "Incomprehensible sounds",
                              1: "No Response"}
GCS_VERBAL_ETT = "No Response-ETT"
GCS_MOTOR: dict[int, str] = {6: "Obeys Commands", 5: "Localizes Pain", 4: "Flex-withdraws", 3: "Abnormal Flexion",
                             2: "Abnormal extension", 1: "No response"}
CAPILLARY_REFILL = ("Normal <3 Seconds", "Abnormal >3 Seconds")
HEART_RHYTHMS = ("SR (Sinus Rhythm)", "ST (Sinus Tachycardia)", "SB (Sinus Bradycardia)", "AF (Atrial Fibrillation)")
