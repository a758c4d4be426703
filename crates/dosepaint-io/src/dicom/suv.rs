//! Body-weight SUV of PET images.
//!
//! `SUV_bw = C [Bq/mL] * W [g] / A [Bq]`, with `A` the injected activity
//! decay-corrected to the time the image values refer to:
//! `A = A0 * 2^(-dt / T_half)` (see `shared/reference/dose_painting.md`;
//! F-18 half-life 109.77 min).

use dicom_dictionary_std::tags;
use serde::{Deserialize, Serialize};

use super::common::{Item, parse_da_tm, parse_dt, tag_name};
use crate::{Error, Result};

/// DICOM Decay Correction (0054,1102): the time the activity values refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecayCorrection {
    /// Values are decay-corrected to the acquisition start (Series Date/Time).
    Start,
    /// Values are decay-corrected to the administration (injection) time.
    Admin,
}

/// What body-weight SUV needs, as read from a PET file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SuvParameters {
    /// Patient weight, kg.
    pub weight_kg: f64,
    /// Injected activity at injection time, Bq.
    pub injected_bq: f64,
    /// Radionuclide half-life, s.
    pub half_life_s: f64,
    /// Time from injection to the reference time of the image values, s
    /// (0 for [`DecayCorrection::Admin`]).
    pub decay_time_s: f64,
    /// How the image values are decay-corrected.
    pub decay_correction: DecayCorrection,
}

impl SuvParameters {
    /// The factor that turns Bq/mL into SUV_bw: `W [g] / (A0 2^(-dt/T))`.
    ///
    /// ```
    /// use dosepaint_io::{DecayCorrection, SuvParameters};
    /// // 70 kg, 370 MBq of F-18 (T = 109.77 min), images corrected to a scan
    /// // start one half-life after injection: A = 185 MBq.
    /// let p = SuvParameters {
    ///     weight_kg: 70.0, injected_bq: 370e6, half_life_s: 109.77 * 60.0,
    ///     decay_time_s: 109.77 * 60.0, decay_correction: DecayCorrection::Start,
    /// };
    /// assert!((p.factor() - 70_000.0 / 185e6).abs() < 1e-15);
    /// ```
    pub fn factor(&self) -> f64 {
        let decayed = match self.decay_correction {
            DecayCorrection::Admin => self.injected_bq,
            DecayCorrection::Start => {
                self.injected_bq * (-self.decay_time_s / self.half_life_s).exp2()
            }
        };
        self.weight_kg * 1000.0 / decayed
    }
}

/// Reads the SUV parameters of a PET series from one of its files.
/// `earliest_acquisition_s` is the earliest Acquisition Date/Time of the
/// series' slices (seconds since 1970), used when the Series Time is later
/// than the acquisition (post-processed series).
pub(crate) fn suv_parameters(
    root: &Item<'_>,
    earliest_acquisition_s: Option<f64>,
) -> Result<(SuvParameters, String)> {
    let path = root.path.to_string();
    let unavailable = |reason: String| Error::SuvUnavailable {
        path: path.clone(),
        reason,
    };
    let units = root.str_req(tags::UNITS, "PET units decide whether SUV can be computed")?;
    match units.as_str() {
        "BQML" => {}
        "CNTS" => {
            return Err(unavailable(
                "Units (0054,1001) is CNTS: counts are not calibrated to activity \
                 concentration, and SUV needs Bq/mL (BQML)"
                    .into(),
            ));
        }
        other => {
            return Err(unavailable(format!(
                "Units (0054,1001) is {other}: SUV is computed from activity concentration \
                 in Bq/mL (BQML) only"
            )));
        }
    }
    let decay = root.str_req(
        tags::DECAY_CORRECTION,
        "SUV needs to know the time the activity values refer to",
    )?;
    let decay_correction = match decay.as_str() {
        "START" => DecayCorrection::Start,
        "ADMIN" => DecayCorrection::Admin,
        other => {
            return Err(unavailable(format!(
                "Decay Correction (0054,1102) is {other}: only START and ADMIN images have \
                 one reference time for all slices"
            )));
        }
    };
    let weight_kg = root.f64_req(
        tags::PATIENT_WEIGHT,
        "body-weight SUV needs the patient's weight in kg",
    )?;
    if !(weight_kg > 0.0 && weight_kg < 1000.0) {
        return Err(root.invalid(
            tags::PATIENT_WEIGHT,
            format!("{weight_kg} kg is not a plausible patient weight"),
        ));
    }
    let info = root.seq_req(
        tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE,
        "SUV needs the injected activity, its half-life and the injection time",
    )?;
    let rp = info[0];
    let injected_bq = rp.positive_f64_req(
        tags::RADIONUCLIDE_TOTAL_DOSE,
        "SUV needs the injected activity in Bq (in Radiopharmaceutical Information Sequence)",
        " Bq",
    )?;
    let half_life_s = rp.positive_f64_req(
        tags::RADIONUCLIDE_HALF_LIFE,
        "SUV needs the radionuclide half-life in s (in Radiopharmaceutical Information Sequence)",
        " s",
    )?;
    let mut note = format!(
        "SUV_bw: weight {weight_kg} kg, injected {injected_bq} Bq, half-life {half_life_s} s, \
         decay correction {decay}"
    );
    let decay_time_s = match decay_correction {
        DecayCorrection::Admin => 0.0,
        DecayCorrection::Start => {
            let series_date = root.str(tags::SERIES_DATE);
            let series_time = root.str_req(
                tags::SERIES_TIME,
                "SUV with START decay correction needs the series (scan start) time",
            )?;
            let mut reference = parse_da_tm(series_date.as_deref(), &series_time)
                .ok_or_else(|| root.invalid(tags::SERIES_TIME, format!("\"{series_time}\"")))?;
            if let Some(acq) = earliest_acquisition_s
                && series_date.is_some()
                && acq < reference
            {
                // Series Time later than the acquisition (a post-processed
                // series): the acquisition start is the reference.
                note.push_str("; Series Time after acquisition, earliest Acquisition Time used");
                reference = acq;
            }
            let injection = if let Some(dt) = rp.str(tags::RADIOPHARMACEUTICAL_START_DATE_TIME) {
                parse_dt(&dt).ok_or_else(|| {
                    rp.invalid(
                        tags::RADIOPHARMACEUTICAL_START_DATE_TIME,
                        format!("\"{dt}\""),
                    )
                })?
            } else {
                let tm = rp
                    .str(tags::RADIOPHARMACEUTICAL_START_TIME)
                    .ok_or_else(|| Error::MissingTag {
                        path: path.clone(),
                        tag: format!(
                            "{} or {}",
                            tag_name(tags::RADIOPHARMACEUTICAL_START_DATE_TIME),
                            tag_name(tags::RADIOPHARMACEUTICAL_START_TIME)
                        ),
                        context: "SUV needs the injection time".into(),
                    })?;
                // Without a date, the injection is on the series date.
                parse_da_tm(series_date.as_deref(), &tm).ok_or_else(|| {
                    rp.invalid(tags::RADIOPHARMACEUTICAL_START_TIME, format!("\"{tm}\""))
                })?
            };
            let dt = reference - injection;
            if !(0.0..=7.0 * 86400.0).contains(&dt) {
                return Err(unavailable(format!(
                    "injection to scan start is {dt} s: the injection time is after the scan \
                     or more than a week before it (check the dates and times)"
                )));
            }
            note.push_str(", ");
            note.push_str(&dt.to_string());
            note.push_str(" s from injection to scan start");
            dt
        }
    };
    Ok((
        SuvParameters {
            weight_kg,
            injected_bq,
            half_life_s,
            decay_time_s,
            decay_correction,
        },
        note,
    ))
}
